"""Continued pretraining (``--init``) and distillation (``--teacher``): what is loaded, what is refused, what
resumes, what the student's loss is, and where the weights say they came from."""
from __future__ import annotations

import json
import logging

import pytest
import torch
import torch.nn.functional as F
from test_reference_checkpoint import write_released_layout

import ijepa_hub
from ijepa_hub.engine.checkpoint import CHECKPOINT_NAME, load_checkpoint
from ijepa_hub.errors import RecipeError
from ijepa_hub.hub.provenance import source_origin
from ijepa_hub.models.distill import StudentJepa
from ijepa_hub.models.encoder import apply_masks
from ijepa_hub.train import train
from ijepa_hub.train.cli import parse_args

pytestmark = pytest.mark.usefixtures("torch_single_thread")

FROZEN = [  # lr and weight decay 0: the networks must come out exactly as loaded
    "--optim.start_lr", "0", "--optim.lr", "0", "--optim.final_lr", "0", "--optim.weight_decay", "0",
    "--optim.final_weight_decay", "0",
]


def _train(tiny_train_args, out, *args, steps=2, resume=None):
    recipe, _ = parse_args([*tiny_train_args, "--train.threads", "1", "--train.max_steps", str(steps), *args])
    return train(recipe, out_dir=out, resume=resume, progress=False)


def _parts(folder):
    model = ijepa_hub.from_pretrained(folder, with_context_encoder=True, with_predictor=True)
    return {p: getattr(model, p).state_dict() for p in ("context_encoder", "target_encoder", "predictor")}


def _equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    """A 2-step tiny run (its folder: checkpoint, metrics and model/), the source of continued pretraining."""
    from conftest import TINY_TRAIN_ARGS

    out = tmp_path_factory.mktemp("source") / "run"
    torch.set_num_threads(1)
    _train(TINY_TRAIN_ARGS, out)
    return out


def test_init_from_a_run_folder_loads_all_three_networks(source_run, tiny_train_args, tmp_path):
    result = _train(tiny_train_args, tmp_path / "cont", "--init", str(source_run), *FROZEN)
    before, after = _parts(source_run / "model"), _parts(result.export_dir)
    assert _equal(after["context_encoder"], before["context_encoder"])
    assert _equal(after["predictor"], before["predictor"])
    assert not _equal(before["context_encoder"], before["target_encoder"])  # both encoders, not one twice
    config = json.loads((result.export_dir / "config.json").read_text())["ijepa"]
    assert config["origins"]["init"]["source"] == str(source_run) and config["recipe"]["init"]["source"] == str(source_run)


def test_init_from_a_released_pth_tar(tiny_train_args, tmp_path):
    torch.manual_seed(0)
    released = ijepa_hub.create_model("vit_tiny_patch8", img_size=32, pred_depth=2, pred_embed_dim=96)
    with torch.no_grad():
        for p in released.target_encoder.parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = tmp_path / "mine.pth.tar"
    write_released_layout(released, path)
    result = _train(tiny_train_args, tmp_path / "cont", "--init", str(path), *FROZEN)
    after = _parts(result.export_dir)
    assert _equal(after["context_encoder"], released.context_encoder.state_dict())
    assert _equal(after["predictor"], released.predictor.state_dict())


def test_init_from_an_encoder_only_repo_copies_its_encoder_and_warns(source_run, tiny_train_args, tmp_path, caplog):
    encoder_only = ijepa_hub.from_pretrained(source_run)
    encoder_only.save_pretrained(tmp_path / "enc", with_context_encoder=False, with_predictor=False)
    with caplog.at_level(logging.WARNING, logger="ijepa_hub.train"):
        result = _train(tiny_train_args, tmp_path / "cont", "--init", str(tmp_path / "enc"), *FROZEN)
    assert "holds no context encoder and no predictor" in caplog.text and "freshly initialised predictor" in caplog.text
    after = _parts(result.export_dir)
    assert _equal(after["context_encoder"], encoder_only.target_encoder.state_dict())


