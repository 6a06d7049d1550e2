"""What the three command-line tools (``ijepa-train``, ``ijepa-hub``, ``ijepa-eval``) share.

The common flags (``--version``, ``-q`` / ``-v``), the model-source arguments and loading through
:func:`~ijepa_hub.from_pretrained`, the default device, and :func:`run_cli`, which turns an error into
one line on stderr and a non-zero exit.

Parsing style: all three are argparse parsers, built with ``add_argument`` and these helpers.
``ijepa-train`` uses jsonargparse's ``ArgumentParser`` (an argparse subclass) because its options are the
:class:`~ijepa_hub.recipe.Recipe` dataclasses: jsonargparse derives the dotted keys (``--optim.lr``),
checks types, ``Literal`` choices and tuple lengths, and names the bad key, which plain argparse would
need a hand-written copy of the schema for. ``ijepa-hub`` and ``ijepa-eval`` are subcommands with
positional arguments and no nested schema; plain argparse covers them without importing jsonargparse.
The helpers here take either kind of parser, so the shared flags read and behave the same in all three.
"""
from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from .deprecation import REMOVED_IN

__all__ = [
    "version_string",
    "add_common_args",
    "log_level",
    "setup_logging",
    "add_source_args",
    "add_source_revision_arg",
    "DeprecatedAlias",
    "add_deprecated_alias",
    "layers_arg",
    "default_device",
    "load_model",
    "run_cli",
    "one_line",
]

DEFAULT_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DEPRECATED_REMOVED_IN = REMOVED_IN  # old option spellings keep working through the next minor version (0.2)
_STORE_VALUE = object()


def version_string() -> str:
    """``ijepa-hub <version>`` (:mod:`ijepa_hub.version`, the one source pyproject.toml reads too)."""
    from .version import __version__

    return f"ijepa-hub {__version__}"


def add_common_args(parser: argparse.ArgumentParser, *, version: bool = True) -> None:
    """``--version`` (when ``version``) and ``-q`` / ``-v`` (WARNING / DEBUG; INFO without either).

    Add them to the top-level parser and, with ``version=False``, to each subcommand's parser, so that
    ``ijepa-eval -v knn ...`` and ``ijepa-eval knn ... -v`` both work; the flags default to "not given"
    so a subcommand's parser cannot overwrite the top-level value.
    """
    if version:
        parser.add_argument("--version", action="version", version=version_string())
    parser.add_argument("-q", "--quiet", dest="log_level", action="store_const", const=logging.WARNING,
                        default=argparse.SUPPRESS, help="log warnings and errors only")
    parser.add_argument("-v", "--verbose", dest="log_level", action="store_const", const=logging.DEBUG,
                        default=argparse.SUPPRESS, help="log debug messages too (and tracebacks of errors)")
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="on an error, print its full traceback before the one-line message")


def log_level(args: Any) -> int:
    """The logging level ``-q`` / ``-v`` chose (INFO when neither was given)."""
    return getattr(args, "log_level", logging.INFO)


def setup_logging(args: Any, *, fmt: str = DEFAULT_LOG_FORMAT, level: int | None = None) -> int:
    """Send log records to stderr; ijepa_hub's at :func:`log_level` (or ``level``), other libraries' at WARNING.

    Other libraries stay at WARNING so that ``-v`` does not bury ours under every HTTP request. A root
    logger that already has handlers (an application, pytest) is left as it is. Returns the level.
    """
    level = log_level(args) if level is None else level
    logging.basicConfig(level=logging.WARNING, format=fmt)
    logging.getLogger("ijepa_hub").setLevel(level)
    return level


class DeprecatedAlias(argparse.Action):
    """An old spelling of an option: prints a one-line deprecation warning on stderr, then stores as the new one.

    Used through :func:`add_deprecated_alias`; hidden from ``--help``. ``new_flag`` is the spelling to write
    instead (the warning names it, and tests check that the documentation never shows the old one).
    """

    def __init__(self, option_strings: Sequence[str], dest: str, *, new_flag: str, **kwargs: Any) -> None:
        self.new_flag = new_flag
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"{parser.prog}: warning: {option_string} is deprecated and will be removed in "
              f"{DEPRECATED_REMOVED_IN}; use {self.new_flag}", file=sys.stderr)
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)


def add_deprecated_alias(p: argparse.ArgumentParser, old: str, new: str, *, dest: str, const: Any = _STORE_VALUE,
                         **kwargs: Any) -> None:
    """Keep ``old`` working as a deprecated spelling of ``new`` (same ``dest``).

    Without ``const`` the alias takes a value like ``new`` does (pass its ``type`` etc. in ``kwargs``); with
    ``const`` it is a flag storing ``const`` (``--with-predictor`` storing True for ``--predictor``).
    """
    if const is not _STORE_VALUE:
        kwargs.update(nargs=0, const=const)
    p.add_argument(old, dest=dest, action=DeprecatedAlias, new_flag=new, default=argparse.SUPPRESS,
                   help=argparse.SUPPRESS, **kwargs)


def layers_arg(value: str) -> int | list[int]:
    """The one ``--layers`` type: ``n`` (an int) is the last n blocks, ``2,5,11`` (a list) those block indices.

    As :func:`~ijepa_hub.extract_features` takes ``layers``; a subcommand taking several choices uses it per
    item (``nargs="+"``). A bad value is a usage error (argparse exits 2 before any work).
    """
    try:
        parts = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r}: give a number n (the last n blocks) or block indices like 2,5,11") from None
    if not parts:
        raise argparse.ArgumentTypeError("--layers needs a number n (the last n blocks) or block indices like 2,5,11")
    if "," in value:
        return parts
    if parts[0] < 1:
        raise argparse.ArgumentTypeError(
            f"{value!r}: n, the last n blocks, must be at least 1 (block index {parts[0]} alone: write '{parts[0]},')")
    return parts[0]


