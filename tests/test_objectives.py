"""The opt-in anti-collapse objectives (ijepa_hub.models.objectives): their values against hand computations,
their wiring into IJepa.forward, and bit-identical training when every new recipe key is at its default."""
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import TINY_TRAIN_ARGS

import ijepa_hub
from ijepa_hub.errors import RecipeError
from ijepa_hub.models.objectives import (
    Objectives,
    covariance_loss,
    epps_pulley,
    normalize_targets,
    sigreg,
    variance_loss,
)
from ijepa_hub.recipe import LossSection, recipe_key_help


def _trapezoid_by_hand(f) -> float:
    """The trapezoid rule of f on LeJEPA's grid, 17 points on [-5, 5] (step 0.625)."""
    ts = [-5 + 0.625 * i for i in range(17)]
    values = [f(t) for t in ts]
    return 0.625 * (sum(values) - 0.5 * (values[0] + values[-1]))


def test_epps_pulley_of_a_point_mass_at_zero():
    # phi_N(t) = 1 for N samples at 0: N * integral (1 - g)^2 g, g = exp(-t^2/2)
    g = lambda t: math.exp(-0.5 * t * t)  # noqa: E731
    expected = 4 * _trapezoid_by_hand(lambda t: (1 - g(t)) ** 2 * g(t))
    got = epps_pulley(torch.zeros(4, 1))
    assert got.shape == (1,)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    # the same integral in closed form over the whole line, sqrt(2pi) - 2 sqrt(pi) + sqrt(2pi/3): the grid is fine
    assert expected == pytest.approx(4 * (math.sqrt(2 * math.pi) - 2 * math.sqrt(math.pi) + math.sqrt(2 * math.pi / 3)), rel=1e-3)


