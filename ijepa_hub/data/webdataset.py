"""WebDataset ``.tar`` shards with random access: a small reader over ``tarfile`` and brace expansion.

Why not the ``webdataset`` library: it streams shards (an IterableDataset), which makes an exact,
sample-level resume and a world-size-independent sample order hard. Indexing the tar headers once
(offsets only, no data read) gives a map-style dataset that shares the sampler of image folders.
"""
from __future__ import annotations

import glob
import io
import os
import re
import tarfile
from pathlib import Path

from torch.utils.data import Dataset

from ..errors import DataError, ImageReadError
from ..limits import MAX_SHARDS
from .images import IMAGE_EXTENSIONS

__all__ = ["TarShards", "brace_count", "expand_braces", "is_shard_spec"]

_BRACE = re.compile(r"\{([^{}]*)\}")


def _options(body: str) -> tuple[int, int, int] | list[str]:
    """A brace body's options: ``(lo, hi, width)`` for a range ``lo..hi``, else the comma-separated names."""
    ranged = re.fullmatch(r"(\d+)\.\.(\d+)", body)
    if ranged:
        lo, hi = ranged.groups()
        return int(lo), int(hi), len(lo) if lo.startswith("0") else 0
    return body.split(",")


def brace_count(pattern: str) -> int:
    """How many names :func:`expand_braces` gives for ``pattern``, counted without expanding it."""
    count = 1
    for body in _BRACE.findall(pattern):
        options = _options(body)
        count *= max(0, options[1] - options[0] + 1) if isinstance(options, tuple) else len(options)
    return count


def expand_braces(pattern: str) -> list[str]:
    """``shard-{000..009}.tar`` or ``{a,b}.tar`` -> the list of names (zero padding kept).

    A pattern naming more than :data:`~ijepa_hub.limits.MAX_SHARDS` names is a :class:`DataError`, refused
    before any is made (``{0..999999999}`` would fill the memory)."""
    count = brace_count(pattern)
    if count > MAX_SHARDS:
        raise DataError(
            f"{pattern[:200]}: the brace pattern names {count} files, over the {MAX_SHARDS} shards ijepa_hub reads; "
            "it is a typo (check the range's digits). Fix: give the shards' real range, e.g. shard-{0000..1023}.tar."
        )
    return _expand(pattern)


def _expand(pattern: str) -> list[str]:
    match = _BRACE.search(pattern)
    if match is None:
        return [pattern]
    head, tail = pattern[: match.start()], pattern[match.end() :]
    options = _options(match.group(1))
    if isinstance(options, tuple):
        lo, hi, width = options
        options = [str(i).zfill(width) for i in range(lo, hi + 1)]
    return [name for option in options for name in _expand(head + option + tail)]


def is_shard_spec(spec: str) -> bool:
    """True for a ``.tar`` path, a brace pattern or a glob of shards."""
    return "{" in spec or any(part.endswith(".tar") for part in expand_braces(spec.split("::")[0]))


class TarShards(Dataset):
    """Images stored in WebDataset shards; item ``(bytes_reader, label)``.

    ``spec`` is a path, a brace pattern (``/data/in1k-{0000..1023}.tar``), a glob, or several joined by
    ``::``. Samples are grouped by key (the member name up to the first dot of its basename); the image
    is the member with an image extension, the label the integer in a ``cls`` member (else -1). A shard
    that cannot be indexed is a :class:`~ijepa_hub.errors.DataError`; an item whose bytes are cut short
    an :class:`~ijepa_hub.errors.ImageReadError` (skipped and counted by the trainer). Items are
    ``BytesIO`` objects named ``shard.tar:member``.
    """

    def __init__(self, spec: str) -> None:
        self.shards: list[Path] = []
        for part in spec.split("::"):
            for name in expand_braces(part):
                matches = sorted(glob.glob(name)) if any(c in name for c in "*?[") else [name]
                self.shards.extend(Path(m) for m in matches)
        missing = [str(p) for p in self.shards if not p.is_file()]
        if not self.shards or missing:
            shown = ", ".join(missing[:3]) + (f", ... ({len(missing)} missing in all)" if len(missing) > 3 else "")
            raise FileNotFoundError(f"WebDataset shards not found: {shown or spec[:200]}")
        # (shard index, image offset, image size, label, member name)
        self.samples: list[tuple[int, int, int, int, str]] = []
        for shard_index, path in enumerate(self.shards):
            self.samples.extend((shard_index, *entry) for entry in _index_shard(path))
        if not self.samples:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in the shards of {spec}")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[io.BytesIO, int]:
        shard, offset, size, label, member = self.samples[index]
        name = f"{self.shards[shard]}:{member}"
        with open(self.shards[shard], "rb") as f:
            f.seek(offset)
            data = f.read(size)
        if len(data) != size:
            raise ImageReadError(
                f"{name}: truncated ({len(data)} of {size} bytes; the shard changed after it was indexed). "
                "Fix: restore the shard.", path=name,
            )
        buffer = io.BytesIO(data)
        buffer.name = name
        return buffer, label


def _index_shard(path: Path) -> list[tuple[int, int, int, str]]:
    """``(offset, size, label, member name)`` of every image in a shard, read from the tar headers."""
    try:
        with tarfile.open(path, "r:") as tar:
            return _index_members(path, tar)
    except (tarfile.TarError, EOFError) as err:
        raise DataError(
            f"{path}: not a readable tar shard ({type(err).__name__}: {err}); it is truncated or damaged. "
            "Fix: copy or rebuild the shard, or leave it out of --data."
        ) from err


def _index_members(path: Path, tar: tarfile.TarFile) -> list[tuple[int, int, int, str]]:
    groups: dict[str, dict[str, tarfile.TarInfo]] = {}
    labels: dict[str, int] = {}
    for member in (m for m in tar.getmembers() if m.isfile()):
        base = os.path.basename(member.name)
        key = os.path.join(os.path.dirname(member.name), base.split(".", 1)[0])
        ext = "." + base.split(".", 1)[1].lower() if "." in base else ""
        groups.setdefault(key, {})[ext] = member
        if ext in (".cls", ".label"):
            raw = tar.extractfile(member).read().decode().strip()
            try:
                labels[key] = int(raw)
            except ValueError:
                raise DataError(f"{path}: {member.name} holds {raw!r}, not an integer class") from None
    entries = []
    for key, files in groups.items():
        image = next((files[e] for e in IMAGE_EXTENSIONS if e in files), None)
        if image is not None:
            entries.append((image.offset_data, image.size, labels.get(key, -1), image.name))
    return entries
