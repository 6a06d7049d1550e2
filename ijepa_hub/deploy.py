"""Deployment exports of a model: ONNX (checked with onnxruntime) and ``torch.export`` programs.

What is exported: an encoder gives ``patch_tokens`` [B, N, D] (the normed tokens) and ``pooled`` [B, D]
(their mean, the paper's feature); a fine-tuned :class:`~ijepa_hub.models.Classifier` gives ``logits``
[B, C]. The input is ``images`` [B, C, H, W], preprocessed as :func:`ijepa_hub.preprocess` does (recorded
in ``export.json``); the batch size is dynamic. Every export is run again on random inputs at two batch
sizes and compared with the eager model: a difference above ``atol`` is an :class:`ExportError`, never a
file that silently computes something else.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn as nn

from .data.preprocess import preprocess
from .data.synthetic import STYLES, synthetic_style
from .data.transforms import CROP_PCT, INTERPOLATION, MEAN, STD
from .deprecation import deprecated_function
from .engine.files import check_entry
from .errors import ExportError, HubLayoutError
from .eval.cost import accuracy_cost, default_cost_splits, feature_cosine
from .eval.data import LabelledSplits, labelled_splits
from .hub.files import written_atomically
from .hub.lineage import chain_license, with_step
from .hub.provenance import model_provenance
from .models import IJepa, VisionTransformerEncoder
from .models.classifier import Classifier
from .models.int8 import ONNX_EXTRA_HINT, export_onnx, needs_onnx, ort_session, quantize_int8  # noqa: F401
from .version import __version__

__all__ = ["FORMATS", "ExportResult", "CostLimits", "export_deployable", "deployable", "EncoderOutputs", "run_exported"]

ExportFormat = Literal["onnx", "torch-export"]
FORMATS: dict[str, str] = {"onnx": "model.onnx", "torch-export": "model.pt2"}  # format -> file written
META_NAME = "export.json"
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# The largest difference from eager accepted per dtype (fp32: the 1e-4; half types round at ~1e-3).
DEFAULT_ATOL = {"fp32": 1e-4, "fp16": 5e-2, "bf16": 1e-1}


class EncoderOutputs(nn.Module):
    """An encoder as a deployable module: ``images -> (patch_tokens, pooled)``."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.encoder(images)
        return tokens, tokens.mean(dim=1)


def deployable(model: nn.Module) -> tuple[nn.Module, list[str]]:
    """The module to export for ``model`` and its output names (classifier: logits; encoder: tokens, pooled)."""
    if isinstance(model, Classifier):
        return model, ["logits"]
    if isinstance(model, IJepa):
        model = model.encoder
    if not isinstance(model, VisionTransformerEncoder):
        raise ExportError(f"cannot export a {type(model).__name__}: give an I-JEPA model, encoder or classifier")
    return EncoderOutputs(model), ["patch_tokens", "pooled"]


@dataclass
class ExportResult:
    """What :func:`export_deployable` wrote and how far the export is from eager."""

    folder: Path
    file: Path
    format: str
    dtype: str
    max_abs_diff: dict[int, float] = field(default_factory=dict)  # batch size -> largest |export - eager|
    seconds: float = 0.0
    quantize: str | None = None
    accuracy: dict[str, Any] | None = None  # the accuracy cost of a lossy export (see export_deployable)


def run_exported(path: str | os.PathLike, images: torch.Tensor) -> list[torch.Tensor]:
    """Run an exported file (``.onnx`` with onnxruntime on CPU, ``.pt2`` with torch) on ``images``."""
    path = Path(path)
    if path.suffix == ".onnx":
        session = ort_session(path)
        name = session.get_inputs()[0].name
        return [torch.from_numpy(o) for o in session.run(None, {name: images.cpu().numpy()})]
    program = torch.export.load(str(path))
    out = program.module()(images)
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _export_file(module: nn.Module, example: torch.Tensor, path: Path, fmt: str, outputs: list[str]) -> None:
    if fmt == "torch-export":
        batch = torch.export.Dim("batch", min=1, max=65536)
        program = torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
        torch.export.save(program, str(path))
        return
    export_onnx(module, example, path, outputs)


