"""What the three CLIs share: --version, -q / -v, and one line plus a non-zero exit for an error."""
import importlib.metadata
import logging

import pytest

from ijepa_hub.cli_common import log_level, run_cli, setup_logging
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
