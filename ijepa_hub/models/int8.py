"""Dynamic int8 inference on CPU through onnxruntime: ONNX export, int8 quantization, an int8 encoder runner.

``quantize="int8"`` in :func:`~ijepa_hub.models.extract.extract_features` and ``ijepa-hub export --quantize
int8`` share this: the network is exported to ONNX, onnxruntime's dynamic quantization stores the weights of
its matrix products as int8 (per tensor) and quantizes their inputs to uint8 per batch at run time, which
runs on the VNNI dot-product instructions. Measured against torchao's dynamic int8 (eager) on a ViT-B/16 at
224 px here, onnxruntime was the faster (``benchmarks/results/cpu_fastpaths.json``), so it is the backend;
``torch.ao.quantization`` is deprecated. QInt8 weights (u8 x s8 products) measured faster than QUInt8 here.
"""
from __future__ import annotations

import logging
import os
import tempfile
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..errors import MissingExtraError

__all__ = ["ONNX_EXTRA_HINT", "needs_onnx", "export_onnx", "quantize_int8", "ort_session", "Int8Encoder", "int8_encoder"]

logger = logging.getLogger("ijepa_hub.int8")

ONNX_EXTRA_HINT = "pip install 'ijepa-hub[onnx]' (from a clone: pip install -e '.[onnx]')"


def needs_onnx() -> Any:
    """The ``onnxruntime`` module, after checking that the ONNX export's packages are installed."""
    try:
        import onnx  # noqa: F401
        import onnxruntime
        import onnxscript  # noqa: F401  (torch.onnx's exporter needs it)
    except ImportError as err:
        raise MissingExtraError(f"ONNX export and int8 inference need {err.name!r}, which is not installed. "
                                f"Fix: {ONNX_EXTRA_HINT}") from None
    return onnxruntime


def export_onnx(module: nn.Module, example: torch.Tensor, path: str | os.PathLike, outputs: Sequence[str]) -> None:
    """``module`` as an ONNX file with one input ``images`` of dynamic batch size and the named outputs."""
    needs_onnx()
    batch = torch.export.Dim("batch", min=1, max=65536)
    torch.onnx.export(module, (example,), str(path), input_names=["images"], output_names=list(outputs),
                      dynamic_shapes=({0: batch},), dynamo=True, verbose=False)


def quantize_int8(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Write ``dst``: the ONNX model ``src`` with dynamically quantized int8 matrix products (QInt8 weights)."""
    needs_onnx()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    before = logging.root.manager.disable
    logging.disable(logging.WARNING)  # the quantizer logs every tensor it leaves alone, and advice, on the root logger
    try:
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    finally:
        logging.disable(before)


def ort_session(path: str | os.PathLike | bytes, threads: int | None = None) -> Any:
    """An onnxruntime CPU session on ``path`` (or the model's bytes), with torch's intra-op thread count."""
    ort = needs_onnx()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.log_severity_level = 3  # errors only: the quantized graph's shape-inference notes are noise
    model = path if isinstance(path, bytes) else str(path)
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


class _Intermediates(nn.Module):
    """The normed tokens [B, N, D] of the blocks ``indices``: what feature extraction reads."""

    def __init__(self, encoder: nn.Module, indices: Sequence[int]) -> None:
        super().__init__()
        self.encoder, self.indices = encoder, list(indices)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.encoder.forward_intermediates(images, indices=self.indices, norm=True, output_fmt="NLC",
                                                        intermediates_only=True))


class Int8Encoder:
    """An encoder's blocks ``indices`` on images of ``size`` (h, w) as a dynamically quantized int8 onnxruntime session."""

    def __init__(self, encoder: nn.Module, indices: Sequence[int], size: tuple[int, int]) -> None:
        self.indices = tuple(indices)
        names = [f"block{i}" for i in self.indices]
        was_training = encoder.training
        encoder.eval()
        example = torch.zeros(2, encoder.patch_embed.proj.in_channels, *size)
        try:
            with tempfile.TemporaryDirectory(prefix="ijepa_int8_") as tmp, torch.no_grad():
                fp32, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
                export_onnx(_Intermediates(encoder, self.indices).float().eval(), example, fp32, names)
                quantize_int8(fp32, int8)
                self.session = ort_session(int8.read_bytes())
        finally:
            encoder.train(was_training)

    def __call__(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The normed tokens of each block in ``indices`` for a preprocessed batch (float32, CPU)."""
        outs = self.session.run(None, {"images": images.detach().float().cpu().numpy()})
        return [torch.from_numpy(o) for o in outs]


# encoder -> {(indices, img_size, weights state): runner}: extraction in several calls quantizes once
_RUNNERS: weakref.WeakKeyDictionary[nn.Module, dict[tuple, Int8Encoder]] = weakref.WeakKeyDictionary()


def int8_encoder(encoder: nn.Module, indices: Sequence[int], size: tuple[int, int]) -> Int8Encoder:
    """:class:`Int8Encoder` of ``encoder``, built once and reused while its weights are unchanged."""
    state = tuple((p.data_ptr(), p._version) for p in encoder.parameters())  # any in-place update or move changes it
    key = (tuple(indices), tuple(size), state)
    cached = _RUNNERS.setdefault(encoder, {})
    if key not in cached:
        logger.info("quantizing the encoder to int8 (onnxruntime dynamic quantization, %dx%d px)", *size)
        cached.clear()
        cached[key] = Int8Encoder(encoder, indices, size)
    return cached[key]