@dataclass(frozen=True)
class CostLimits:
    """The accuracy cost a lossy export (``dtype`` fp16 / bf16 or ``quantize``) may have before it is refused:
    the pooled features' (a classifier's logits') mean cosine to eager fp32 at least ``min_cosine``; the k-NN and
    linear-probe top-1 (a classifier: top-1 agreement with eager) at most ``max_top1_drop`` points lower."""

    min_cosine: float = 0.99
    max_top1_drop: float = 1.0


def export_deployable(
    model: nn.Module,
    out_dir: str | os.PathLike,
    *,
    format: ExportFormat = "onnx",
    dtype: Literal["fp32", "fp16", "bf16"] = "fp32",
    quantize: Literal["int8"] | None = None,
    check_batch_sizes: Sequence[int] = (1, 3),
    atol: float | None = None,
    source: str | None = None,
    calib_data: str | os.PathLike | LabelledSplits | None = None,
    limits: CostLimits = CostLimits(),
    force: bool = False,
) -> ExportResult:
    """Export ``model`` (encoder, I-JEPA model or classifier) to ``out_dir`` as ``format``; check it.

    Writes ``model.onnx`` or ``model.pt2`` and ``export.json`` (inputs, outputs, preprocessing, labels, the
    check). ``dtype``: the weights' and input's type (fp32 default; fp16 / bf16 for torch-export, fp16 for
    ONNX: onnxruntime's CPU provider has no bf16 matrix products). ``quantize="int8"`` (ONNX, fp32): dynamic
    int8 matrix products (onnxruntime, QInt8 weights). The check runs the export at each of
    ``check_batch_sizes`` and compares with eager (``atol``: :data:`DEFAULT_ATOL` of the dtype; int8 has none,
    its cost below bounds it); a larger difference raises :class:`ExportError`.

    A lossy export (fp16, bf16 or int8) also measures its accuracy cost against eager fp32 on ``calib_data``
    (a labelled folder, ``hfds/NAME``, a synthetic spec or :class:`~ijepa_hub.eval.data.LabelledSplits`; default:
    200 + 200 held-out synthetic shapes) and records it
    in ``export.json`` under ``accuracy``; beyond ``limits`` it is refused (:class:`ExportError`, nothing
    written) unless ``force``.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
    if format == "onnx" and dtype == "bf16":
        raise ExportError("bf16 ONNX models do not run in onnxruntime on CPU (no bf16 kernels in its CPU provider); "
                          "export with --dtype fp16 or fp32, or --quantize int8 for speed")
    if quantize not in (None, "int8"):
        raise ValueError(f"quantize must be 'int8' or None, got {quantize!r}")
    if quantize and (format != "onnx" or dtype != "fp32"):
        raise ExportError(f"--quantize int8 applies to --format onnx with --dtype fp32 (the weights are quantized from "
                          f"fp32), not to {format} / {dtype}. Fix: --format onnx --dtype fp32 --quantize int8")
    if format == "onnx":
        needs_onnx()
    lossy = dtype != "fp32" or quantize is not None
    splits = _cost_splits(calib_data) if lossy else None  # a bad --calib-data fails before the export
    module, outputs = deployable(model)
    reference = copy.deepcopy(module).float().eval() if lossy else None
    module = module.to("cpu", _DTYPES[dtype]).eval()
    encoder = module if isinstance(module, Classifier) else module.encoder
    size, chans = encoder.patch_embed.img_size, encoder.patch_embed.proj.in_channels
    gen = torch.Generator().manual_seed(0)
    example = torch.randn(2, chans, *size, generator=gen).to(_DTYPES[dtype])
    tol = (None if quantize else DEFAULT_ATOL[dtype]) if atol is None else atol
    start = time.perf_counter()
    name = FORMATS[format]
    folder = Path(out_dir)
    _refuse_foreign_folder(folder, name)
    with written_atomically(folder, keep=frozenset({name, META_NAME})) as stage:
        with torch.no_grad():
            try:
                _export_file(module, example, stage / name, format, outputs)
                if quantize:
                    full = stage / "fp32.onnx"
                    os.replace(stage / name, full)
                    quantize_int8(full, stage / name)
                    full.unlink()
            except (RuntimeError, ValueError, TypeError, NotImplementedError) as err:
                raise ExportError(f"{format} export of {source or type(model).__name__} failed: {type(err).__name__}: "
                                  f"{str(err).splitlines()[0] if str(err) else ''}") from err
            diffs = {}
            for b in check_batch_sizes:
                x = torch.randn(b, chans, *size, generator=gen).to(_DTYPES[dtype])
                eager = module(x)
                eager = list(eager) if isinstance(eager, (tuple, list)) else [eager]
                got = run_exported(stage / name, x)
                if len(got) != len(eager) or any(g.shape != e.shape for g, e in zip(got, eager)):
                    raise ExportError(f"the {format} export gives outputs of shapes {[tuple(g.shape) for g in got]} at "
                                      f"batch {b}, eager {[tuple(e.shape) for e in eager]}")
                diffs[b] = max(float((g.float() - e.float()).abs().max()) for g, e in zip(got, eager))
                if tol is not None and diffs[b] > tol:
                    raise ExportError(f"the {format} export differs from eager by {diffs[b]:.3g} at batch {b} "
                                      f"(more than {tol:g}); it is not written")
        accuracy = None
        if lossy:  # outside no_grad: the linear probe trains
            accuracy = _accuracy(reference, stage / name, _DTYPES[dtype], splits, isinstance(module, Classifier),
                                 size[0], limits)
            _refuse_costly(accuracy, limits, force, f"{format} {quantize or dtype}")
        meta = _metadata(model, encoder, format, name, dtype, outputs, chans, size, diffs, tol, source)
        meta.update(_lineage(model, source, format, dtype, quantize))
        meta["quantize"] = quantize
        if accuracy is not None:
            meta["accuracy"] = {**accuracy, "limits": dataclasses.asdict(limits), "forced": force and accuracy["exceeds"]}
        (stage / META_NAME).write_text(json.dumps(meta, indent=2) + "\n")
    return ExportResult(folder, folder / name, format, dtype, diffs, time.perf_counter() - start, quantize, accuracy)


def _cost_splits(calib_data: str | os.PathLike | LabelledSplits | None) -> LabelledSplits:
    """The labelled images a lossy export's cost is measured on (synthetic specs: the small default set)."""
    if isinstance(calib_data, LabelledSplits):
        return calib_data
    style = synthetic_style(str(calib_data)) if calib_data is not None else STYLES[0]
    return default_cost_splits(style=style) if style is not None else labelled_splits(str(calib_data))


