"""Opt-in anti-collapse objectives and target normalisations for I-JEPA (all off in the released recipes).

- :func:`sigreg`: SIGReg (LeJEPA, Balestriero & LeCun 2025): random 1-D projections of the embeddings are
  pushed towards a standard Gaussian through the Epps-Pulley characteristic-function statistic.
- :func:`variance_loss`, :func:`covariance_loss`: the variance hinge and the off-diagonal covariance
  penalty of VICReg (Bardes et al., 2022), as C-JEPA adds them to I-JEPA.
- :func:`normalize_targets`: the target encoder's normalisation: ``layer_norm`` (released, per token),
  ``batch_norm`` (per feature over every token of the batch) or ``none``.

:class:`Objectives` holds the choices; :meth:`Objectives.extra_loss` adds the enabled terms to the
prediction loss. With every weight at 0 nothing is computed and no random number is drawn, so a run
without them is bit-identical to one made before they existed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

__all__ = [
    "Objectives", "TargetNorm", "FeatureSource", "normalize_targets", "epps_pulley", "sigreg", "variance_loss",
    "covariance_loss", "EPPS_PULLEY_T",
]

TargetNorm = Literal["layer_norm", "batch_norm", "none"]
FeatureSource = Literal["context", "context_pooled", "predictor"]

# The Epps-Pulley integration grid of LeJEPA: 17 points on [-5, 5], trapezoid rule, Gaussian weight.
EPPS_PULLEY_T = (-5.0, 5.0, 17)
NORM_EPS = 1e-5  # as F.layer_norm's default, for batch_norm too
VARIANCE_EPS = 1e-4  # VICReg's epsilon inside the square root of the variance


def normalize_targets(h: torch.Tensor, kind: TargetNorm = "layer_norm") -> torch.Tensor:
    """The regression targets' normalisation of target-encoder tokens [B, N, D] (no affine parameters).

    ``layer_norm``: each token standardised over its D features (released). ``batch_norm``: each feature
    standardised over the B*N tokens of the batch (a shared component across images is removed).
    ``none``: the encoder's output as it is (its own final LayerNorm, with affine parameters).
    """
    if kind == "layer_norm":
        return F.layer_norm(h, (h.shape[-1],))
    if kind == "batch_norm":
        flat = h.reshape(-1, h.shape[-1])
        mean, var = flat.mean(0), flat.var(0, unbiased=False)
        return (h - mean) / torch.sqrt(var + NORM_EPS)
    if kind == "none":
        return h
    raise ValueError(f"unknown target normalisation {kind!r}; use 'layer_norm', 'batch_norm' or 'none'")


def epps_pulley(x: torch.Tensor, t_range: tuple[float, float, int] = EPPS_PULLEY_T) -> torch.Tensor:
    """Epps-Pulley statistic of each column of ``x`` [N, K] against a standard Gaussian, shape [K].

    ``N * integral |phi_N(t) - exp(-t^2/2)|^2 exp(-t^2/2) dt``, with ``phi_N(t) = mean_n exp(i t x_n)`` the
    empirical characteristic function, integrated by the trapezoid rule on ``linspace(*t_range)``.
    ``|phi_N - g|^2 = (mean cos(t x) - g)^2 + (mean sin(t x))^2`` (g is real): no complex numbers.
    """
    t = torch.linspace(*t_range, device=x.device, dtype=x.dtype)
    gauss = torch.exp(-0.5 * t * t)
    xt = x.unsqueeze(-1) * t  # [N, K, T]
    err = (torch.cos(xt).mean(0) - gauss) ** 2 + torch.sin(xt).mean(0) ** 2
    return torch.trapezoid(err * gauss, t, dim=-1) * x.shape[0]


def sigreg(z: torch.Tensor, num_projections: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """SIGReg of embeddings ``z`` [N, D]: the mean :func:`epps_pulley` statistic over ``num_projections``
    random unit directions (drawn from ``generator``, or the global RNG, afresh at each call)."""
    directions = torch.randn(z.shape[-1], num_projections, device=z.device, dtype=z.dtype, generator=generator)
    directions = directions / directions.norm(dim=0, keepdim=True)
    return epps_pulley(z @ directions).mean()


def variance_loss(z: torch.Tensor, gamma: float = 1.0, eps: float = VARIANCE_EPS) -> torch.Tensor:
    """VICReg's variance term of [N, D]: ``mean_d relu(gamma - sqrt(Var_d(z) + eps))`` (unbiased variance)."""
    std = torch.sqrt(z.var(dim=0) + eps)
    return F.relu(gamma - std).mean()


def covariance_loss(z: torch.Tensor) -> torch.Tensor:
    """VICReg's covariance term of [N, D]: the sum of squared off-diagonal covariances, divided by D."""
    n, d = z.shape
    centred = z - z.mean(0)
    cov = centred.T @ centred / (n - 1)
    off = cov - torch.diag(torch.diagonal(cov))
    return off.pow(2).sum() / d


@dataclass(frozen=True)
class Objectives:
    """The opt-in terms added to the I-JEPA prediction loss, and the target normalisation.

    ``loss = prediction + sigreg_weight * SIGReg + vcreg_variance * variance + vcreg_covariance * covariance``,
    each regulariser computed in float32 on its features: ``context`` (the context encoder's tokens,
    [B*K, D]), ``context_pooled`` (their mean per image, [B, D]) or ``predictor`` (the predicted tokens).
    """

    target_norm: TargetNorm = "layer_norm"
    sigreg_weight: float = 0.0
    sigreg_projections: int = 256
    sigreg_on: FeatureSource = "context_pooled"
    vcreg_variance: float = 0.0
    vcreg_covariance: float = 0.0
    vcreg_on: FeatureSource = "context"

    def __post_init__(self) -> None:
        for name in ("sigreg_weight", "vcreg_variance", "vcreg_covariance"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"loss.{name} must be a finite number >= 0, got {value}")
        if self.sigreg_projections < 1:
            raise ValueError(f"loss.sigreg_projections must be >= 1, got {self.sigreg_projections}")

    @property
    def enabled(self) -> bool:
        """Whether any extra term is computed."""
        return self.sigreg_weight > 0 or self.vcreg_variance > 0 or self.vcreg_covariance > 0

    def extra_loss(self, context: torch.Tensor, prediction: torch.Tensor) -> torch.Tensor | None:
        """The weighted sum of the enabled terms (None when none is), from the context encoder's tokens
        [B, K, D] and the predictor's output [M*B, K_tgt, D]."""
        if not self.enabled:
            return None
        features = {
            "context": lambda: context.float().reshape(-1, context.shape[-1]),
            "context_pooled": lambda: context.float().mean(dim=1),
            "predictor": lambda: prediction.float().reshape(-1, prediction.shape[-1]),
        }
        total = context.new_zeros((), dtype=torch.float32)
        if self.sigreg_weight > 0:
            total = total + self.sigreg_weight * sigreg(features[self.sigreg_on](), self.sigreg_projections)
        if self.vcreg_variance > 0 or self.vcreg_covariance > 0:
            z = features[self.vcreg_on]()
            if self.vcreg_variance > 0:
                total = total + self.vcreg_variance * variance_loss(z)
            if self.vcreg_covariance > 0:
                total = total + self.vcreg_covariance * covariance_loss(z)
        return total
