"""What the three CLIs share: --version, -q / -v, and one line plus a non-zero exit for an error."""
import argparse
import importlib.metadata
import logging

import pytest

from ijepa_hub.cli_common import layers_arg, log_level, run_cli, setup_logging
from ijepa_hub.errors import CheckpointError, RecipeError
from ijepa_hub.eval import cli as eval_cli
from ijepa_hub.finetune import cli as finetune_cli
from ijepa_hub.hub import cli as hub_cli
from ijepa_hub.train import cli as train_cli

MAINS = {"ijepa-train": train_cli.main, "ijepa-hub": hub_cli.main, "ijepa-eval": eval_cli.main,
         "ijepa-finetune": finetune_cli.main}


@pytest.mark.parametrize("prog", MAINS)
def test_version(prog, capsys):
    with pytest.raises(SystemExit) as exit_:
        MAINS[prog](["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"ijepa-hub {importlib.metadata.version('ijepa-hub')}"


@pytest.mark.parametrize("argv, level", [([], logging.INFO), (["-q"], logging.WARNING), (["-v"], logging.DEBUG),
                                         (["--quiet"], logging.WARNING), (["--verbose"], logging.DEBUG)])
def test_quiet_and_verbose_on_every_cli_before_or_after_the_subcommand(argv, level):
    assert log_level(train_cli.parse_args(argv)[1]) == level
    assert log_level(finetune_cli.parse_args(argv)[1]) == level
    for parser, command in ((hub_cli.build_parser(), ["info", "x"]), (eval_cli.build_parser(), ["curves", "m", "o.png"])):
        assert log_level(parser.parse_args([*argv, *command])) == level
        assert log_level(parser.parse_args([*command, *argv])) == level


def test_setup_logging_sets_ijepa_hubs_level_only():
    ours, before = logging.getLogger("ijepa_hub"), logging.getLogger("ijepa_hub").level
    try:
        assert setup_logging(hub_cli.build_parser().parse_args(["-v", "info", "x"])) == logging.DEBUG
        assert ours.level == logging.DEBUG and logging.getLogger("httpx").getEffectiveLevel() >= logging.WARNING
        setup_logging(hub_cli.build_parser().parse_args(["info", "x", "-q"]))
        assert ours.level == logging.WARNING
    finally:
        ours.setLevel(before)


def _raise(err):
    def command():
        raise err
    return command


def test_run_cli_prints_one_line_and_exits_non_zero(capsys):
    assert run_cli("ijepa-hub info", lambda: None) == 0
    multi = CheckpointError("w.pth: the encoder weights do not match.\n  missing keys (1): a\n  Fix: pass num_heads=")
    assert run_cli("ijepa-hub info", _raise(multi)) == 1
    assert capsys.readouterr().err == (
        "ijepa-hub info: error: w.pth: the encoder weights do not match. missing keys (1): a Fix: pass num_heads=\n")
    assert run_cli("ijepa-train", _raise(RecipeError("unknown recipe 'x'"))) == 2  # usage, as argparse exits
    assert run_cli("ijepa-eval knn", _raise(FileNotFoundError("no image folder at 'x'"))) == 1
    assert run_cli("ijepa-eval knn", _raise(KeyboardInterrupt())) == 130
    assert capsys.readouterr().err.splitlines() == [
        "ijepa-train: error: unknown recipe 'x'", "ijepa-eval knn: error: no image folder at 'x'",
        "ijepa-eval knn: interrupted"]
    with pytest.raises(ZeroDivisionError):  # a bug keeps its traceback
        run_cli("ijepa-eval knn", lambda: 1 / 0)



def test_a_raw_file_system_error_becomes_a_line_naming_the_path_and_a_fix(tmp_path, capsys):
    """`[Errno 17] File exists: 'x'` said neither what was in the way nor what to do."""
    (tmp_path / "notes.txt").write_text("x")
    blocked, missing = tmp_path / "notes.txt" / "sub" / "f.npy", tmp_path / "missing"
    commands = [lambda: blocked.parent.mkdir(parents=True, exist_ok=True),
                lambda: (tmp_path / "notes.txt").mkdir(exist_ok=True),
                lambda: open(tmp_path),  # noqa: SIM115
                lambda: open(missing),  # noqa: SIM115
                lambda: missing.rename(tmp_path / "new")]
    assert [run_cli("ijepa-eval extract", command) for command in commands] == [1] * 5
    blocker = tmp_path / "notes.txt"
    assert capsys.readouterr().err.splitlines() == [
        f"ijepa-eval extract: error: cannot create {blocked.parent}: {blocker} is in the way (a file). Fix: choose "
        f"another path, or move {blocker} away.",
        f"ijepa-eval extract: error: cannot create {blocker}: {blocker} is in the way (a file). Fix: choose another "
        f"path, or move {blocker} away.",
        f"ijepa-eval extract: error: {tmp_path}: Is a directory. Fix: give a file's path, not a folder's.",
        f"ijepa-eval extract: error: {missing}: No such file or directory. Fix: check the path.",
        f"ijepa-eval extract: error: {missing} -> {tmp_path / 'new'}: No such file or directory. Fix: check the path."]

# --- one spelling per option; the old ones work for one more minor version, with a warning ---

def _parse_quietly(parser, argv, capsys):
    args = parser.parse_args(argv)
    return args, capsys.readouterr().err


@pytest.mark.parametrize("argv, dest, value", [
    (["knn", "m", "--data.image_column", "img"], "image_column", "img"),
    (["linear", "m", "--data.label_column", "lab"], "label_column", "lab"),
    (["attentive", "m", "--baseline"], "baseline", True),
    (["seg", "m", "--no-baseline"], "baseline", False),
    (["synthetic", "m", "--no-baseline"], "baseline", False),
    (["synthetic", "m", "--baseline"], "baseline", True),
    (["knn", "m", "--source-revision", "v1"], "source_revision", "v1"),
])
def test_eval_new_spellings(argv, dest, value, capsys):
    args, err = _parse_quietly(eval_cli.build_parser(), argv, capsys)
    assert getattr(args, dest) == value and err == ""


@pytest.mark.parametrize("argv, dest, value", [
    (["convert", "a.pth.tar", "out"], ("context_encoder", "predictor"), (True, True)),  # convert keeps both
    (["convert", "a.pth.tar", "out", "--no-predictor", "--no-context-encoder"], ("context_encoder", "predictor"),
     (False, False)),
    (["push", "src", "me/x"], ("context_encoder", "predictor"), (False, False)),  # push of a model: encoder only
    (["push", "src", "me/x", "--predictor", "--context-encoder"], ("context_encoder", "predictor"), (True, True)),
    (["info", "me/x", "--source-revision", "v1"], ("source_revision",), ("v1",)),
])
def test_hub_new_spellings(argv, dest, value, capsys):
    args, err = _parse_quietly(hub_cli.build_parser(), argv, capsys)
    assert tuple(getattr(args, d) for d in dest) == value and err == ""


@pytest.mark.parametrize("cli, argv, old, new, dest, value", [
    (eval_cli, ["knn", "m", "--data.image-column", "img"], "--data.image-column", "--data.image_column",
     "image_column", "img"),
    (eval_cli, ["attentive", "m", "--data.label-column", "lab"], "--data.label-column", "--data.label_column",
     "label_column", "lab"),
    (eval_cli, ["synthetic", "m", "--revision-from", "v1"], "--revision-from", "--source-revision",
     "source_revision", "v1"),
    (hub_cli, ["info", "me/x", "--revision-from", "v1"], "--revision-from", "--source-revision", "source_revision", "v1"),
    (hub_cli, ["push", "src", "me/x", "--with-predictor"], "--with-predictor", "--predictor", "predictor", True),
    (hub_cli, ["push", "src", "me/x", "--with-context-encoder"], "--with-context-encoder", "--context-encoder",
     "context_encoder", True),
])
def test_old_spellings_work_and_warn_once(cli, argv, old, new, dest, value, capsys):
    args, err = _parse_quietly(cli.build_parser(), argv, capsys)
    assert getattr(args, dest) == value
    lines = err.splitlines()
    assert len(lines) == 1 and "warning" in lines[0] and f"{old} is deprecated" in lines[0] and f"use {new}" in lines[0]


def test_old_spellings_are_not_in_help(capsys):
    with pytest.raises(SystemExit):
        hub_cli.build_parser().parse_args(["push", "--help"])
    out = capsys.readouterr().out
    assert "--with-predictor" not in out and "--revision-from" not in out and "--source-revision" in out


@pytest.mark.parametrize("value, expected", [("1", 1), ("4", 4), ("2,5,11", [2, 5, 11]), ("3,", [3]),
                                             ("0,", [0]), ("-1,-2", [-1, -2]), (" 2, 5 ", [2, 5])])
def test_layers_arg_accepts(value, expected):
    assert layers_arg(value) == expected


@pytest.mark.parametrize("value, message", [("last", "block indices like 2,5,11"), ("", "needs a number"),
                                            (",", "needs a number"), ("1.5", "block indices like 2,5,11"),
                                            ("0", "at least 1"), ("-2", "at least 1")])
def test_layers_arg_refuses(value, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        layers_arg(value)


@pytest.mark.parametrize("command", [["extract", "m", "imgs", "f.npy"], ["linear", "m"], ["seg", "m"], ["synthetic", "m"]])
def test_every_layers_option_uses_the_one_parser(command, capsys):
    parser = eval_cli.build_parser()
    args = parser.parse_args([*command, "--layers", "2,5,11"])
    assert args.layers == ([[2, 5, 11]] if command[0] == "linear" else [2, 5, 11])
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args([*command, "--layers", "x"])
    assert exit_.value.code == 2 and "block indices like 2,5,11" in capsys.readouterr().err


def test_linear_layers_take_several_choices():
    assert eval_cli.build_parser().parse_args(["linear", "m", "--layers", "1", "4", "0,3"]).layers == [1, 4, [0, 3]]
    assert eval_cli.build_parser().parse_args(["linear", "m"]).layers == [1, 4]
