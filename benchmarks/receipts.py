"""Every measured figure in README.md and docs/*.md sits under a receipt: the convention and its checker.

The convention (docs/performance.md, "Receipts"):

- A **figure** is a number a measurement made: a decimal (``0.335``, ``9.05e-7``), a percentage (``57 %``), a
  time (``58 s``, ``4 min 11 s``, ``114.7 ms``), a ratio (``2.9x``), a rate (``48 img/s``), a memory size
  (``170 KiB``) or a signed decimal (a margin, ``+12.4``). Integers without a unit (steps, pixels, images)
  and numbers in inline code (`` `--optim.lr 2e-3` ``, config values) are not figures; in a fenced code
  block only the comments are read. Versions (``torch 2.14.1``) are not figures.
- A **block** runs from a heading or a marker to the next heading or marker. Its receipts are the results
  files (``benchmarks/results/*.json`` / ``*.jsonl``) named by a marker at its start,
  ``<!-- receipt: benchmarks/results/a.json benchmarks/results/b.jsonl -->`` (outside inline code), or linked or
  named anywhere in it (``[...](../benchmarks/results/a.json)``, `` `results/a.json` ``: files that exist).
- Every figure of a block must be **recorded** in its receipts: some number of the files (JSON numbers, and
  numbers inside their strings, e.g. captured output) rounds to it at the doc's precision, as a 0-1 fraction
  or a percentage, in seconds, milliseconds or minutes. ``about`` / ``~`` before a figure allows 10 %.
- **Derived values** (differences, means, ratios) come from the script that wrote the file:
  ``<!-- receipt: benchmarks/results/x.jsonl via benchmarks/x.py --table -->`` runs the command; the numbers
  of its output count as recorded, and a Markdown table of the block whose header line the output prints
  must repeat the output's rows verbatim (the script generates the table, the doc copies it).
- Facts **quoted** from the paper or the reference release are exempt by a marker that cites them:
  ``<!-- source: paper, Table 1 -->``.
- Every receipt records ``command``, ``commit``, ``machine`` and ``threads`` (``benchmarks/common.py``
  ``environment()``), at its top level or in its ``environment`` / ``env`` section, in every JSONL row.

    python benchmarks/receipts.py          # list every problem (figures without receipts, missing keys); exit 1 if any
"""
from __future__ import annotations

import bisect
import contextlib
import io
import json
import math
import os
import re
import runpy
import shlex
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIRED_KEYS = ("command", "commit", "machine", "threads")

# Config values that read like figures (a setting, not a measurement), by page: kept small and literal.
ALLOWED: dict[str, frozenset[str]] = {
    "README.md": frozenset({"0.91"}),  # the shape of classify()'s output, in a code comment
    "docs/finetuning.md": frozenset({"0.91", "0.75", "0.3", "0.8", "1.0", "0.1"}),  # the output's shape; MAE's recipe
    "docs/guarantees.md": frozenset({"0.01", "30 s"}),  # data.max_broken_fraction's default; the progress interval
    "docs/training.md": frozenset({"0.2 s"}),  # the thread policy's sampling window, a constant of the code
    "docs/evaluation.md": frozenset({"20 %"}),  # the linear probe's held-out split
    "docs/hub.md": frozenset({"5 s", "0.5"}),  # a request timeout; transformers' normalisation constants
    "docs/performance.md": frozenset({"1.5x"}),  # issue 24's goal for CPU bf16 training, a target not a measurement
    "docs/explorer.md": frozenset({"50 MB"}),  # the demo's upload cap, a constant of the code
}

_MARKER = re.compile(r"<!--\s*(receipt|source):(.*?)-->")
_RESULTS_REF = re.compile(r"(?:benchmarks/)?results/[\w.-]+?\.jsonl?\b")
_NUM = r"\d+(?:,\d{3})*(?:\.\d+)?"
_UNIT = (r"(?:%|x(?![\w-])|ms\b|s\b|min\b|minutes?\b|seconds?\b|h\b|hours?\b|(?:img|images|steps?)/s\b|"
         r"[GT]FLOP/s\b|KiB\b|MiB\b|GiB\b|[KMGT]B\b)")
_FIGURE = re.compile(
    rf"(?P<minsec>(?P<m>\d+) min (?P<s>\d+) s\b)"
    rf"|(?P<range>(?P<a>{_NUM})-(?P<b>{_NUM})(?P<rsp> ?)(?P<runit>{_UNIT}))"
    rf"|(?P<unit>(?:(?<![\w.])(?P<usign>[+-])|(?<![\w.+-]))(?P<uv>{_NUM})(?P<usp> ?)(?P<uunit>{_UNIT}))"
    rf"|(?P<dec>(?:(?<![\w.^])(?P<dsign>[+-])|(?<![\w.^+-]))(?P<dv>\d+\.\d+(?:e[+-]?\d+)?)(?![\w]|\.\d))"
)
_VERSION_WORDS = re.compile(r"(?:python|pytorch|torch|version|cuda|onnx|opset)\s*$", re.I)
_SECONDS = {"ms": 1e-3, "s": 1.0, "second": 1.0, "seconds": 1.0, "min": 60.0, "minute": 60.0, "minutes": 60.0,
            "h": 3600.0, "hour": 3600.0, "hours": 3600.0}
