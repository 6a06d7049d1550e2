"""What every task's command line shares (``ijepa-train``, ``ijepa-finetune``): the run options, the ``--data``
shorthand, a recipe picked by ``--recipe`` then overridden by dotted keys, and per-rank logging."""
from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from ..cli_common import add_common_args, log_level, setup_logging
from ..recipe import recipe_from_namespace

__all__ = ["add_run_args", "add_short_help", "rewrite_shorthands", "parse_recipe_args", "setup_rank_logging", "SHORTHANDS"]

# ``--data PATH`` for ``--data.path PATH`` and the like: the one key of a section that names a source
SHORTHANDS = {"data": "path", "init": "source", "teacher": "source"}


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def add_run_args(parser, recipe_dict: dict[str, Any], recipe: str | os.PathLike):
    """A recipe parser's defaults set to ``recipe_dict`` (the recipe named ``recipe``), the ``--data`` shorthand,
    the common flags and the run options (``--recipe --out --resume --push-to-hub --no-progress``); returns it."""
    parser.set_defaults(_flat(recipe_dict))
    for action in parser._actions:
        if action.dest in SHORTHANDS:  # the section-file option is shadowed by the shorthand (see parse_recipe_args)
            key = SHORTHANDS[action.dest]
            action.metavar, action.help = key.upper(), f"short for --{action.dest}.{key} {key.upper()}"
    add_common_args(parser)
    parser.add_argument("--recipe", type=str, default=os.fspath(recipe), help="a shipped recipe name or a YAML file")
    parser.add_argument("--out", type=str | None, default=None, metavar="DIR", help="run folder (default: runs/<recipe name>)")
    parser.add_argument(
        "--resume", type=str | None, default=None, metavar="auto|RUN",
        help="'auto': continue the run in --out if it has a checkpoint; or a run folder (or its checkpoint.pt): "
        "continue that run, in that folder",
    )
    parser.add_argument("--push-to-hub", type=str | None, default=None, metavar="OWNER/NAME", help="Hub repo id to upload the result to")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (metrics still go to JSONL)")
    return parser


def rewrite_shorthands(argv: Sequence[str]) -> list[str]:
    """``--data PATH`` / ``--data=PATH`` as ``--data.path PATH``, ``--init SOURCE`` as ``--init.source SOURCE``...
    (:data:`SHORTHANDS`) for the sections a recipe has."""
    argv, out, i = list(argv), [], 0
    while i < len(argv):
        arg = argv[i]
        section, eq, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        if section in SHORTHANDS and (eq or i + 1 < len(argv)):
            target = f"--{section}.{SHORTHANDS[section]}"
            out += [f"{target}={value}"] if eq else [target, argv[i + 1]]
            i += 1 if eq else 2
            continue
        out.append(arg)
        i += 1
    return out


def parse_recipe_args(
    argv: Sequence[str], *, build_parser: Callable[[str], Any], default: str, schema: type
) -> tuple[Any, Any]:
    """``(recipe, namespace)``: the recipe ``--recipe`` names (``default`` without it), then the dotted overrides.

    Raises ``jsonargparse.ArgumentError`` / :class:`~ijepa_hub.recipe.RecipeError` naming the bad key."""
    argv = rewrite_shorthands(argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--recipe", default=default)
    known, _ = pre.parse_known_args(argv)
    args = build_parser(known.recipe).parse_args(argv)
    return recipe_from_namespace(args, schema=schema), args


def setup_rank_logging(args: Any) -> int:
    """Logging for a process of a (torchrun) run, returning its rank: other ranks log warnings only, unless -v."""
    rank = int(os.environ.get("RANK", "0"))
    level = log_level(args)
    if rank != 0 and level > logging.DEBUG:
        level = logging.WARNING
    setup_logging(args, fmt=f"%(asctime)s [rank {rank}] %(levelname)s %(name)s: %(message)s", level=level)
    return rank


class _HelpAll(argparse.Action):
    """``--help-all``: the parser's full help (every recipe key with its default), then exit."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, nargs=0, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(type(parser).format_help(parser), end="")
        parser.exit()


def add_short_help(parser, main: dict[str, str | None], *, examples: str = "") -> None:
    """Make ``--help`` short: the description, the options named in ``main`` (``"--recipe"``, a positional's dest;
    a value replaces the option's help), ``examples`` and a pointer to ``--help-all``, which prints the full help
    with every recipe key."""
    parser.add_argument("--help-all", action=_HelpAll, help="show every option: all recipe keys and their defaults")

    def short_help(formatter: Any = None) -> str:
        brief = argparse.ArgumentParser(
            prog=parser.prog, usage=f"{parser.prog} [options] [--SECTION.KEY VALUE ...]", add_help=False,
            description=parser.description, formatter_class=argparse.RawDescriptionHelpFormatter,
            epilog=f"{examples}Every recipe key (--optim.lr, --train.max_steps...) and the other flags:\n"
                   f"  {parser.prog} --help-all     (with --recipe NAME: that recipe's defaults)",
        )
        group = brief.add_argument_group("the options you set")
        for name, text in [*main.items(), ("--help-all", None)]:
            action = next(a for a in parser._actions if name in a.option_strings or
                          (not a.option_strings and a.dest == name))
            default = f" (default: {action.default})" if action.default not in (None, argparse.SUPPRESS) else ""
            names = action.option_strings or [action.dest]
            kwargs = {"nargs": action.nargs} if not action.option_strings else {"metavar": action.metavar}
            if action.nargs == 0:
                kwargs = {"action": "store_true"}
            group.add_argument(*names, help=f"{text or action.help}{default}", **kwargs)
        return brief.format_help()

    parser.format_help = short_help
