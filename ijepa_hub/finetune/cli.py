"""``ijepa-finetune``: parse a fine-tuning recipe and dotted overrides, call :func:`ijepa_hub.finetune.finetune`."""
from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

from ..cli_common import run_cli
from ..engine.cli import add_run_args, add_short_help, parse_recipe_args, setup_rank_logging
from ..recipe import recipe_parser
from .recipe import FinetuneRecipe, list_finetune_recipes, load_finetune_recipe

__all__ = ["main", "build_parser", "parse_args"]

_EPILOG = """\
SOURCE (optional, = --model.source): a folder (e.g. runs/default/model), Hub repo, released variant
(ijepa_vith14_1k) or vit_<size>_patch<p> for a random initialisation; a pretrained SOURCE keeps its own img_size
and depth unless --model.img_size / --model.depth say otherwise. --data PATH is short for --data.path:
'synthetic' or 'synthetic:textured' (built in), or a folder with train/<class>/ and val/<class>/. Every recipe
key can be overridden by its dotted name, e.g. --optim.lr 1e-3 --model.mode linear --train.max_steps 100. The defaults shown are those
of the recipe selected with --recipe. Shipped recipes: {recipes}.
"""

_EXAMPLES = """\
examples:
  ijepa-finetune runs/default/model --out runs/ft       fine-tune the default run's model on synthetic shapes
  ijepa-finetune ijepa_vith14_1k --recipe finetune_vith14 --data /data/imagenet --out runs/h14-ft
  ijepa-finetune runs/default/model --model.mode linear  a linear probe on the frozen encoder

"""


def build_parser(recipe: str | os.PathLike = "finetune_default"):
    """The jsonargparse parser: the run options plus every :class:`FinetuneRecipe` key (defaults: ``recipe``'s)."""
    parser = recipe_parser(
        schema=FinetuneRecipe, prog="ijepa-finetune",
        description="Fine-tune an I-JEPA encoder and a linear head on labelled images (--model.mode full), or "
        "train a probe on the frozen encoder: --model.mode linear or attentive. With no arguments: "
        "the built-in demo (tiny ViT, synthetic shapes, CPU).",
        epilog=_EPILOG.format(recipes=", ".join(list_finetune_recipes())),
    )
    parser.add_argument("source", nargs="?", type=str | None, default=None,
                        help="what to fine-tune (sets model.source): folder, Hub repo, released variant or vit_<size>_patch<p>")
    parser = add_run_args(parser, load_finetune_recipe(recipe).to_dict(), recipe)
    add_short_help(parser, {
        "source": None, "--recipe": None,
        "--data": "labelled images: 'synthetic' or 'synthetic:textured' (built in), or a folder with "
                  "train/<class>/ and val/<class>/ (--data.path)",
        "--model.mode": None, "--out": None, "--resume": None, "--push-to-hub": None,
    }, examples=_EXAMPLES)
    return parser


def parse_args(argv: Sequence[str]) -> tuple[FinetuneRecipe, Any]:
    """``(recipe, namespace)``: the named recipe, then the positional source and the dotted overrides."""
    recipe, args = parse_recipe_args(argv, build_parser=build_parser, default="finetune_default", schema=FinetuneRecipe)
    if args.source is not None:  # sizes named on the command line win; else the library's rule (set_source)
        recipe.set_source(args.source, **{key: getattr(recipe.model, key) for key in ("img_size", "depth")
                                          if any(a == f"--model.{key}" or a.startswith(f"--model.{key}=") for a in argv)})
    return recipe, args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ijepa-finetune``, ``python -m ijepa_hub.finetune`` and ``torchrun -m ijepa_hub.finetune``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    return run_cli("ijepa-finetune", lambda: _run(argv))


def _run(argv: list[str]) -> None:
    recipe, args = parse_args(argv)
    rank = setup_rank_logging(args)

    from .loop import finetune

    result = finetune(recipe, out_dir=args.out, resume=args.resume, push_to_hub=args.push_to_hub,
                      progress=not args.no_progress)
    if rank != 0:
        return
    summary = f"steps {result.start_step} -> {result.step} of {result.total_steps}"
    if result.losses:
        summary += f", loss {result.losses[0]:.4f} -> {result.losses[-1]:.4f}"
    if result.top1 is not None:
        summary += f", val top-1 {result.top1:.2f}%"
    if result.preempted:
        print(f"ijepa-finetune: {summary}; preempted: resume with --out {result.out_dir} --resume auto")
        return
    print(f"ijepa-finetune: {summary}" + (f"; classifier in {result.export_dir}" if result.export_dir else ""))
    if result.export_dir is not None:
        model = result.export_dir
        print("next:\n"
              f"  load:   ijepa_hub.from_pretrained({str(model)!r}).classify(['image.jpg'])\n"
              f"  export: ijepa-hub export {model} {result.out_dir}/onnx --format onnx\n"
              + (f"  pushed: {result.hub_url}" if result.hub_url else f"  push:   ijepa-hub push {model} <owner/name>"))


if __name__ == "__main__":
    raise SystemExit(main())