def test_a_contradicting_size_key_is_refused_naming_both_values(source_run, tiny_train_args, tmp_path):
    with pytest.raises(RecipeError, match=r"model\.depth 3 \(source: 12\)"):
        _train(tiny_train_args, tmp_path / "cont", "--init", str(source_run), "--model.depth", "3")
    assert not (tmp_path / "cont" / CHECKPOINT_NAME).exists()


def test_a_new_img_size_rebuilds_the_position_tables(source_run, tiny_train_args, tmp_path):
    result = _train(tiny_train_args, tmp_path / "cont", "--init", str(source_run), "--model.img_size", "48", *FROZEN)
    before, after = _parts(source_run / "model"), _parts(result.export_dir)
    assert after["context_encoder"]["pos_embed"].shape[1] == 36 and before["context_encoder"]["pos_embed"].shape[1] == 16
    same = {k: v for k, v in after["context_encoder"].items() if k != "pos_embed"}
    assert _equal(same, {k: before["context_encoder"][k] for k in same})


def test_resume_auto_of_an_init_run_is_bit_exact_and_never_reloads_the_source(source_run, tiny_train_args, tmp_path):
    args = ["--init", str(source_run), "--train.checkpoint_every", "2"]
    _train(tiny_train_args, tmp_path / "straight", *args, steps=4)
    _train(tiny_train_args, tmp_path / "cut", *args, steps=2)
    resumed = _train(tiny_train_args, tmp_path / "cut", *args, steps=4, resume="auto")
    a, b = load_checkpoint(tmp_path / "straight" / CHECKPOINT_NAME), load_checkpoint(tmp_path / "cut" / CHECKPOINT_NAME)
    assert resumed.start_step == 2 and a["step"] == b["step"] == 4
    assert _equal(a["model"], b["model"])


def test_a_distillation_step_loss_equals_the_hand_computed_one():
    torch.manual_seed(0)
    teacher_config = ijepa_hub.get_model_config("vit_tiny_patch8", img_size=32, embed_dim=64, depth=2, num_heads=2)
    teacher = ijepa_hub.create_model("vit_tiny_patch8", img_size=32, embed_dim=64, depth=2, num_heads=2).target_encoder
    config = ijepa_hub.get_model_config("vit_tiny_patch8", img_size=32, embed_dim=32, depth=1, num_heads=2,
                                        pred_embed_dim=16, pred_depth=1, pred_num_heads=2)
    student = StudentJepa(config, teacher, teacher_config=teacher_config)
    x = torch.randn(2, 3, 32, 32)
    ctx, tgt = [torch.tensor([[0, 1, 2, 5, 6]] * 2)], [torch.tensor([[10, 11]] * 2), torch.tensor([[3, 7]] * 2)]
    loss = student(x, ctx, tgt)

    with torch.no_grad():
        h = teacher(x)  # [B, 16, 64]
        normed = (h - h.mean(-1, keepdim=True)) / torch.sqrt(h.var(-1, unbiased=False, keepdim=True) + 1e-5)
        target = torch.cat([torch.stack([normed[b, idx[b]] for b in range(2)]) for idx in tgt])  # mask-major
        prediction = student.predictor(student.context_encoder(x, ctx), ctx, tgt)
    diff = (prediction - target).abs()
    by_hand = torch.where(diff < 1, 0.5 * diff**2, diff - 0.5).mean()
    assert prediction.shape == (4, 2, 64)  # the predictor speaks the teacher's width
    assert torch.allclose(loss, by_hand, atol=1e-6)
    assert torch.allclose(target, apply_masks(F.layer_norm(h, (64,)), tgt), atol=1e-5)
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert not any(k.startswith("teacher") or "_teacher" in k for k in student.state_dict())