def _accuracy(reference: nn.Module, path: Path, dtype: torch.dtype, splits, classifier: bool, img_size: int,
              limits: CostLimits) -> dict[str, Any]:
    """The export's accuracy cost against eager fp32 (``reference``) on ``splits``; ``exceeds``: beyond ``limits``."""
    session = ort_session(path) if path.suffix == ".onnx" else None
    program = None if session else torch.export.load(str(path)).module()

    @torch.no_grad()
    def outputs(run, images, as_dtype: torch.dtype) -> torch.Tensor:  # the pooled feature (encoder) or logits
        parts = []
        for start in range(0, len(images), _COST_BATCH):
            x = torch.stack([preprocess(i, img_size, crop_pct=splits.crop_pct) for i in images[start:start + _COST_BATCH]])
            out = run(x.to(as_dtype))
            parts.append((out[-1] if isinstance(out, (tuple, list)) else out).float())
        return torch.cat(parts)

    def exported(x: torch.Tensor):
        if session is not None:
            return [torch.from_numpy(o) for o in session.run(None, {"images": x.numpy()})]
        return program(x)

    def eager(images):
        return outputs(reference, images, torch.float32)

    def export(images):
        return outputs(exported, images, dtype)

    if not classifier:
        cost = accuracy_cost(eager, export, splits)
        drop = 0.0 - min(cost["knn_top1_change"], cost["linear_top1_change"])
    else:
        images = list(splits.train_images) + list(splits.test_images)
        ref, got = eager(images), export(images)
        agreement = 100.0 * float((ref.argmax(-1) == got.argmax(-1)).float().mean())
        cost = {"data": splits.name, "num_images": len(images), "cosine": feature_cosine(got, ref),
                "top1_agreement": agreement}
        drop = 100.0 - agreement
    cost["top1_drop"] = drop
    cost["exceeds"] = cost["cosine"]["mean"] < limits.min_cosine or drop > limits.max_top1_drop
    return cost