_BYTES = {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
          "GFLOP/s": 1e9, "TFLOP/s": 1e12}  # and FLOP rates: a scale to the recorded unit


@dataclass(frozen=True)
class Figure:
    """A figure as the doc writes it, and the values (with their rounding tolerance) it may stand for."""

    text: str
    line: int
    values: tuple[tuple[float, float], ...]
    signed: bool = False


@dataclass
class Block:
    """Lines from a heading or marker to the next one, with the receipts that apply to them."""

    page: str
    line: int
    receipts: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    source: str | None = None
    figures: list[Figure] = field(default_factory=list)
    tables: list[list[str]] = field(default_factory=list)


def pages(root: Path = ROOT) -> list[Path]:
    """README.md and every docs/*.md."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def _decimals(number: str) -> int:
    mantissa = number.split("e")[0]
    return len(mantissa.split(".")[1]) if "." in mantissa else 0


def _value(number: str) -> tuple[float, float]:
    """The value of a written number and half a unit of its last digit."""
    number = number.replace(",", "")
    exponent = int(number.split("e")[1]) if "e" in number else 0
    return float(number), 0.5 * 10.0 ** (exponent - _decimals(number))


def _alternatives(number: str, unit: str) -> tuple[tuple[float, float], ...]:
    v, tol = _value(number)
    out = [(v, tol)]
    if unit in _SECONDS and unit != "s":
        out.append((v * _SECONDS[unit], tol * _SECONDS[unit]))
    if unit in _BYTES:
        out.append((v * _BYTES[unit], tol * _BYTES[unit]))
    return tuple(out)


def figures(text: str, line: int = 0) -> list[Figure]:
    """The figures of one line of prose (inline code, links' targets and HTML comments already removed)."""
    found = []
    for m in _FIGURE.finditer(text):
        new: list[Figure] = []
        if m["minsec"]:
            new.append(Figure(m["minsec"], line, ((int(m["m"]) * 60 + int(m["s"]), 0.5),)))
        elif m["range"]:
            for number in (m["a"], m["b"]):
                new.append(Figure(f"{number}{m['rsp']}{m['runit']}", line, _alternatives(number, m["runit"])))
        elif m["unit"]:
            if m["usp"] and m["uunit"].startswith("x"):
                continue  # "16 x 16": a grid, not a ratio
            values = _alternatives(m["uv"], m["uunit"])
            if m["usign"] == "-":
                values = tuple((-v, t) for v, t in values)
            new.append(Figure(m["unit"], line, values, signed=bool(m["usign"])))
        elif not _VERSION_WORDS.search(text[: m.start()]):
            v, tol = _value(m["dv"])
            new.append(Figure(m["dec"], line, ((-v if m["dsign"] == "-" else v, tol),), signed=bool(m["dsign"])))
        if re.search(r"(?:about|roughly|~)\s*$", text[: m.start()], re.I):  # an approximate figure: 10 %
            new = [Figure(f.text, f.line, tuple((v, max(t, 0.1 * abs(v))) for v, t in f.values), f.signed)
                   for f in new]
        found += new
    return found


def _prose(line: str, in_code: bool) -> str:
    """The part of a line whose numbers may be figures."""
    if in_code:
        m = re.search(r"(?:^|\s)#\s(.*)$", line)
        return m[1] if m else ""
    line = re.sub(r"<!--.*?-->", " ", line)
    line = re.sub(r"`[^`]*`", " ", line)
    line = re.sub(r"\]\([^)]*\)", "]", line)  # a link's target
    return re.sub(r"https?://\S+", " ", line)


def blocks(path: Path, root: Path = ROOT) -> list[Block]:
    """``path`` cut into blocks at headings and markers, with their receipts and figures."""
    page = path.relative_to(root).as_posix()
    out = [Block(page, 1)]
    in_code = False
    table: list[str] = []
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        if raw.lstrip().startswith("```"):
            in_code = not in_code
            continue
        if table and (in_code or not raw.startswith("|")):
            out[-1].tables.append(table)
            table = []
        marker = None if in_code else _MARKER.search(re.sub(r"`[^`]*`", " ", raw))  # not one shown in code
        if (not in_code and raw.startswith("#")) or marker:
            out.append(Block(page, number))
        block = out[-1]
        if marker:
            kind, text = marker[1], marker[2].strip()
            if kind == "source":
                block.source = text or "?"
            else:
                files, _, command = text.partition(" via ")
                block.receipts += files.split() or ["(empty receipt)"]
                if command.strip():
                    block.commands.append(command.strip())
        if not in_code:
            refs = (ref if ref.startswith("benchmarks/") else f"benchmarks/{ref}"
                    for ref in _RESULTS_REF.findall(_MARKER.sub(" ", raw)))
            block.receipts += [ref for ref in refs if (root / ref).is_file()]  # a link or a name in the text
            if raw.startswith("|"):
                table.append(raw.strip())
        block.figures += figures(_prose(raw, in_code), number)
    if table:
        out[-1].tables.append(table)
    return out


def _numbers_in(obj: object) -> Iterator[float]:
    if isinstance(obj, bool) or obj is None:
        return
    if isinstance(obj, (int, float)):
        if math.isfinite(obj):
            yield float(obj)
    elif isinstance(obj, str):
        for m in re.finditer(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e[+-]?\d+)?", obj):
            yield float(m[0])
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _numbers_in(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _numbers_in(v)


def read_results(path: Path) -> list[dict]:
    """The records of a results file: the JSON object, or every row of a JSONL file."""
    text = path.read_text()
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    data = json.loads(text)
    return data if isinstance(data, list) else [data]


def _sorted_numbers(values: Iterable[float]) -> list[float]:
    out = set()
    for v in values:
        out.update((v, 100 * v))  # a 0-1 fraction quoted as a percentage
    return sorted(out)


@cache
def recorded(path: Path) -> list[float]:
    """Every number of a results file, sorted, each also times 100."""
    return _sorted_numbers(_numbers_in(read_results(path)))


@cache
def command_output(command: str, root: Path = ROOT) -> str:
    """What ``python <command>`` prints (a results file's ``--table``), run in this process: the scripts only
    read their results file, and torch is imported once."""
    argv = shlex.split(command)
    script = root / argv[0]
    if not script.is_file():
        raise RuntimeError(f"{command}: no script {argv[0]}")
    out, old_argv, old_path, old_cwd = io.StringIO(), sys.argv, list(sys.path), os.getcwd()
    try:
        sys.argv, sys.path[:0] = [str(script), *argv[1:]], [str(script.parent), str(root)]
        os.chdir(root)
        with contextlib.redirect_stdout(out):
            runpy.run_path(str(script), run_name="__main__")
    except SystemExit as err:
        if err.code not in (0, None):
            raise RuntimeError(f"{command} exited {err.code}") from None
    finally:
        sys.argv, sys.path[:] = old_argv, old_path
        os.chdir(old_cwd)
    return out.getvalue()


def is_recorded(figure: Figure, numbers: list[float]) -> bool:
    """Whether some number rounds to ``figure`` (unsigned figures match either sign)."""
    for value, tol in figure.values:
        tol = tol * (1 + 1e-9) + 1e-12
        for target in (value,) if figure.signed else (value, -value):
            i = bisect.bisect_left(numbers, target - tol)
            if i < len(numbers) and numbers[i] <= target + tol:
                return True
    return False


def missing_keys(path: Path) -> list[str]:
    """The keys of :data:`REQUIRED_KEYS` that a results file (any JSONL row) does not record."""
    missing: set[str] = set()
    for record in read_results(path):
        where = [record, *(record[k] for k in ("environment", "env") if isinstance(record.get(k), dict))]
        missing.update(k for k in REQUIRED_KEYS if not any(k in w for w in where))
    return sorted(missing, key=REQUIRED_KEYS.index)


def _lines(text: str) -> set[str]:
    return {" ".join(line.split()) for line in text.splitlines() if line.strip()}


def block_problems(block: Block, root: Path = ROOT) -> list[str]:
    """What is wrong with one block: unknown or incomplete receipts, figures they do not record."""
    where = f"{block.page}:{block.line}"
    if block.source is not None:
        return [] if block.source != "?" else [f"{where}: a source marker must cite its source"]
    problems, numbers = [], []
    for name in dict.fromkeys(block.receipts):
        path = root / name
        if not name.startswith("benchmarks/results/") or not path.is_file():
            problems.append(f"{where}: receipt {name} is not a file under benchmarks/results/")
            continue
        numbers += recorded(path)
        if missing := missing_keys(path):
            problems.append(f"{name}: records no {', '.join(missing)} (benchmarks/common.py environment())")
    outputs = []
    for command in block.commands:
        try:
            outputs.append(command_output(command, root))
        except (RuntimeError, OSError) as err:
            problems.append(f"{where}: {err}")
    for text in outputs:
        numbers += _sorted_numbers(_numbers_in(text))
        printed = _lines(text)
        for table in block.tables:
            if " ".join(table[0].split()) in printed:
                problems += [f"{where}: table row not as `python {block.commands[0]}` prints it: {row}"
                             for row in table if " ".join(row.split()) not in printed]
    numbers.sort()
    allowed = ALLOWED.get(block.page, frozenset())
    for f in block.figures:
        if f.text in allowed:
            continue
        if not block.receipts:
            problems.append(f"{block.page}:{f.line}: figure {f.text!r} has no receipt")
        elif not is_recorded(f, numbers):
            problems.append(f"{block.page}:{f.line}: figure {f.text!r} is not in {', '.join(dict.fromkeys(block.receipts))}"
                            + (f" nor in the output of {block.commands}" if block.commands else ""))
    return problems


def problems(root: Path = ROOT) -> list[str]:
    """Every problem of every page."""
    return [p for page in pages(root) for block in blocks(page, root) for p in block_problems(block, root)]


def main() -> int:
    found = problems()
    print("\n".join(found) or "every figure has a receipt")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