def test_epps_pulley_of_two_symmetric_points_and_per_column():
    # samples {1, -1}: mean cos(t x) = cos t, mean sin(t x) = 0; a second column {0, 0} is independent of the first
    g = lambda t: math.exp(-0.5 * t * t)  # noqa: E731
    expected = 2 * _trapezoid_by_hand(lambda t: (math.cos(t) - g(t)) ** 2 * g(t))
    point_mass = 2 * _trapezoid_by_hand(lambda t: (1 - g(t)) ** 2 * g(t))
    got = epps_pulley(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
    torch.testing.assert_close(got, torch.tensor([expected, point_mass]), rtol=1e-6, atol=0)
    # an asymmetric sample adds the sine part: {1, 1} -> (cos t - g)^2 + sin^2 t
    shifted = 2 * _trapezoid_by_hand(lambda t: (math.cos(t) - g(t)) ** 2 * g(t) + math.sin(t) ** 2 * g(t))
    assert epps_pulley(torch.ones(2, 1)).item() == pytest.approx(shifted, rel=1e-6)


def test_epps_pulley_is_small_for_gaussian_samples_and_large_otherwise():
    x = torch.randn(2000, 3, generator=torch.Generator().manual_seed(0))
    gaussian = epps_pulley(x)
    assert (gaussian < 1.0).all(), gaussian  # N times a tiny distance
    assert (epps_pulley(3 * x) > 50 * gaussian.max()).all()
    assert (epps_pulley(x + 2) > 50 * gaussian.max()).all()


def test_sigreg_in_one_dimension_is_the_epps_pulley_statistic():
    # D = 1: every unit direction is +1 or -1 and the statistic is even in x, so the projections do not matter
    z = torch.tensor([[0.3], [-1.2], [2.0], [0.1], [0.7]])
    gen = torch.Generator().manual_seed(3)
    torch.testing.assert_close(sigreg(z, 7, generator=gen), epps_pulley(z)[0], rtol=1e-6, atol=0)


def test_sigreg_projects_on_unit_directions_from_the_generator():
    z = torch.randn(64, 5, generator=torch.Generator().manual_seed(1))
    directions = torch.randn(5, 3, generator=torch.Generator().manual_seed(2))
    directions = directions / directions.norm(dim=0)
    expected = epps_pulley(z @ directions).mean()
    torch.testing.assert_close(sigreg(z, 3, generator=torch.Generator().manual_seed(2)), expected)


def test_variance_and_covariance_terms_by_hand():
    z = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    # column variances (unbiased) 2 and 0: std sqrt(2 + 1e-4) > 1 -> 0; sqrt(1e-4) = 0.01 -> 0.99; mean 0.495
    assert variance_loss(z).item() == pytest.approx(0.495, abs=1e-7)
    assert variance_loss(z, gamma=2.0).item() == pytest.approx(((2 - math.sqrt(2.0001)) + 1.99) / 2, abs=1e-6)
    # [[0, 0], [2, 2]] centred: +-[1, 1]; covariance [[2, 2], [2, 2]]; off-diagonal squares 4 + 4, over D = 2
    assert covariance_loss(torch.tensor([[0.0, 0.0], [2.0, 2.0]])).item() == pytest.approx(4.0)
    # uncorrelated columns: no covariance penalty
    assert covariance_loss(torch.tensor([[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0]])).item() == 0.0


def test_target_normalisations():
    h = torch.randn(3, 5, 8, generator=torch.Generator().manual_seed(0)) * 4 + 1
    assert torch.equal(normalize_targets(h, "layer_norm"), F.layer_norm(h, (8,)))
    assert normalize_targets(h, "none") is h
    bn = normalize_targets(h, "batch_norm").reshape(-1, 8)
    torch.testing.assert_close(bn.mean(0), torch.zeros(8), atol=1e-5, rtol=0)
    torch.testing.assert_close(bn.var(0, unbiased=False), torch.ones(8), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="batch_norm"):
        normalize_targets(h, "rms")


def _masks():
    return [torch.tensor([[0, 1, 2, 3, 4, 5, 6, 7]] * 2)], [torch.tensor([[10, 11]] * 2), torch.tensor([[14, 15]] * 2)]


def test_forward_adds_the_weighted_terms(tiny_ijepa, image_batch):
    ctx, tgt = _masks()
    plain = tiny_ijepa(image_batch, ctx, tgt)
    z = tiny_ijepa.context_encoder(image_batch, ctx)
    prediction = tiny_ijepa.predictor(z, ctx, tgt)
    tiny_ijepa.objectives = Objectives(sigreg_weight=0.5, sigreg_projections=4, vcreg_variance=2.0,
                                       vcreg_covariance=0.25, vcreg_on="predictor")
    torch.manual_seed(7)
    total = tiny_ijepa(image_batch, ctx, tgt)
    torch.manual_seed(7)  # SIGReg draws its directions from the global RNG (restored on resume)
    expected = (plain + 0.5 * sigreg(z.mean(1), 4) + 2.0 * variance_loss(prediction.reshape(-1, 192))
                + 0.25 * covariance_loss(prediction.reshape(-1, 192)))
    torch.testing.assert_close(total, expected, rtol=1e-6, atol=1e-6)
    total.backward()  # the terms reach the context encoder
    assert tiny_ijepa.context_encoder.blocks[0].attn.qkv.weight.grad.abs().sum() > 0

    tiny_ijepa.objectives = Objectives(target_norm="none")
    target = tiny_ijepa.target_encoder(image_batch)
    assert torch.equal(tiny_ijepa.target_features(image_batch, tgt),
                       ijepa_hub.models.apply_masks(target, tgt))


def test_loss_section_keys_have_help_and_defaults_that_are_off():
    helps = recipe_key_help()
    names = [f.name for f in dataclasses.fields(LossSection)]
    assert all(helps[f"loss.{n}"] for n in names)
    assert LossSection().objectives() == Objectives() and not Objectives().enabled
    assert {f.name for f in dataclasses.fields(Objectives)} == set(names)
    for name in ("in1k_vith14", "in22k_vitg16", "modest_vit_tiny"):  # released and scaled-down released recipes
        assert ijepa_hub.load_recipe(name).loss == LossSection(), name
    default = ijepa_hub.load_recipe("default").loss.objectives()  # the built-in default: VCReg + SIGReg on tokens
    assert default == Objectives(vcreg_variance=2.0, vcreg_covariance=0.1, vcreg_on="context", sigreg_weight=0.0005,
                                 sigreg_on="context")
    with pytest.raises(RecipeError, match="sigreg_weight"):
        LossSection(sigreg_weight=-1.0).objectives()


# The released-style recipe below trained for 3 steps on main before the objectives existed (this machine,
# OMP_NUM_THREADS=1): its losses, as float.hex.
_MAIN_LOSSES = ["0x1.c7bb760000000p-2", "0x1.b775660000000p-2", "0x1.a7c8900000000p-2"]
_DEFAULTS = ["--loss.target_norm", "layer_norm", "--loss.sigreg_weight", "0", "--loss.sigreg_projections", "256",
             "--loss.sigreg_on", "context_pooled", "--loss.vcreg_variance", "0", "--loss.vcreg_covariance", "0",
             "--loss.vcreg_on", "context"]


def test_released_recipe_with_the_new_keys_at_their_defaults_trains_bit_identically(tmp_path, torch_single_thread):
    from ijepa_hub.train.cli import parse_args

    base = ["--recipe", "in1k_vith14", "--model.name", "vit_tiny_patch8", "--model.pred_embed_dim", "96",
            "--data.dataset", "synthetic", "--train.max_steps", "3", *TINY_TRAIN_ARGS,
            "--model.img_size", "64", "--data.source_size", "64"]
    absent, explicit = parse_args(base)[0], parse_args([*base, *_DEFAULTS])[0]
    assert absent == explicit
    losses = [ijepa_hub.train.train(r, out_dir=tmp_path / name, progress=False, export=False).losses
              for name, r in (("absent", absent), ("explicit", explicit))]
    assert losses[0] == losses[1]
    torch.testing.assert_close(torch.tensor(losses[0]), torch.tensor([float.fromhex(x) for x in _MAIN_LOSSES]),
                               rtol=1e-5, atol=0)
