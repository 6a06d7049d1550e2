"""``ijepa-hub``: convert, push, export, info, demo (and ``extract``, an alias of ``ijepa-eval extract``).

Thin: parse, call a library function, print.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ..cli_common import (
    add_common_args,
    add_deprecated_alias,
    add_source_args,
    add_source_revision_arg,
    default_device,
    load_model,
    run_cli,
    setup_logging,
)
from ..deploy import CostLimits
from ..errors import HubLayoutError
from ..eval.cli import add_extract_command, run_extract

__all__ = ["main", "build_parser"]


def _add_hub_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--token", default=None, help="Hub token (default: the logged-in one / HF_TOKEN)")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--revision", default=None, help="branch to commit to (created if missing)")
    p.add_argument("--message", default=None, help="commit message")


def _add_part_args(p: argparse.ArgumentParser, *, default: bool, help_suffix: str = "") -> None:
    """``--context-encoder/--no-context-encoder`` and ``--predictor/--no-predictor``: which other networks to write.

    ``default``: the subcommand's own (convert keeps them, push of a non-folder source leaves them out)."""
    p.add_argument("--context-encoder", action=argparse.BooleanOptionalAction, default=default,
                   help="include context_encoder.safetensors beside the target encoder" + help_suffix)
    p.add_argument("--predictor", action=argparse.BooleanOptionalAction, default=default,
                   help="include predictor.safetensors" + help_suffix)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ijepa-hub", description="I-JEPA checkpoints and the Hugging Face Hub")
    add_common_args(parser)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("convert", help="released .pth.tar (file or URL) -> ijepa_hub folder")
    p.add_argument("checkpoint", help="a released .pth.tar file, URL or registry name")
    p.add_argument("output", help="folder to write")
    p.add_argument("--encoder", choices=("target", "context"), default="target", help="encoder in model.safetensors")
    _add_part_args(p, default=True)
    p.add_argument("--push", metavar="REPO_ID", default=None, help="also upload the folder to this Hub repo")
    _add_hub_args(p)

    p = sub.add_parser("push", help="upload an ijepa_hub folder (or anything from_pretrained loads) to the Hub")
    add_source_args(p)
    p.add_argument("repo_id", help="target Hub repo, owner/name")
    _add_part_args(p, default=False, help_suffix=" (non-folder sources)")
    add_deprecated_alias(p, "--with-context-encoder", "--context-encoder", dest="context_encoder", const=True)
    add_deprecated_alias(p, "--with-predictor", "--predictor", dest="predictor", const=True)
    _add_hub_args(p)

    p = sub.add_parser("export", help="write a folder in another library's layout, or a deployable ONNX / torch.export model")
    add_source_args(p)
    p.add_argument("output", help="folder to write")
    p.add_argument("--format", choices=("transformers", "onnx", "torch-export"), required=True,
                   help="transformers: a folder transformers loads; onnx / torch-export: a deployable model (encoders give "
                   "patch tokens and pooled features, fine-tuned classifiers logits; dynamic batch), checked against eager")
    p.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), default="fp32",
                   help="onnx / torch-export: weight and input type (default fp32; bf16: torch-export only)")
    p.add_argument("--quantize", choices=("int8",), default=None,
                   help="onnx: dynamic int8 matrix products (onnxruntime); its accuracy cost is measured and recorded")
    p.add_argument("--calib-data", default=None,
                   help="fp16 / bf16 / int8: labelled images the accuracy cost is measured on (a folder with one "
                        "subfolder per class, hfds/NAME or synthetic; default: held-out synthetic shapes)")
    p.add_argument("--min-cosine", type=float, default=CostLimits.min_cosine,
                   help="refuse a lossy export whose mean feature cosine to fp32 is lower (default %(default)s)")
    p.add_argument("--max-top1-drop", type=float, default=CostLimits.max_top1_drop,
                   help="refuse a lossy export whose k-NN or linear top-1 drops more points (default %(default)s)")
    p.add_argument("--force", action="store_true", help="write a lossy export even beyond those limits")

    add_extract_command(sub, help_suffix=" (alias of ijepa-eval extract)")

    p = sub.add_parser("info", help="describe a registry name, folder, Hub repo or checkpoint")
    p.add_argument("source")
    add_source_revision_arg(p)
    p = sub.add_parser("demo", help="a local web page (Gradio, the demo extra) to explore a model's features")
    add_source_args(p)
    p.add_argument("--images", default=None, help="a folder of images to pick from and to search for nearest images")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=None, help="port (default: Gradio's, 7860 or the next free one)")
    p.add_argument("--share", action="store_true", help="also ask Gradio for a public share link (off by default)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    for p in sub.choices.values():
        add_common_args(p, version=False)
    return parser


def _convert(args) -> None:
    from .load import from_pretrained
    from .save import push_to_hub as push_folder

    parts = dict(encoder=args.encoder, with_context_encoder=args.context_encoder, with_predictor=args.predictor)
    model = from_pretrained(args.checkpoint, **parts)
    folder = model.save_pretrained(args.output, **parts)
    print(f"wrote {folder}")
    if args.push:
        url = push_folder(folder, args.push, token=args.token, private=args.private, revision=args.revision,
                          commit_message=args.message)
        print(url)


def _push(args) -> None:
    from .layout import read_config_json
    from .save import push_to_hub as push_folder

    source = Path(args.source)
    hub = dict(token=args.token, private=args.private, revision=args.revision, commit_message=args.message)
    config = source / "config.json"
    if config.is_file() and "ijepa" in read_config_json(config, source=str(source)):
        print(push_folder(source, args.repo_id, **hub))
    else:
        parts = dict(with_context_encoder=args.context_encoder, with_predictor=args.predictor)
        print(load_model(args, **parts).push_to_hub(args.repo_id, **parts, **hub))


def _export(args) -> None:
    from .save import export_transformers

    if os.path.exists(args.source) and os.path.realpath(args.source) == os.path.realpath(args.output):
        raise HubLayoutError(f"ijepa-hub export: the output {args.output} is the source; choose another folder")
    model = load_model(args)
    if args.format != "transformers":
        from ..deploy import export_deployable as export_model

        result = export_model(model, args.output, format=args.format, dtype=args.dtype, quantize=args.quantize,
                              source=args.source, calib_data=args.calib_data, force=args.force,
                              limits=CostLimits(min_cosine=args.min_cosine, max_top1_drop=args.max_top1_drop))
        diffs = ", ".join(f"batch {b}: {d:.2g}" for b, d in result.max_abs_diff.items())
        print(f"wrote {result.file} ({result.format}, {result.quantize or result.dtype}; max |export - eager| {diffs})")
        if result.accuracy is not None:
            a = result.accuracy
            print(f"accuracy cost on {a['data']}: feature cosine to fp32 {a['cosine']['mean']:.4f}, "
                  f"top-1 drop {a['top1_drop']:.2f} points" + (" (beyond the limits; kept by --force)" if a["exceeds"] else ""))
        return
    if not hasattr(model, "config") or not hasattr(model, "encoder"):
        raise HubLayoutError(f"{args.source} is a fine-tuned classifier; the transformers layout holds encoders only. "
                             "Export it with --format onnx or torch-export")
    print(f"wrote {export_transformers(model.encoder, model.config, args.output)}")


def _info(args) -> None:
    from ..reference import infer_model_config, read_reference_checkpoint
    from ..registry import VARIANTS, resolve_alias
    from .load import read_config

    if resolve_alias(args.source) in VARIANTS:
        v = VARIANTS[resolve_alias(args.source)]
        info = {"variant": v.name, "name": v.model_config.name, "model": v.model_config.to_dict(), "url": v.url,
                "transformers_repo": v.hf_transformers_repo, "dataset": v.dataset, "epochs": v.epochs,
                "imagenet_linear_top1": v.imagenet_linear_top1, "license": v.license}
    elif os.path.isfile(args.source):
        parts = read_reference_checkpoint(args.source)
        config = infer_model_config(parts["encoder"], parts["predictor"], source=args.source)
        info = {"checkpoint": args.source, "model": config.to_dict(),
                "tensors": {k: len(sd) for k, sd in parts.items()},
                "elements": {k: sum(t.numel() for t in sd.values()) for k, sd in parts.items()}}
    else:
        info = read_config(args.source, revision=args.source_revision)
    print(json.dumps(info, indent=2))


def _demo(args) -> None:
    from ..eval.demo_app import serve

    serve(args.source, folder=args.images, device=default_device(args.device), host=args.host, port=args.port,
          share=args.share, encoder=args.encoder, revision=args.source_revision, allow_pickle=args.allow_pickle)


_COMMANDS = {"convert": _convert, "push": _push, "export": _export, "extract": run_extract, "info": _info, "demo": _demo}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ijepa-hub`` console script."""
    args = build_parser().parse_args(argv)
    setup_logging(args)
    return run_cli(f"ijepa-hub {args.command}", lambda: _COMMANDS[args.command](args), debug=getattr(args, "debug", False))


if __name__ == "__main__":
    sys.exit(main())