def test_a_teacher_of_another_patch_grid_is_refused_with_the_fix(source_run, tiny_train_args, tmp_path):
    with pytest.raises(RecipeError, match=r"patch grid .* 8 x 8\) differs from the teacher's .* 4 x 4\).*Fix: give "
                                          r"the student img_size 32"):
        _train(tiny_train_args, tmp_path / "student", "--teacher", str(source_run), "--model.img_size", "64")


def test_the_student_repo_loads_in_timm_with_equal_features(source_run, tiny_train_args, tmp_path, hub_server):
    import timm

    result = _train(tiny_train_args, tmp_path / "student", "--teacher", str(source_run), "--model.depth", "2",
                    "--model.embed_dim", "96")
    student = ijepa_hub.from_pretrained(result.export_dir)
    assert student.config.depth == 2 and student.config.embed_dim == 96
    ijepa_hub.push_to_hub(result.export_dir, "tester/student")
    encoder = timm.create_model("hf-hub:tester/student", pretrained=True).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert (encoder(x) - student.encoder.forward_pooled(x)).abs().max() <= 1e-5
    card = (result.export_dir / "README.md").read_text()
    assert f"| Teacher | `{source_run}` |" in card and "distilled from the frozen teacher" in card


def test_licences_are_inherited_on_both_paths(source_run, tiny_train_args, tmp_path):
    meta = ijepa_hub.from_pretrained(source_run, with_context_encoder=True, with_predictor=True)
    meta.save_pretrained(tmp_path / "meta", license="cc-by-nc-4.0")  # as if it came from Meta's weights
    for flag, out in (("--init", "cont"), ("--teacher", "student")):
        result = _train(tiny_train_args, tmp_path / out, flag, str(tmp_path / "meta"))
        config = json.loads((result.export_dir / "config.json").read_text())
        assert config["ijepa"]["license"] == config["pretrained_cfg"]["license"] == "cc-by-nc-4.0", flag
        assert "license: cc-by-nc-4.0" in (result.export_dir / "README.md").read_text()
    origin = source_origin("ijepa_vith14_1k")  # Meta's: by name, nothing downloaded
    assert (origin.variant, origin.license) == ("ijepa_vith14_1k", "cc-by-nc-4.0")
    assert source_origin(source_run).license is None  # trained here from random init: nothing inherited


def test_a_classifier_of_licensed_weights_keeps_their_licence(source_run, tmp_path):
    from ijepa_hub.finetune.model import build_classifier
    from ijepa_hub.finetune.recipe import FtModelSection

    meta = ijepa_hub.from_pretrained(source_run)
    meta.save_pretrained(tmp_path / "meta", license="cc-by-nc-4.0")
    clf = build_classifier(FtModelSection(source=str(tmp_path / "meta"), img_size=None, depth=None), ["a", "b"],
                           crop_pct=1.0)
    folder = clf.save_pretrained(tmp_path / "clf")
    config = json.loads((folder / "config.json").read_text())
    assert config["ijepa"]["license"] == config["pretrained_cfg"]["license"] == "cc-by-nc-4.0"
    assert "license: cc-by-nc-4.0" in (folder / "README.md").read_text()
    assert config["ijepa"]["origins"]["init"]["source"] == str(tmp_path / "meta")
    plain = build_classifier(FtModelSection(source=str(source_run), img_size=None, depth=None), ["a", "b"], crop_pct=1.0)
    assert "license: apache-2.0" in (plain.save_pretrained(tmp_path / "plain") / "README.md").read_text()


def test_a_released_source_of_another_size_is_refused_before_any_download(tiny_train_args, tmp_path, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("downloaded a released checkpoint to refuse a size the registry states")

    monkeypatch.setattr("ijepa_hub.train.sources.load_source", no_download)
    with pytest.raises(RecipeError, match=r"model\.embed_dim 192 \(source: 1280\)"):
        _train(tiny_train_args, tmp_path / "cont", "--init", "ijepa_vith14_1k")
    assert not (tmp_path / "cont").exists()
