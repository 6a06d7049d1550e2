"""Finding and fetching the released ``.pth.tar`` checkpoints: names, aliases, URLs and the download cache.

One path for everyone who wants a released checkpoint (``from_pretrained``, ``load_reference_checkpoint``,
torch.hub): a registry name (``ijepa_vith14_1k``), an alias (``ijepa_vith14``), a released file name
(``IN1K-vit.h.14-300e.pth.tar``) or an ``http(s)://`` / ``file://`` URL is downloaded once into
``<torch hub dir>/checkpoints/`` (``TORCH_HOME``), unless offline; a local file is used where it is.

The cache is keyed on the full source: a released variant's own URL keeps its file name (as torch.hub
names it), any other URL gets a prefix from the hash of the whole URL, so two URLs ending in the same
file name never share a download. Each download is checked before it is kept (a checkpoint starts as a
zip archive or a pickle; an HTML page from a proxy or a login wall is refused, not cached) and recorded
in a ``<file>.json`` beside it (source, size, SHA-256 of the first MiB). A cached file that no longer
matches its record, or a ``file://`` source that changed since it was fetched (even with its
modification time kept, as ``cp -p`` / ``rsync -t`` do), is fetched again.
"""
from __future__ import annotations

import hashlib
import json
import os
import urllib.parse
import urllib.request
from pathlib import Path

import torch
from huggingface_hub import constants as hf_constants

from .data.fingerprint import file_fingerprint
from .errors import CheckpointError, WeightsNotCachedError
from .registry import ALIASES, VARIANTS, PretrainedVariant, resolve_alias

__all__ = ["find_variant", "is_url", "offline_reason", "reference_checkpoint_path", "cache_path", "check_is_checkpoint"]


def is_url(s: str) -> bool:
    return urllib.parse.urlparse(s).scheme in ("http", "https", "file")


def find_variant(name: str | os.PathLike) -> PretrainedVariant | None:
    """The released variant ``name`` denotes: its registry name, an alias, or a path / URL ending in its file name."""
    s = os.fspath(name)
    if resolve_alias(s) in VARIANTS:
        return VARIANTS[resolve_alias(s)]
    base = os.path.basename(urllib.parse.urlparse(s).path if is_url(s) else s)
    return next((v for v in VARIANTS.values() if v.filename == base), None)


def offline_reason(local_files_only: bool) -> str | None:
    """Why downloads are off (``local_files_only=True`` or ``HF_HUB_OFFLINE=1``), or None when they are allowed."""
    if local_files_only:
        return "local_files_only=True"
    return "HF_HUB_OFFLINE=1" if hf_constants.is_offline_mode() else None


def reference_checkpoint_path(
    name_or_path: str | os.PathLike, *, local_files_only: bool = False
) -> tuple[Path, PretrainedVariant | None]:
    """The local ``.pth.tar`` for a file, URL, released file name, variant name or alias, and its variant.

    A local file is returned as it is; a URL (a variant's own URL for a name) is downloaded once into
    ``<torch hub dir>/checkpoints/`` through a temporary file, so an interrupted download leaves nothing.
    Raises ``FileNotFoundError`` for a path that is none of these, :class:`WeightsNotCachedError` when
    offline with nothing cached or when the download fails.
    """
    s = os.fspath(name_or_path)
    variant = find_variant(s)
    if os.path.isfile(s):
        return Path(s), variant
    if not is_url(s):
        if variant is None or os.path.dirname(s):  # a path that does not exist is not a name to download
            raise FileNotFoundError(
                f"no checkpoint at {s!r}: not a file, a URL, or a released variant ({', '.join(VARIANTS)}, "
                f"aliases {', '.join(ALIASES)}) or its file name"
            )
        s = variant.url
    local = cache_path(s, variant)
    if not _cached_copy_is_current(s, local):
        _download(s, local, local_files_only=local_files_only)
    return local, variant


def cache_path(url: str, variant: PretrainedVariant | None = None) -> Path:
    """Where ``url`` is cached: ``checkpoints/<file name>`` for a variant's own URL, else prefixed by the URL's hash."""
    name = os.path.basename(urllib.parse.urlparse(url).path) or "checkpoint.pth.tar"
    if variant is None or url != variant.url:
        name = f"{hashlib.sha256(url.encode()).hexdigest()[:16]}-{name}"
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def _fingerprint(path: Path) -> dict[str, object]:
    return file_fingerprint(path)


def _record(local: Path) -> Path:
    return local.with_name(local.name + ".json")


def _cached_copy_is_current(url: str, local: Path) -> bool:
    """True when ``local`` exists, is a checkpoint, matches its record and (``file://``) its source."""
    if not local.is_file():
        return False
    check_is_checkpoint(local, source=url, cached=True)
    try:
        record = json.loads(_record(local).read_text())
    except (OSError, ValueError):
        return True  # placed by hand (the error messages say where): trusted as it is
    if {k: record.get(k) for k in ("size", "head_sha256")} != _fingerprint(local):
        return False  # changed or damaged since it was downloaded
    if urllib.parse.urlparse(url).scheme == "file":
        source = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
        return source.is_file() and _fingerprint(source) == {k: record.get(k) for k in ("size", "head_sha256")}
    return True


def check_is_checkpoint(path: Path, *, source: str, cached: bool = False) -> None:
    """Refuse a file that cannot be a torch checkpoint (a zip archive or a pickle), naming what it looks like."""
    with open(path, "rb") as f:
        head = f.read(512)
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        return
    text = head.lstrip().lower()
    what = (
        "an HTML page (a proxy's or login page's \"200 OK\", not the file)"
        if text.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml")) or b"<html" in text
        else f"not a torch checkpoint (it starts with {head[:16]!r})"
    )
    if cached:
        raise CheckpointError(
            f"the cached download of {source}, {path}, is {what}. Fix: delete {path} (and {_record(path).name} "
            "beside it) and load again, or download the file yourself and pass its path."
        )
    raise CheckpointError(
        f"{source} sent {what}; nothing was cached. Fix: check the URL and the network (proxy, login), or "
        "download the file yourself and pass its path."
    )


def _download(url: str, local: Path, *, local_files_only: bool) -> None:
    """Fetch a released checkpoint into the torch hub cache, unless offline; errors say where to put it.

    The file is downloaded beside its final name, checked (:func:`check_is_checkpoint`) and renamed into
    place with its record; what is not a checkpoint is deleted, never cached.
    """
    fix = f"Fix: download {url} yourself and pass the file's path, or place it at {local}"
    offline = offline_reason(local_files_only)
    if offline:
        raise WeightsNotCachedError(
            f"{url} is not in the torch hub cache ({local}) and {offline} forbids downloading it. {fix}."
        )
    local.parent.mkdir(parents=True, exist_ok=True)
    partial = local.with_name(f".{local.name}.{os.getpid()}.download")
    try:
        torch.hub.download_url_to_file(url, str(partial), progress=True)
        check_is_checkpoint(partial, source=url)
        record = json.dumps({"source": url, **_fingerprint(partial)})
        _record(local).write_text(record)
        os.replace(partial, local)
    except OSError as err:  # urllib's URLError / HTTPError, a full disk ...
        message = f"cannot download {url} into {local} ({err}). {fix}, or check the network."
        raise WeightsNotCachedError(message) from err
    finally:
        partial.unlink(missing_ok=True)
