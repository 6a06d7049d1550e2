"""``ijepa-eval``: extract, knn, linear, attentive, seg, synthetic (shape / count vs random init), masks, pca, predict,
curves.

Thin: parse, call a library function, print a table, write JSON. ``ijepa-hub extract`` is an alias of
``ijepa-eval extract`` (:func:`add_extract_command`, :func:`run_extract`).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..cli_common import (
    add_common_args,
    add_deprecated_alias,
    add_source_args,
    default_device,
    layers_arg,
    load_model,
    run_cli,
    setup_logging,
)
from ..data.synthetic import SYNTHETIC, SYNTHETIC_SPECS, synthetic_style
from ..models.extract import QUANTIZE, compute_dtype
from .predictor_view import display_images, predict_picture, summary_table, synthetic_images
from .probes import evaluate_knn, evaluate_linear, format_table, random_init_encoder, sample_sizes, synthetic_probe

__all__ = ["main", "build_parser", "add_extract_command", "run_extract"]

_DEVICE_HELP = "cpu, cuda, cuda:1 ... (default: cuda if available)"


def _add_model_args(p: argparse.ArgumentParser) -> None:
    add_source_args(p)
    p.add_argument("--device", default=None, help=_DEVICE_HELP)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--cache-dir", default=None, help="feature cache (default ~/.cache/ijepa_hub/features; '' disables)")
    p.add_argument("--json", dest="json_out", default=None, help="also write the results to this JSON file")
    p.add_argument("--seed", type=int, default=0, help="split and probe seed")


_SYNTHETIC_HELP = " or ".join(f"'{spec}'" for spec in SYNTHETIC_SPECS)  # the built-in data's specs


def _add_compute_args(p: argparse.ArgumentParser) -> None:
    """``--dtype`` and ``--quantize``: what the encoder computes in (extract, knn, linear)."""
    p.add_argument("--dtype", choices=("auto", "fp32", "bf16", "fp16"), default="auto",
                   help="autocast dtype (auto: bf16 on CUDA and on CPUs with native bf16, fp32 elsewhere)")
    p.add_argument("--quantize", choices=QUANTIZE, default=None,
                   help="int8: dynamic int8 matrix products in onnxruntime on the CPU (needs the [onnx] extra)")


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=SYNTHETIC,
                   help="folder with one subfolder per class (train/ and val/ used if present), hfds/NAME (a Hugging Face "
                        f"dataset: train and validation/test splits), or {_SYNTHETIC_HELP} (built-in shapes)")
    p.add_argument("--label", choices=("shape", "count"), default="shape", help="synthetic data: which label")
    p.add_argument("--test-fraction", type=float, default=0.2, help="folder without train/val: held-out share")
    p.add_argument("--data.image_column", dest="image_column", default=None,
                   help="hfds/ data: the image column (default: the first Image feature)")
    p.add_argument("--data.label_column", dest="label_column", default=None,
                   help="hfds/ data: the label column (default: the first ClassLabel feature)")
    add_deprecated_alias(p, "--data.image-column", "--data.image_column", dest="image_column")
    add_deprecated_alias(p, "--data.label-column", "--data.label_column", dest="label_column")


def _add_synthetic_arg(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--data", choices=SYNTHETIC_SPECS, default=SYNTHETIC, help=f"{what} (default: {SYNTHETIC})")


def _add_baseline_arg(p: argparse.ArgumentParser, *, default: bool) -> None:
    p.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=default,
                   help="also probe the random-init network of the same architecture")


def _features_output(value: str) -> str:
    from .extract import check_features_output

    try:
        check_features_output(value)
    except ValueError as err:  # a usage error: argparse exits 2 before any work
        raise argparse.ArgumentTypeError(str(err)) from None
    return value


def add_extract_command(sub: Any, *, help_suffix: str = "") -> argparse.ArgumentParser:
    """The ``extract`` subcommand (features of a folder of images) on the subparsers ``sub``."""
    p = sub.add_parser("extract", help="features of a folder of images -> .safetensors or .npy" + help_suffix)
    add_source_args(p)
    p.add_argument("images", help="folder of images (searched recursively)")
    p.add_argument("output", type=_features_output, help="output file, .safetensors or .npy")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--layers", type=layers_arg, default=1,
                   help="n: the last n blocks concatenated (4: the linear-probe feature); 2,5,11: those block indices")
    p.add_argument("--device", default=None, help=_DEVICE_HELP)
    p.add_argument("--patch-tokens", action="store_true", help="also store patch tokens (.safetensors only)")
    _add_compute_args(p)
    p.add_argument("--strict", action="store_true",
                   help="stop at the first image that cannot be decoded (default: skip it, log and count it)")
    return p


def run_extract(args: argparse.Namespace) -> None:
    """``extract``: features of every image under ``args.images`` written to ``args.output``."""
    from ..features import extract_folder
    from .extract import check_features_output, write_features

    check_features_output(args.output, patch_tokens=args.patch_tokens)  # before the work, not after
    device = default_device(args.device)
    compute = compute_dtype(args.dtype, device, args.quantize)  # a wrong pair fails before the model loads
    model = load_model(args, device=device)
    paths, feats = extract_folder(model.encoder, args.images, batch_size=args.batch_size, layers=args.layers,
                                  dtype=args.dtype, quantize=args.quantize, progress=True, skip_broken=not args.strict)
    metadata = {"source": args.source, "encoder": args.encoder, "layers": str(args.layers), "compute_dtype": compute}
    print(write_features(args.output, paths, feats, patch_tokens=args.patch_tokens, metadata=metadata))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ijepa-eval", description="Evaluate I-JEPA encoders and draw pictures")
    add_common_args(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    add_extract_command(sub)

    p = sub.add_parser("knn", help="weighted k-NN on pooled features (top-1, top-5)")
    _add_model_args(p)
    _add_data_args(p)
    _add_compute_args(p)
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--temperature", type=float, default=0.07)

    p = sub.add_parser("linear", help="linear probe with a held-out lr / weight-decay sweep")
    _add_model_args(p)
    _add_data_args(p)
    _add_compute_args(p)
    p.add_argument("--layers", type=layers_arg, nargs="+", default=[1, 4],
                   help="one probe per value: n, the last n blocks concatenated (1: last layer; 4: last four), or "
                        "block indices like 2,5,11 (default: 1 4, the paper reports the better)")

    p = sub.add_parser("attentive", help="attentive probe (a learned query over the patch tokens), top-1 beside the linear probe's")
    _add_model_args(p)
    _add_data_args(p)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--num-heads", type=int, default=8, help="attention heads of the pooler (must divide the width)")
    _add_baseline_arg(p, default=False)

    p = sub.add_parser("seg", help="linear segmentation probe on frozen patch maps: mIoU, per-class IoU, pixel accuracy")
    _add_model_args(p)
    p.add_argument("--data", default=SYNTHETIC,
                   help="DIR with {train,val}/images/* and {train,val}/masks/<stem>.png (255 = ignore), or " + _SYNTHETIC_HELP)
    p.add_argument("--layers", type=layers_arg, default=1,
                   help="n: the last n blocks concatenated (1 or 4); 2,5,11: those block indices")
    p.add_argument("--num-classes", type=int, default=None, help="folder data without classes.txt: the class count")
    p.add_argument("--img-size", type=int, default=None, help="probe resolution (default: the model's)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--num-train", type=int, default=500, help="synthetic data: training images")
    p.add_argument("--num-test", type=int, default=200, help="synthetic data: val images")
    p.add_argument("--picture", default=None, help="PNG: val images, ground truth and predictions side by side")
    p.add_argument("--num-pictures", type=int, default=6, help="how many val images the picture shows")
    _add_baseline_arg(p, default=False)

    p = sub.add_parser("synthetic", help="shape and count probes on the synthetic shapes, against random init")
    _add_model_args(p)
    _add_synthetic_arg(p, "which built-in synthetic domain to probe on")
    p.add_argument("--num-train", type=int, default=2000)
    p.add_argument("--num-test", type=int, default=1000)
    p.add_argument("--layers", type=layers_arg, default=1,
                   help="n: the last n blocks concatenated (4: the linear-probe feature); 2,5,11: those block indices")
    _add_baseline_arg(p, default=True)

    p = sub.add_parser("masks", help="PNG: sampled context and target masks over images, both masking modes")
    p.add_argument("output", help="PNG file to write")
    p.add_argument("--recipe", default="default", help="recipe whose mask settings and image size to use")
    p.add_argument("--images", nargs="*", default=None, help="image files (default: synthetic shapes)")
    _add_synthetic_arg(p, "without --images: the synthetic domain to draw")
    p.add_argument("--num", type=int, default=4, help="how many images")
    p.add_argument("--step", type=int, default=0, help="mask step (masks are a function of the step)")

    p = sub.add_parser("pca", help="PNG: first three principal components of patch features as RGB")
    _add_model_args(p)
    p.add_argument("output", help="PNG file to write")
    p.add_argument("--images", nargs="*", default=None, help="image files (default: synthetic shapes)")
    _add_synthetic_arg(p, "without --images: the synthetic domain to draw")
    p.add_argument("--num", type=int, default=4, help="how many synthetic images when --images is not given")

    p = sub.add_parser("predict", help="PNG: what the predictor predicts: retrieved nearest patches and per-patch cosines")
    add_source_args(p)
    p.add_argument("images", nargs="*", help="image files (default: synthetic shapes)")
    p.add_argument("--out", default="predict.png", help="PNG file to write (default: predict.png)")
    _add_synthetic_arg(p, "without images: the synthetic domain to draw")
    p.add_argument("--num", type=int, default=2, help="how many synthetic images when no image is given")
    p.add_argument("--bank", default="self",
                   help=f"patches to retrieve from: self (each image's own, default), {_SYNTHETIC_HELP}, or a folder of images")
    p.add_argument("--bank-size", type=int, default=64, help="--bank folder or synthetic: how many images (default 64)")
    p.add_argument("--seed", type=int, default=0, help="mask seed: the masks are drawn as training draws them at this step")
    _add_baseline_arg(p, default=False)
    p.add_argument("--device", default=None, help=_DEVICE_HELP)
    p.add_argument("--json", dest="json_out", default=None, help="also write the cosines to this JSON file")

    p = sub.add_parser("curves", help="PNG: loss, lr, momentum, RankMe and the online probe from a run's metrics.jsonl")
    p.add_argument("metrics", help="metrics.jsonl of a run (or the run folder)")
    p.add_argument("output", help="PNG file to write")
    for p in sub.choices.values():
        add_common_args(p, version=False)
    return parser


def _model(args):
    return load_model(args, device=default_device(args.device))


def _feature_kwargs(args) -> dict[str, Any]:
    return {"cache_dir": args.cache_dir, "batch_size": args.batch_size, "progress": True}


def _compute_kwargs(args) -> dict[str, Any]:
    """knn / linear: the feature kwargs with ``--dtype`` and ``--quantize``, the pair checked before any work."""
    compute_dtype(args.dtype, default_device(args.device), args.quantize)
    return {**_feature_kwargs(args), "dtype": args.dtype, "quantize": args.quantize}


def _splits(args):
    from .data import labelled_splits

    extra = {} if synthetic_style(args.data) is not None else {"test_fraction": args.test_fraction}
    return labelled_splits(args.data, label=args.label, seed=args.seed, image_column=args.image_column,
                           label_column=args.label_column, **extra)


def _emit(args, results: Any, table: str) -> None:
    first = results[0] if isinstance(results, list) else results
    print(f"{first.get('source', 'model')}: {sample_sizes(first)}\n{table}" if "num_train" in first else table)
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json_out}")


def _knn(args) -> None:
    compute = _compute_kwargs(args)
    r = evaluate_knn(_model(args).encoder, _splits(args), k=args.k, temperature=args.temperature, **compute)
    r["source"] = args.source
    _emit(args, r, format_table([[r["data"], r["k"], r["top1"], r["top5"]]], ["data", "k", "top-1 %", "top-5 %"]))


def _linear(args) -> None:
    compute = _compute_kwargs(args)
    encoder, splits = _model(args).encoder, _splits(args)
    results = [evaluate_linear(encoder, splits, layers=n, seed=args.seed, **compute) for n in args.layers]
    for r in results:
        r["source"] = args.source
    rows = [[r["data"], r["layers"], r["top1"], r["val_top1"], f"{r['lr']:.0e}", f"{r['weight_decay']:.0e}"]
            for r in results]
    _emit(args, results, format_table(rows, ["data", "layers", "top-1 %", "val top-1 %", "lr", "wd"]))


def _encoders(args) -> tuple[str, list[tuple[str, Any]]]:
    """The model's name for pictures (:func:`~ijepa_hub.eval.plots.model_label`), and ("model", its encoder) plus
    ("random_init", the same architecture at its seed init) with --baseline."""
    from .plots import model_label

    model = _model(args)
    nets = [("model", model.encoder)]
    if getattr(args, "baseline", False):
        nets.append(("random_init", random_init_encoder(model.config, seed=args.seed).to(next(model.encoder.parameters()).device)))
    return model_label(args.source, model), nets


def _attentive(args) -> None:
    from .attentive import evaluate_attentive

    splits = _splits(args)
    results = []
    _, encoders = _encoders(args)
    for who, encoder in encoders:
        r = evaluate_attentive(encoder, splits, epochs=args.epochs, lr=args.lr, num_heads=args.num_heads,
                               seed=args.seed, **_feature_kwargs(args))
        results.append({"source": args.source, "encoder": who, **r})
    rows = [[r["data"], r["encoder"], r["top1"], r["linear_top1"], f"{sum(r['seconds'].values()):.0f}"] for r in results]
    _emit(args, results, format_table(rows, ["data", "encoder", "attentive top-1 %", "linear top-1 %", "seconds"]))


def _seg(args) -> None:
    from .segdata import segmentation_splits
    from .segmentation import evaluate_segmentation

    splits = segmentation_splits(args.data, seed=args.seed, num_classes=args.num_classes,
                                 **({"num_train": args.num_train, "num_test": args.num_test} if synthetic_style(args.data) is not None else {}))
    results, tensors = [], {}
    label, encoders = _encoders(args)
    for who, encoder in encoders:
        r = evaluate_segmentation(encoder, splits, layers=args.layers, img_size=args.img_size, epochs=args.epochs, lr=args.lr,
                                  seed=args.seed, keep_predictions=who == "model", **_feature_kwargs(args))
        if who == "model":
            tensors = {"predictions": r.pop("predictions"), "labels": r.pop("labels")}
        results.append({"source": args.source, "encoder": who, **r})
    if args.picture:
        results[0]["picture"] = str(_seg_picture(args, splits, tensors, results[0], label))
    rows = [[r["encoder"], r["layers"], f"{r['miou']:.3f}", f"{r['pixel_accuracy']:.3f}", f"{r['majority']['miou']:.3f}",
             f"{sum(r['seconds'].values()):.0f}"] for r in results]
    table = format_table(rows, ["encoder", "layers", "mIoU", "pixel acc", "majority mIoU", "seconds"])
    per_class = format_table([[c, "-" if v is None else f"{v:.3f}"] for c, v in results[0]["per_class_iou"].items()],
                             ["class", "IoU"])
    _emit(args, results if len(results) > 1 else results[0], f"{table}\n\n{per_class}")
    if args.picture:
        print(f"wrote {args.picture}")


def _seg_picture(args, splits, tensors, result, label: str):
    import torch

    from .plots import plot_segmentation
    from .segdata import read_mask, resize_masks

    n = min(args.num_pictures, len(splits.test_images))
    size = max(_PICTURE_SIZE, result["img_size"])  # the truth from the original masks, nearest, at display size
    images = _example_images(splits.test_images[:n], n, size)
    truth = resize_masks([read_mask(m, num_classes=len(splits.classes), where=str(w))
                          for m, w in zip(splits.test_masks[:n], splits.test_images[:n])], size)
    predictions = torch.nn.functional.interpolate(tensors["predictions"][:n, None].float(), size=(size, size),
                                                  mode="nearest")[:, 0].to(truth.dtype)
    title = f"{label}: linear segmentation probe, val mIoU {result['miou']:.3f}"
    return plot_segmentation(images, truth, predictions, args.picture, classes=splits.classes, title=title)


_PICTURE_SIZE = 128  # pixels per picture in ijepa-eval seg --picture


def _synthetic(args) -> None:
    model = _model(args)
    baseline = None
    if args.baseline:
        baseline = random_init_encoder(model.config, seed=args.seed).to(next(model.encoder.parameters()).device)
    r = synthetic_probe(model.encoder, baseline=baseline, num_train=args.num_train, num_test=args.num_test,
                        layers=args.layers, seed=args.seed, style=synthetic_style(args.data), **_feature_kwargs(args))
    r["source"] = args.source
    rows = []
    for label, row in r["labels"].items():
        for who in ("model", "random_init", "margin"):
            if who in row:
                rows.append([label, who, row[who]["linear_top1"], row[who]["knn_top1"]])
    _emit(args, r, format_table(rows, ["label", "encoder", "linear top-1 %", "k-NN top-1 %"]))


def _example_images(paths: list[str] | None, num: int, size: int, data: str = SYNTHETIC):
    """Images as uint8 [B, 3, size, size]: the given files (centre-cropped) or the synthetic shapes ``data`` names."""

    if not paths and num < 1:
        raise ValueError(f"--num must be at least 1, got {num}")
    return display_images(paths, size) if paths else synthetic_images(num, size, data=data)


def _masks(args) -> None:
    from ..masks import MaskCollator
    from ..recipe import load_recipe
    from .plots import plot_masks

    recipe = load_recipe(args.recipe)
    config = recipe.model_config()
    collators = {
        mode: MaskCollator(dataclasses.replace(recipe.mask, mode=mode), img_size=config.img_size,
                           patch_size=config.patch_size, seed=recipe.train.seed)
        for mode in ("legacy", "corrected")
    }
    images = _example_images(args.images, args.num, config.img_size, args.data)
    path = plot_masks(images, collators, args.output, step=args.step, seed=recipe.train.seed,
                      title=f"I-JEPA masks of the {args.recipe} recipe")
    print(f"wrote {path}")


def _pca(args) -> None:
    from ..features import extract_features
    from .plots import model_label, pca_variance_ratio, plot_pca

    model = _model(args)
    size = model.config.img_size
    images = _example_images(args.images, args.num, size, args.data)
    tokens = extract_features(model.encoder, list(images), crop_pct=1.0).patch_tokens
    path = plot_pca(images, tokens, args.output,
                    title=f"{model_label(args.source, model)}: PCA of the {model.encoder_name} encoder's patch features")
    ratios = pca_variance_ratio(tokens, 3)
    r = {"source": args.source, "encoder": model.encoder_name, "output": str(path),
         "images": list(args.images) if args.images else f"{args.data} shapes ({args.num}, seed 7)",
         "patch_tokens": list(tokens.shape), "position_removed": len(tokens) > 1, "variance_ratio": ratios}
    table = format_table([[i + 1, 100 * v] for i, v in enumerate(ratios)], ["component", "variance %"])
    _emit(args, r, f"wrote {path}\n{table}")


def _predict(args) -> None:

    results = predict_picture(args.source, args.images, args.out, bank=args.bank, bank_size=args.bank_size, seed=args.seed,
                              baseline=args.baseline, device=default_device(args.device), num=args.num, data=args.data,
                              encoder=args.encoder, revision=args.source_revision, allow_pickle=args.allow_pickle)
    _emit(args, results if len(results) > 1 else results[0], f"wrote {args.out}\n{summary_table(results)}")


def _curves(args) -> None:
    from .plots import plot_training_curves

    path = Path(args.metrics)
    if path.is_dir():
        path = path / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"no metrics file at {path}: pass a run's metrics.jsonl or its --out folder")
    print(f"wrote {plot_training_curves(path, args.output)}")


_COMMANDS = {"extract": run_extract, "knn": _knn, "linear": _linear, "attentive": _attentive, "seg": _seg, "synthetic": _synthetic, "masks": _masks, "pca": _pca, "predict": _predict,
             "curves": _curves}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ijepa-eval`` console script."""
    args = build_parser().parse_args(argv)
    setup_logging(args)
    return run_cli(f"ijepa-eval {args.command}", lambda: _COMMANDS[args.command](args), debug=getattr(args, "debug", False))


if __name__ == "__main__":
    sys.exit(main())
