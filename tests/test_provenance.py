"""Every model says where its weights came from: a provenance chain in config.json through convert, load, save,
train (scratch, --init, --teacher), fine-tune and export, and the most restrictive licence of that chain. And the
training objective is stated where a user meets it: recipe, log, summary, card."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import yaml
from test_hub_cards import released_model  # noqa: F401  (a fixture: ijepa_vith14_1k from a tiny stand-in file)

import ijepa_hub
from ijepa_hub.hub.lineage import chain_license, released_step, strictest_license
from ijepa_hub.hub.provenance import provenance_of
from ijepa_hub.recipe import describe_objective, load_recipe
from ijepa_hub.registry import VARIANTS
from ijepa_hub.train import train
from ijepa_hub.train.cli import parse_args

pytestmark = pytest.mark.usefixtures("torch_single_thread")
META = VARIANTS["ijepa_vith14_1k"]


def _ijepa(folder):
    return json.loads((folder / "config.json").read_text())["ijepa"]


def _card_license(folder):
    return yaml.safe_load((folder / "README.md").read_text().split("---\n")[1])["license"]


@pytest.mark.parametrize("licenses, expected", [
    (["apache-2.0", "cc-by-nc-4.0"], "cc-by-nc-4.0"),
    (["cc-by-nc-4.0", "mit", None], "cc-by-nc-4.0"),
    (["mit", "apache-2.0"], "apache-2.0"),
    (["apache-2.0", "some-custom-licence"], "some-custom-licence"),  # unknown: assumed to restrict more
    (["cc-by-nc-4.0", "cc-by-nc-sa-4.0"], "cc-by-nc-sa-4.0"),
    ([None, None], None),
])
def test_the_strictest_licence_wins(licenses, expected):
    assert strictest_license(licenses) == expected


def test_convert_load_and_save_keep_the_release_in_the_chain(released_model, tmp_path):  # noqa: F811
    folder = released_model.save_pretrained(tmp_path / "released")
    chain = _ijepa(folder)["provenance"]
    assert chain[0] == released_step("ijepa_vith14_1k") and chain[0]["model"] == META.url
    assert chain[1]["model"] == "ijepa_vith14_1k" and chain[1]["action"].startswith("converted")
    assert chain_license(chain) == _ijepa(folder)["license"] == _card_license(folder) == "cc-by-nc-4.0"
    again = ijepa_hub.from_pretrained(folder, with_context_encoder=True, with_predictor=True).save_pretrained(
        tmp_path / "again")  # loading and saving is no new step
    assert _ijepa(again)["provenance"] == chain and provenance_of(again) == chain
    assert "1. `https://dl.fbaipublicfiles.com" in (again / "README.md").read_text()


def _run(tiny_train_args, out, *args):
    recipe, _ = parse_args([*tiny_train_args, "--train.threads", "1", "--train.max_steps", "1", *args])
    return train(recipe, out_dir=out, progress=False)


def test_train_finetune_and_export_extend_the_chain(tiny_train_args, tmp_path):
    from ijepa_hub.deploy import export_deployable
    from ijepa_hub.finetune import finetune
    from ijepa_hub.finetune.cli import parse_args as ft_args

    scratch = _run(tiny_train_args, tmp_path / "scratch").export_dir
    (first,) = _ijepa(scratch)["provenance"]
    assert first["model"] is None and first["license"] is None
    assert first["action"].startswith("pretrained from random initialisation with ijepa-train (recipe ")
    assert _card_license(scratch) == "apache-2.0"

    meta = ijepa_hub.from_pretrained(scratch, with_context_encoder=True, with_predictor=True)  # as if Meta's
    meta.save_pretrained(tmp_path / "meta", provenance=[released_step("ijepa_vith14_1k")])
    for flag, word in (("--init", "continued pretraining"), ("--teacher", "distilled into a")):
        out = _run(tiny_train_args, tmp_path / flag[2:], flag, str(tmp_path / "meta")).export_dir
        chain = _ijepa(out)["provenance"]
        assert chain[0] == released_step("ijepa_vith14_1k") and chain[1]["model"] == str(tmp_path / "meta")
        assert chain[1]["action"].startswith(word) and chain[1]["license"] == "cc-by-nc-4.0", flag
        assert _card_license(out) == "cc-by-nc-4.0"

    ft = finetune(ft_args([str(tmp_path / "init" / "model"), "--data.num_train", "16", "--data.num_val", "8",
                           "--data.batch_size_per_device", "8", "--optim.batch_size", "8", "--optim.epochs", "1",
                           "--train.num_workers", "0", "--model.drop_path_rate", "0"])[0],
                  out_dir=tmp_path / "ft", progress=False)
    chain = _ijepa(ft.export_dir)["provenance"]
    assert [s["action"].split(" ")[0] for s in chain] == ["released", "continued", "fine-tuned"]
    assert chain[2]["model"] == str(tmp_path / "init" / "model") and _card_license(ft.export_dir) == "cc-by-nc-4.0"
    assert "fine-tuned as a classifier" in (ft.export_dir / "README.md").read_text()

    exported = export_deployable(ijepa_hub.from_pretrained(ft.export_dir), tmp_path / "export", format="onnx")
    meta_json = json.loads((exported.folder / "export.json").read_text())
    assert [s["action"].split(" ")[0] for s in meta_json["provenance"]] == ["released", "continued", "fine-tuned",
                                                                            "exported"]
    assert meta_json["license"] == "cc-by-nc-4.0"


def test_a_repo_written_before_provenance_lists_gets_its_chain_from_what_it_recorded(tmp_path, tiny_model):
    folder = ijepa_hub.save_pretrained(tiny_model, tmp_path / "old", variant="ijepa_vith14_1k")
    config = json.loads((folder / "config.json").read_text())
    del config["ijepa"]["provenance"]
    (folder / "config.json").write_text(json.dumps(config))
    assert provenance_of(folder) == [released_step("ijepa_vith14_1k")]


def test_the_objective_is_stated_in_words():
    default = load_recipe("default")
    assert default.loss.describe() == ("I-JEPA with VICReg variance 2 and covariance 0.1 terms on the context tokens "
                                       "and a SIGReg term (0.0005, 256 projections) on the context tokens")
    assert load_recipe("default_ijepa").loss.describe() == "I-JEPA, the paper's objective (no extra terms)"
    assert describe_objective({"target_norm": "batch_norm"}).startswith("I-JEPA (targets normalised by batch norm)")
    header = (Path(ijepa_hub.__file__).parent / "recipes" / "default.yaml").read_text()
    assert "Objective: I-JEPA plus two anti-collapse terms" in header and "default_ijepa" in header


def test_default_ijepa_is_the_default_but_for_its_loss():
    a, b = load_recipe("default").to_dict(), load_recipe("default_ijepa").to_dict()
    assert {k for k in a if a[k] != b[k]} == {"name", "description", "loss"}
    assert b["loss"]["vcreg_variance"] == b["loss"]["vcreg_covariance"] == b["loss"]["sigreg_weight"] == 0


def test_run_log_summary_and_card_state_the_objective(tiny_train_args, tmp_path, caplog, capsys):
    from ijepa_hub.train.cli import main

    args = [*tiny_train_args, "--train.threads", "1", "--train.max_steps", "1", "--loss.vcreg_variance", "2.0",
            "--out", str(tmp_path / "run"), "--no-progress"]
    with caplog.at_level(logging.INFO, logger="ijepa_hub"):
        assert main(args) == 0
    said = "I-JEPA with VICReg variance 2 and covariance 0 terms on the context tokens"
    assert f"objective: {said}" in caplog.text
    assert f"objective: {said}" in capsys.readouterr().out
    assert f"| Objective | {said} |" in (tmp_path / "run" / "model" / "README.md").read_text()
