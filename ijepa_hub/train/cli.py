"""``ijepa-train``: parse a recipe and dotted overrides, call :func:`ijepa_hub.train.train`, report."""
from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..cli_common import run_cli
from ..deprecation import deprecated_attributes
from ..engine import cli as run_cli_args
from ..recipe import Recipe, list_recipes, load_recipe, recipe_parser

if TYPE_CHECKING:
    from .loop import TrainResult

__all__ = ["main", "build_parser", "parse_args", "next_steps"]

__getattr__ = deprecated_attributes(__name__, {  # moved to the engine in 0.2: both task CLIs share them
    "add_run_args": ("ijepa_hub.engine.cli.add_run_args", lambda: run_cli_args.add_run_args),
    "setup_rank_logging": ("ijepa_hub.engine.cli.setup_rank_logging", lambda: run_cli_args.setup_rank_logging),
})

_EPILOG = """\
Every recipe key can be overridden by its dotted name, e.g. --optim.lr 5e-4 --train.max_steps 100
--data.batch_size_per_device 64 --mask.mode legacy. The defaults shown are those of the recipe
selected with --recipe (ijepa-train --recipe in1k_vith14 --help shows that recipe's).
Shipped recipes: {recipes}.
"""


_DATA_HELP = ("training images: a folder, WebDataset shards ('/data/in1k-{0000..1023}.tar'), hfds/NAME or "
              "hfids/NAME (--data.path; default: built-in synthetic shapes)")
_EXAMPLES = """\
examples:
  ijepa-train                                             the built-in default, then runs/default/model
  ijepa-train --recipe modest_vit_small --data images/ --out runs/small
  ijepa-train --recipe adapt_vith14 --data images/        continue the released ViT-H/14 (--init)
  ijepa-train --out runs/small --resume auto              continue a stopped run

"""


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
    parser = run_cli_args.add_run_args(parser, load_recipe(recipe).to_dict(), recipe)
    _add_plan_args(parser)
    options = {"--recipe": None, "--data": _DATA_HELP, "--out": None, "--resume": None,
               "--init": "continue a pretrained model: a released variant, Hub repo or folder (--init.source)",
               "--teacher": "distil a pretrained teacher into the recipe's model (--teacher.source)",
               "--push-to-hub": None, "--plan": None}
    main = {o: text for o, text in options.items() if any(o in a.option_strings for a in parser._actions)}
    run_cli_args.add_short_help(parser, main, examples=_EXAMPLES)
    return parser


def _add_plan_args(parser) -> None:
    parser.add_argument("--plan", action="store_true",
                        help="print parameters, FLOPs, memory per device and GPU time of the run, and exit (no training)")
    parser.add_argument("--plan-gpus", type=int | None, default=None, metavar="N",
                        help="--plan: number of GPUs (default: the recipe's, global batch / per-device batch)")
    parser.add_argument("--plan-device", type=str | None, default=None, metavar="GPU",
                        help="--plan: one GPU kind, A100, H100 or H200 (default: a row for each)")
    parser.add_argument("--plan-mfu", type=float | None, default=None, metavar="F",
                        help="--plan: model FLOP utilisation assumed for the times, 0-1 (default 0.3)")
    parser.add_argument("--plan-images", type=int | None, default=None, metavar="N",
                        help="--plan: images per epoch (default: known for imagenet-1k / -22k and synthetic data)")


def parse_args(argv: Sequence[str]) -> tuple[Recipe, Any]:
    """``(recipe, namespace)`` from command-line arguments: the named recipe, then the dotted overrides.

    The library form of ``ijepa-train``'s parsing, for scripts that take the same overrides. Raises
    ``jsonargparse.ArgumentError`` / :class:`~ijepa_hub.recipe.RecipeError` naming the bad key.
    """
    return run_cli_args.parse_recipe_args(argv, build_parser=build_parser, default="default", schema=Recipe)


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
        steps = f"step {first['step']} -> {last['step']}" if first is not last else f"step {last['step']}"
        summary += f", online k-NN ({steps}) " + ", ".join(
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


def _run(argv: list[str]) -> None:
    recipe, args = parse_args(argv)
    if args.plan:
        from .plan import describe_plan

        print(describe_plan(recipe, num_gpus=args.plan_gpus, gpu=args.plan_device, mfu=args.plan_mfu,
                            images_per_epoch=args.plan_images))
        return
    rank = run_cli_args.setup_rank_logging(args)

    from .loop import train

    result = train(
        recipe, out_dir=args.out, resume=args.resume,
        push_to_hub=args.push_to_hub, progress=not args.no_progress,
    )
    if rank == 0:
        print(f"ijepa-train: {_summary(result)}")
        print(f"objective: {result.objective}")
        steps = next_steps(result)
        print("next:\n" + "\n".join(f"  {line}" for line in steps))


if __name__ == "__main__":
    raise SystemExit(main())
