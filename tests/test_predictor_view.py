"""The predictor view (ijepa-eval predict): exact nearest-patch retrieval, masks, the view's numbers and the CLI."""
import json

import pytest
import torch
import torch.nn.functional as F

import ijepa_hub
from ijepa_hub.eval import predictor_view as pv
from ijepa_hub.eval.cli import main as eval_main


def brute_force_nearest(queries, bank):
    index, best = [], []
    for q in queries:
        scores = [float(F.cosine_similarity(q, b, dim=0)) for b in bank]
        j = max(range(len(scores)), key=lambda k: (scores[k], -k))  # highest, lowest index on ties
        index.append(j)
        best.append(scores[j])
    return torch.tensor(index), torch.tensor(best)


@pytest.mark.parametrize("chunk", [1, 3, 7, 1000])
def test_nearest_patches_matches_a_brute_force_loop(chunk):
    g = torch.Generator().manual_seed(0)
    queries, bank = torch.randn(9, 6, generator=g), torch.randn(23, 6, generator=g) * 3  # norms differ: cosine, not dot
    index, best = pv.nearest_patches(queries, bank, chunk=chunk)
    want_index, want_best = brute_force_nearest(queries, bank)
    assert torch.equal(index, want_index)
    torch.testing.assert_close(best, want_best, rtol=1e-5, atol=1e-6)


def test_nearest_patches_finds_a_query_in_the_bank_and_refuses_bad_shapes():
    bank = torch.randn(50, 8, generator=torch.Generator().manual_seed(1))
    index, best = pv.nearest_patches(bank[[4, 31, 49]] * 5, bank, chunk=16)
    assert index.tolist() == [4, 31, 49]
    torch.testing.assert_close(best, torch.ones(3))
    with pytest.raises(ValueError, match="share D"):
        pv.nearest_patches(torch.randn(2, 3), bank)
    with pytest.raises(ValueError, match="empty"):
        pv.nearest_patches(torch.randn(2, 8), torch.empty(0, 8))


def test_image_patches_are_in_token_order():
    images = torch.arange(2 * 3 * 4 * 6, dtype=torch.int32).reshape(2, 3, 4, 6)
    patches = pv.image_patches(images, 2)
    assert patches.shape == (2 * 2 * 3, 3, 2, 2)
    assert torch.equal(patches[4], images[0, :, 2:4, 2:4])  # image 0, row 1, column 1 of a 2x3 grid
    assert torch.equal(patches[6 + 2], images[1, :, 0:2, 4:6])


def test_block_masks_at_centres_a_block_and_leaves_the_rest_as_context():
    context, targets = pv.block_masks_at((4, 4), 0, 3, height=2, width=2)
    assert targets.shape == (1, 1, 4) and targets[0, 0].tolist() == [2, 3, 6, 7]  # clamped into the grid
    assert sorted(context[0].tolist() + targets[0, 0].tolist()) == list(range(16))
    context, targets = pv.block_masks_at((2, 2), 1, 1, height=5, width=5)  # too large: one row is left as context
    assert context.shape[1] == 2 and targets.shape[2] == 2
    with pytest.raises(ValueError, match="outside"):
        pv.block_masks_at((4, 4), 4, 0, height=1, width=1)


def test_view_settings_read_the_stored_recipe():
    recipe = ijepa_hub.load_recipe("default").to_dict()
    s = pv.view_settings(recipe, seed=3)
    assert s.mask.num_targets == 2 and s.mask.target_scale == (0.1, 0.15) and s.mask.min_keep == 4 and s.seed == 3
    assert pv.view_settings(None).mask == ijepa_hub.recipe.MaskSection()  # released settings


@pytest.fixture
def tiny_images():
    return pv.synthetic_images(2, 32)


def test_predictor_view_with_given_masks_is_the_models_own_prediction(tiny_ijepa, tiny_images):
    model = tiny_ijepa.eval()
    context, targets = pv.block_masks_at((4, 4), 1, 1, height=2, width=2)
    masks = (context.expand(2, -1), targets.expand(1, 2, -1))
    views = pv.predictor_view(model, tiny_images, masks=masks)
    x = pv.to_model_input(tiny_images)
    with torch.no_grad():
        want = F.cosine_similarity(model.predict(x, masks[0], masks[1]), model.target_features(x, masks[1]), dim=-1)
    for i, view in enumerate(views):
        torch.testing.assert_close(view.cosine[0], want[i], rtol=1e-4, atol=1e-5)
        assert view.grid == (4, 4) and len(view.bank) == 16  # the image's own 16 patches
        assert view.mean_cosine == pytest.approx(float(want[i].mean()), abs=1e-5)
    assert 0.0 <= views[0].self_retrieval() <= 1.0


def test_a_perfect_predictor_retrieves_every_target_patch_itself(tiny_ijepa, tiny_images):
    """With the predictor replaced by the truth, the view reports cosine 1 and 100 % self-retrieval."""
    model = tiny_ijepa.eval()

    def oracle(z, context_masks, target_masks):
        tokens = ijepa_hub.models.objectives.normalize_targets(model.target_encoder(pv.to_model_input(tiny_images)))
        return ijepa_hub.models.encoder.apply_masks(tokens, list(target_masks))

    model.predictor.forward = oracle
    settings = pv.ViewSettings(mask=ijepa_hub.load_recipe("default").mask)
    views = pv.predictor_view(model, tiny_images, settings=settings)
    assert [len(v.targets) for v in views] == [2, 2]
    for v in views:
        assert v.mean_cosine == pytest.approx(1.0, abs=1e-5)
        assert v.self_retrieval() == 1.0


def test_a_model_without_predictor_is_refused(tiny_ijepa, tiny_images):
    tiny_ijepa.predictor = None
    with pytest.raises(ijepa_hub.errors.HubLayoutError, match="predictor"):
        pv.predictor_view(tiny_ijepa, tiny_images)


@pytest.fixture
def saved_tiny(tmp_path, tiny_ijepa):
    recipe = ijepa_hub.load_recipe("default")
    with_pred = ijepa_hub.save_pretrained(tiny_ijepa, tmp_path / "with", recipe=recipe)
    without = ijepa_hub.save_pretrained(tiny_ijepa, tmp_path / "without", recipe=recipe, with_predictor=False)
    return with_pred, without


def test_predict_cli_writes_the_picture_and_the_numbers(saved_tiny, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out, js = tmp_path / "p.png", tmp_path / "p.json"
    bank = tmp_path / "bank"
    bank.mkdir()
    for i, image in enumerate(pv.synthetic_images(3, 40)):
        ijepa_hub.data.images.Image.fromarray(image.permute(1, 2, 0).numpy()).save(bank / f"{i}.png")
    assert eval_main(["predict", str(saved_tiny[0]), "--out", str(out), "--baseline", "--bank", str(bank),
                      "--json", str(js)]) == 0
    results = json.loads(js.read_text())
    assert [r["encoder"] for r in results] == ["model", "random_init"] and results[0]["bank"] == str(bank)
    assert "self_retrieval" not in results[0] and -1 <= results[0]["mean_cosine"] <= 1
    from test_eval_plots import check_png

    check_png(out)
    assert "mean cosine" in capsys.readouterr().out


def test_predict_cli_refuses_a_source_without_predictor(saved_tiny, tmp_path, capsys):
    assert eval_main(["predict", str(saved_tiny[1]), "--out", str(tmp_path / "p.png")]) == 1
    err = capsys.readouterr().err
    assert "predictor" in err and "Fix:" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "p.png").exists()
