"""``ijepa-train``: parse a recipe and dotted overrides, call :func:`ijepa_hub.train.train`, report."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..cli_common import add_common_args, log_level, run_cli, setup_logging
from ..recipe import Recipe, list_recipes, load_recipe, recipe_from_namespace, recipe_parser

if TYPE_CHECKING:
    from .loop import TrainResult

__all__ = ["main", "build_parser", "parse_args", "next_steps", "add_run_args", "setup_rank_logging"]

_EPILOG = """\
Every recipe key can be overridden by its dotted name, e.g. --optim.lr 5e-4 --train.max_steps 100
--data.batch_size_per_device 64 --mask.mode legacy. The defaults shown are those of the recipe
selected with --recipe (ijepa-train --recipe in1k_vith14 --help shows that recipe's).
Shipped recipes: {recipes}.
"""


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def build_parser(recipe: str | os.PathLike = "default"):
    """The jsonargparse parser: the run options plus every :class:`~ijepa_hub.recipe.Recipe` key.

    The recipe keys default to the values of ``recipe`` (a shipped name or a YAML file), so that
    ``--help`` shows them and unspecified keys keep them.
    """
    parser = recipe_parser(
        prog="ijepa-train",
        description="Train I-JEPA. With no arguments: the built-in default (tiny ViT, synthetic shapes, CPU).",
        epilog=_EPILOG.format(recipes=", ".join(list_recipes())),
    )
    return add_run_args(parser, load_recipe(recipe).to_dict(), recipe)


def add_run_args(parser, recipe_dict: dict[str, Any], recipe: str | os.PathLike):
    """A recipe parser's defaults set to ``recipe_dict`` (the recipe named ``recipe``), the ``--data`` shorthand,
    the common flags and the run options (``--recipe --out --resume --push-to-hub --no-progress``); returns it.
    ``ijepa-train`` and ``ijepa-finetune`` share it."""
    parser.set_defaults(_flat(recipe_dict))
    for action in parser._actions:
        if action.dest == "data":  # the section-file option is shadowed by the shorthand (see parse_args)
            action.metavar, action.help = "PATH", "short for --data.path PATH"
    add_common_args(parser)
    parser.add_argument("--recipe", type=str, default=os.fspath(recipe), help="a shipped recipe name or a YAML file")
    parser.add_argument("--out", type=str | None, default=None, help="run folder (default: runs/<recipe name>)")
    parser.add_argument(
        "--resume", type=str | None, default=None,
        help="'auto': continue the run in --out if it has a checkpoint; or a run folder (or its checkpoint.pt): "
        "continue that run, in that folder",
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

    The library form of ``ijepa-train``'s parsing, for scripts that take the same overrides. Raises
    ``jsonargparse.ArgumentError`` / :class:`~ijepa_hub.recipe.RecipeError` naming the bad key.
    """
    argv = _rewrite_data_shorthand(list(argv))
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--recipe", default="default")
    known, _ = pre.parse_known_args(argv)
    args = build_parser(known.recipe).parse_args(argv)
    return recipe_from_namespace(args), args


def next_steps(result: TrainResult) -> list[str]:
    """Commands to run after training: evaluate, extract features, push (or resume when preempted)."""
    if result.preempted:
        return [f"resume: ijepa-train <same options> --out {result.out_dir} --resume auto"]
    lines = [f"curves:   ijepa-eval curves {result.out_dir} {result.out_dir / 'curves.png'}"]
    if result.export_dir is not None:
        model = result.export_dir
        lines = [
            f"evaluate: ijepa-eval knn {model} --data <folder with class subfolders>   (or: ijepa-eval synthetic {model})",
            f"extract:  ijepa-eval extract {model} <images> features.safetensors",
            *lines,
            f"push:     ijepa-hub push {model} <owner/name>" if result.hub_url is None else f"pushed:   {result.hub_url}",
            f"load:     ijepa_hub.from_pretrained({str(model)!r})",
        ]
    return lines


def _summary(result: TrainResult) -> str:
    summary = f"steps {result.start_step} -> {result.step} of {result.total_steps}"
    if result.losses:
        summary += f", loss {result.losses[0]:.4f} -> {result.losses[-1]:.4f}"
    if result.monitor:  # the centred RankMe is the spread between images; the raw one also counts a shared component
        last = result.monitor[-1]
        centred = f" (centred {last['rankme_centered']:.1f})" if "rankme_centered" in last else ""
        summary += f", RankMe {last['rankme']:.1f}{centred}"
    if result.online_probe:  # a resumed run holds only the probes it ran itself: one value, not a rise
        first, last = result.online_probe[0], result.online_probe[-1]
        summary += ", online k-NN " + ", ".join(
            f"{key[4:]} {first[key]:.1f} -> {last[key]:.1f} %" if first is not last else f"{key[4:]} {last[key]:.1f} %"
            for key in last if key.startswith("knn_"))
    if result.preempted:
        summary += "; preempted: checkpoint written, resume with --resume auto"
    elif result.export_dir is not None:
        summary += f"; model in {result.export_dir}"
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ijepa-train``, ``python -m ijepa_hub.train`` and ``torchrun -m ijepa_hub.train``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    return run_cli("ijepa-train", lambda: _run(argv), debug="--debug" in argv)


def setup_rank_logging(args: Any) -> int:
    """Logging for a process of a (torchrun) run, returning its rank: other ranks log warnings only, unless -v."""
    rank = int(os.environ.get("RANK", "0"))
    level = log_level(args)
    if rank != 0 and level > logging.DEBUG:
        level = logging.WARNING
    setup_logging(args, fmt=f"%(asctime)s [rank {rank}] %(levelname)s %(name)s: %(message)s", level=level)
    return rank


def _run(argv: list[str]) -> None:
    recipe, args = parse_args(argv)
    rank = setup_rank_logging(args)

    from .loop import train

    result = train(
        recipe, out_dir=args.out, resume=args.resume,
        push_to_hub=args.push_to_hub, progress=not args.no_progress,
    )
    if rank == 0:
        print(f"ijepa-train: {_summary(result)}")
        steps = next_steps(result)
        print("next:\n" + "\n".join(f"  {line}" for line in steps))


if __name__ == "__main__":
    raise SystemExit(main())
