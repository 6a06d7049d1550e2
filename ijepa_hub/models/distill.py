"""Distillation in I-JEPA's own terms: a student context encoder and predictor of any size predict a frozen
teacher's layer-normed patch features at the target blocks. There is no EMA target: the teacher is the target
(the "static teacher" form of latent prediction, as in SALT, 2025)."""
from __future__ import annotations

import torch
import torch.nn as nn

from ..registry import ModelConfig
from .encoder import MaskArg, VisionTransformerEncoder, apply_masks
from .ijepa import IJepa, LossKind
from .objectives import Objectives, normalize_targets
from .predictor import Predictor

__all__ = ["StudentJepa", "check_same_grid"]


def check_same_grid(student: ModelConfig, teacher: ModelConfig) -> None:
    """Refuse a student whose patch grid differs from the teacher's: it predicts the teacher's tokens one for one."""
    s, t = student.img_size // student.patch_size, teacher.img_size // teacher.patch_size
    if s != t:
        raise ValueError(
            f"the student's patch grid ({student.img_size} px / patch {student.patch_size} = {s} x {s}) differs "
            f"from the teacher's ({teacher.img_size} px / patch {teacher.patch_size} = {t} x {t}); its predictions "
            f"could not be compared token for token. Fix: give the student img_size {t * student.patch_size} "
            f"(model.img_size) or a patch size of {teacher.img_size // t * student.img_size // teacher.img_size or 1}"
        )


class StudentJepa(IJepa):
    """A student (context encoder + predictor, ``config`` sizes) of a frozen ``teacher`` encoder.

    The student's context encoder is its feature encoder (:attr:`encoder`, what is exported); the predictor
    maps its context tokens to the teacher's width at the target positions. The teacher is held outside the
    module tree: it is not in :meth:`state_dict` (checkpoints and exports hold the student only), has no
    gradient and follows :meth:`to` / :meth:`cuda` as the student does. It runs under ``inference_mode``.
    """

    encoder_name = "context"

    def __init__(
        self,
        config: ModelConfig,
        teacher: VisionTransformerEncoder,
        *,
        teacher_config: ModelConfig,
        loss: LossKind = "smooth_l1",
        drop_path_rate: float = 0.0,
        objectives: Objectives | None = None,
        teacher_dtype: torch.dtype | None = None,
    ) -> None:
        check_same_grid(config, teacher_config)
        nn.Module.__init__(self)
        self.config, self.teacher_config = config, teacher_config
        self.loss_kind: LossKind = loss
        self.objectives = objectives if objectives is not None else Objectives()
        self.context_encoder = VisionTransformerEncoder.from_config(config, drop_path_rate=drop_path_rate)
        self.predictor = Predictor.from_config(config, out_dim=teacher_config.embed_dim)
        teacher.requires_grad_(False).eval()
        self._teacher = (teacher,)  # a tuple: not a submodule, so not in state_dict, parameters() or DDP
        self.teacher_dtype = teacher_dtype  # bf16 on a GPU; None: the teacher's own dtype

    @property
    def teacher(self) -> VisionTransformerEncoder:
        return self._teacher[0]

    @property
    def target_encoder(self) -> VisionTransformerEncoder:
        """The student's encoder: what monitors read and what an export writes as the feature encoder."""
        return self.context_encoder

    def _apply(self, fn, recurse: bool = True):  # .to(), .cuda(), .float()... move the teacher with the student
        super()._apply(fn, recurse)
        self.teacher._apply(fn, recurse)
        return self

    def train(self, mode: bool = True) -> StudentJepa:
        super().train(mode)
        self.teacher.eval()  # frozen: no drop path, ever
        return self

    def target_features(self, images: torch.Tensor, target_masks: MaskArg) -> torch.Tensor:
        """The teacher's layer-normed patch features at the target blocks, [M*B, K_tgt, D_teacher]."""
        with torch.inference_mode():
            if self.teacher_dtype is not None and images.device.type == "cuda":
                with torch.autocast("cuda", dtype=self.teacher_dtype):
                    h = self.teacher(images)
            else:
                h = self.teacher(images)
            h = apply_masks(normalize_targets(h.float(), self.objectives.target_norm), target_masks)
        return h.clone()  # an ordinary tensor: the loss saves it for the backward pass

    def update_target(self, momentum: float) -> None:
        """No EMA: the teacher is the target."""