def add_source_args(p: argparse.ArgumentParser, *, encoders: Sequence[str] = ("target", "context")) -> None:
    """The positional ``source`` of :func:`~ijepa_hub.from_pretrained` and the options that go with it."""
    p.add_argument("source", help="registry name, folder, Hub repo id, .pth.tar file or URL")
    p.add_argument("--encoder", choices=tuple(encoders), default="target", help="which encoder (default: target)")
    add_source_revision_arg(p)
    p.add_argument("--allow-pickle", action="store_true", help="accept pickle weights (.bin) in a Hub source")


def add_source_revision_arg(p: argparse.ArgumentParser) -> None:
    """``--source-revision``: the revision (branch, tag, commit) of a Hub source; ``--revision-from`` is deprecated.

    Named for what it reads from, beside ``ijepa-hub``'s ``--revision`` (the branch a push commits to)."""
    p.add_argument("--source-revision", dest="source_revision", default=None,
                   help="revision (branch, tag or commit) of a Hub source")
    add_deprecated_alias(p, "--revision-from", "--source-revision", dest="source_revision")


def default_device(device: str | None = None) -> str:
    """``device`` if given, else ``cuda`` when available, else ``cpu``."""
    import torch

    if device:
        try:
            where = torch.device(device)
        except RuntimeError:
            raise ValueError(f"--device {device!r} is not a device. Fix: pass cpu, cuda or cuda:N.") from None
        if where.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"--device {device}: CUDA is not available on this machine. Fix: pass --device cpu.")
        return device

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(args: Any, **kwargs: Any):
    """:func:`~ijepa_hub.from_pretrained` of the source that :func:`add_source_args` parsed."""
    from .hub.load import from_pretrained

    return from_pretrained(
        args.source, encoder=args.encoder, revision=args.source_revision, allow_pickle=args.allow_pickle, **kwargs
    )


def one_line(err: BaseException) -> str:
    """An exception's message with its lines and runs of spaces joined into one line."""
    return " ".join(str(err).split()) or type(err).__name__


_OS_FIXES = ((PermissionError, "check its permissions, or choose another path"),
             (IsADirectoryError, "give a file's path, not a folder's"),
             (FileNotFoundError, "check the path"))


def os_error_line(err: OSError) -> str | None:
    """A Python file-system error (``[Errno 17] File exists: 'x'``) as one line that names the path and a fix;
    None for any other ``OSError`` (ours, the Hub's), whose message already says what to do."""
    if type(err).__module__ != "builtins" or err.errno is None or err.filename is None:
        return None
    if isinstance(err, NotADirectoryError | FileExistsError):  # something in the way of a folder or a new file
        from .engine.files import path_in_the_way

        blocker = path_in_the_way(err.filename)
        kind = "a folder" if blocker.is_dir() else "a link" if blocker.is_symlink() else "a file"
        return (f"cannot create {err.filename}: {blocker} is in the way ({kind}). Fix: choose another path, or move "
                f"{blocker} away.")
    where = f"{err.filename} -> {err.filename2}" if err.filename2 is not None else f"{err.filename}"
    fix = next((fix for kind, fix in _OS_FIXES if isinstance(err, kind)), None)
    return f"{where}: {err.strerror}" + (f". Fix: {fix}." if fix else "")


def _errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError

    from .errors import IJepaError, RecipeError

    usage = (argparse.ArgumentError, RecipeError)  # a bad option, recipe key or recipe name
    # our errors; missing files and Hub HTTP errors (OSError); bad values from the libraries we call; the Hub
    # client's errors, including its HTTP library's base error (httpx's is not an OSError)
    hub = (HfHubHTTPError, HFValidationError, *(c for c in HfHubHTTPError.__mro__[1:] if c.__name__ == "HTTPError"))
    return usage, (IJepaError, OSError, ValueError, *hub)


def run_cli(prog: str, command: Callable[[], Any], *, debug: bool | None = None) -> int:
    """Run ``command``; an expected error becomes one line ``<prog>: error: <message>`` on stderr.

    Exit codes: 0 done; 2 a usage error (a bad option, recipe key or recipe name, as argparse exits);
    1 any other expected error: ijepa_hub's own, ``OSError`` (missing files, Hub HTTP errors),
    ``ValueError`` or a Hugging Face Hub client error; 130 Ctrl-C. Anything else is a bug and keeps its
    traceback. ``debug`` (default: ``--debug`` on the command line) prints the traceback of an expected
    error before its line; with ``-v`` it is logged as well.
    """
    debug = "--debug" in sys.argv[1:] if debug is None else debug
    usage, expected = _errors()
    try:
        command()
    except usage + expected as err:
        logging.getLogger("ijepa_hub").debug("%s failed", prog, exc_info=err)
        if debug:
            traceback.print_exception(err, file=sys.stderr)
        line = os_error_line(err) if isinstance(err, OSError) else None
        print(f"{prog}: error: {line or one_line(err)}", file=sys.stderr)
        return 2 if isinstance(err, usage) else 1
    except KeyboardInterrupt as err:
        if debug:
            traceback.print_exception(err, file=sys.stderr)
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    return 0
