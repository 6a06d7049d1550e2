"""I-JEPA's own parallel pieces: how FSDP2 shards its three networks, and the EMA update on those shards."""
from __future__ import annotations

import torch
import torch.nn as nn

from ..models import IJepa
from ..models.ijepa import ema_

__all__ = ["shard_ijepa", "ema_update"]


def shard_ijepa(model: nn.Module) -> None:
    """FSDP2 ``fully_shard`` every block of both encoders and the predictor the same way, so the target and
    context encoders hold matching local shards and the EMA update stays a local element-wise operation.

    There is no root over the three: each network is its own FSDP root, so the collapse monitor can run the
    target encoder alone."""
    from torch.distributed.fsdp import fully_shard

    for encoder in (model.context_encoder, model.target_encoder):
        for block in encoder.blocks:
            fully_shard(block)
        fully_shard(encoder, reshard_after_forward=True)  # the target encoder has no backward
    for block in model.predictor.predictor_blocks:
        fully_shard(block)
    fully_shard(model.predictor, reshard_after_forward=True)


@torch.no_grad()
def ema_update(model: IJepa, momentum: float) -> None:
    """``target = m * target + (1 - m) * context``; with FSDP2 on each rank's local shards."""
    if not hasattr(model.target_encoder, "reshard"):  # not FSDP-sharded
        model.update_target(momentum)
        return
    for encoder in (model.context_encoder, model.target_encoder):
        encoder.reshard()  # every parameter back to its sharded DTensor
    target = [p.to_local() for p in model.target_encoder.parameters()]
    online = [p.detach().to_local() for p in model.context_encoder.parameters()]
    if [t.shape for t in target] != [o.shape for o in online]:
        raise RuntimeError("target and context encoders are sharded differently; the EMA needs equal shards")
    ema_(target, online, momentum)