_COST_BATCH = 32  # images per run when measuring an export's accuracy cost


def _refuse_costly(accuracy: dict[str, Any], limits: CostLimits, force: bool, what: str) -> None:
    if accuracy["exceeds"] and not force:
        raise ExportError(
            f"the {what} export costs too much accuracy on {accuracy['data']}: feature cosine to fp32 "
            f"{accuracy['cosine']['mean']:.6f} (at least {limits.min_cosine:g} asked), top-1 drop "
            f"{accuracy['top1_drop']:.2f} points (at most {limits.max_top1_drop:g}); it is not written. "
            "Fix: export in fp32, relax --min-cosine / --max-top1-drop, or pass --force to keep it anyway"
        )


def _refuse_foreign_folder(folder: Path, name: str) -> None:
    """An export may replace an earlier export of its format (its ``export.json`` names ``name``), never another
    model (``config.json``, weights) or a model file that no export of this format wrote."""
    if not check_entry(folder, folder=True):
        return
    try:
        meta = json.loads((folder / META_NAME).read_text()) if check_entry(folder / META_NAME) else None
    except (OSError, ValueError):
        meta = None
    ours = isinstance(meta, dict) and meta.get("file") == name
    foreign = sorted(p.name for p in folder.iterdir()
                     if (p.name in {"config.json", *FORMATS.values()} or p.suffix == ".safetensors")
                     and not (p.name == name and ours))
    if foreign:
        raise HubLayoutError(
            f"{folder} holds {', '.join(foreign)}, which no {name} export wrote there; an export goes into a new "
            "folder (or one an earlier export of the same format wrote). Fix: choose another output folder."
        )


def _lineage(model: nn.Module, source: str | None, fmt: str, dtype: str, quantize: str | None) -> dict[str, Any]:
    """``provenance`` and ``license`` of an export: the model's chain (when it was loaded from somewhere) and the
    export step; the licence is the most restrictive in the chain (Meta's weights stay CC BY-NC 4.0)."""
    chain = model_provenance(model) or []
    chain = with_step(chain, source or getattr(model, "source", None), f"exported to {fmt} ({quantize or dtype}) with "
                      f"ijepa-hub export")
    return {"provenance": chain, "license": chain_license(chain)}


def _metadata(model, encoder, fmt, name, dtype, outputs, chans, size, diffs, tol, source) -> dict[str, Any]:
    n, d = encoder.patch_embed.num_patches, encoder.embed_dim
    shapes = {"logits": ["batch", getattr(model, "num_classes", 0)], "patch_tokens": ["batch", n, d], "pooled": ["batch", d]}
    meta: dict[str, Any] = {
        "format": fmt, "file": name, "dtype": dtype, "source": source, "library_version": __version__,
        "inputs": [{"name": "images", "shape": ["batch", chans, *size], "dtype": dtype}],
        "outputs": [{"name": o, "shape": shapes[o]} for o in outputs],
        "preprocessing": {"img_size": list(size), "crop_pct": getattr(model, "crop_pct", CROP_PCT),
                          "interpolation": INTERPOLATION, "mean": list(MEAN), "std": list(STD)},
        "check": {"batch_sizes": list(diffs), "max_abs_diff": max(diffs.values(), default=None), "atol": tol},
    }
    if isinstance(model, Classifier):
        meta["label_names"] = list(model.label_names)
    return meta


export_model = deprecated_function(export_deployable, "ijepa_hub.deploy.export_model", "ijepa_hub.export_deployable")
