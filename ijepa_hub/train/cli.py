"""``ijepa-train``: parse a recipe and dotted overrides, call :func:`ijepa_hub.train.train`, report."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any, Sequence

from ..errors import IJepaError
from ..recipe import Recipe, RecipeError, list_recipes, load_recipe, recipe_from_namespace, recipe_parser

__all__ = ["main", "build_parser", "parse_args"]

_EPILOG = """\
Every recipe key can be overridden by its dotted name, e.g. --optim.lr 5e-4 --train.max_steps 100
--data.batch_size_per_device 64 --mask.mode legacy. --data PATH is short for --data.path PATH.
Shipped recipes: {recipes}.
"""


def build_parser():
    """The jsonargparse parser: the run options plus every :class:`~ijepa_hub.recipe.Recipe` key."""
    parser = recipe_parser(
        prog="ijepa-train",
        description="Train I-JEPA. With no arguments: the built-in default (tiny ViT, synthetic shapes, CPU).",
        epilog=_EPILOG.format(recipes=", ".join(list_recipes())),
    )
    parser.add_argument("--recipe", type=str, default="default", help="a shipped recipe name or a YAML file")
    parser.add_argument("--out", type=str | None, default=None, help="run folder (default: runs/<recipe name>)")
    parser.add_argument(
        "--resume", type=str | None, default=None,
        help="'auto': continue the run in --out if it has a checkpoint; or a checkpoint path",
    )
    parser.add_argument("--push-to-hub", type=str | None, default=None, help="Hub repo id to upload the result to")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (metrics still go to JSONL)")
    return parser


def _rewrite_data_shorthand(argv: list[str]) -> list[str]:
    out, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--data" and i + 1 < len(argv):
            out += ["--data.path", argv[i + 1]]
            i += 2
            continue
        out.append("--data.path=" + arg[len("--data="):] if arg.startswith("--data=") else arg)
        i += 1
    return out


def parse_args(argv: Sequence[str]) -> tuple[Recipe, Any]:
    """``(recipe, namespace)`` from command-line arguments: the named recipe, then the dotted overrides.

    Raises ``jsonargparse.ArgumentError`` / :class:`~ijepa_hub.recipe.RecipeError` naming the bad key.
    """
    argv = _rewrite_data_shorthand(list(argv))
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--recipe", default="default")
    known, _ = pre.parse_known_args(argv)
    parser = build_parser()
    base = parser.parse_object(load_recipe(known.recipe).to_dict())
    args = parser.parse_args(argv, namespace=base)
    return recipe_from_namespace(args), args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ijepa-train``, ``python -m ijepa_hub.train`` and ``torchrun -m ijepa_hub.train``."""
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format=f"%(asctime)s [rank {rank}] %(levelname)s %(name)s: %(message)s",
    )
    import jsonargparse

    try:
        recipe, args = parse_args(sys.argv[1:] if argv is None else argv)
    except (jsonargparse.ArgumentError, RecipeError, FileNotFoundError) as err:
        print(f"ijepa-train: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2

    from .loop import train

    try:
        result = train(
            recipe, out_dir=args.out or f"runs/{recipe.name}", resume=args.resume,
            push_to_hub=args.push_to_hub, progress=not args.no_progress,
        )
    except (IJepaError, ValueError, FileNotFoundError) as err:
        logging.getLogger("ijepa_hub.train").error("%s", err)
        return 2
    if rank == 0:
        losses = result.losses
        summary = f"steps {result.start_step} -> {result.step} of {result.total_steps}"
        if losses:
            summary += f", loss {losses[0]:.4f} -> {losses[-1]:.4f}"
        if result.monitor:
            summary += f", RankMe {result.monitor[-1]['rankme']:.1f}"
        if result.preempted:
            summary += "; preempted: checkpoint written, resume with --resume auto"
        elif result.export_dir is not None:
            summary += f"; model in {result.export_dir}"
        print(f"ijepa-train: {summary}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
