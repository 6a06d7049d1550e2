"""Finding and fetching the released ``.pth.tar`` checkpoints: names, aliases, URLs and the download cache.

One path for everyone who wants a released checkpoint (``from_pretrained``, ``load_reference_checkpoint``,
torch.hub): a registry name (``ijepa_vith14_1k``), an alias (``ijepa_vith14``), a released file name
(``IN1K-vit.h.14-300e.pth.tar``) or an ``http(s)://`` / ``file://`` URL is downloaded once into
``<torch hub dir>/checkpoints/`` (``TORCH_HOME``), unless offline; a local file is used where it is.
"""
from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

import torch
from huggingface_hub import constants as hf_constants

from ..errors import WeightsNotCachedError
from ..registry import ALIASES, VARIANTS, PretrainedVariant, resolve_alias

__all__ = ["find_variant", "is_url", "offline_reason", "reference_checkpoint_path"]


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
    local = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urllib.parse.urlparse(s).path)
    if not local.is_file():
        _download(s, local, local_files_only=local_files_only)
    return local, variant


def _download(url: str, local: Path, *, local_files_only: bool) -> None:
    """Fetch a released checkpoint into the torch hub cache, unless offline; errors say where to put it."""
    fix = f"Fix: download {url} yourself and pass the file's path, or place it at {local}"
    offline = offline_reason(local_files_only)
    if offline:
        raise WeightsNotCachedError(
            f"{url} is not in the torch hub cache ({local}) and {offline} forbids downloading it. {fix}."
        )
    local.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(url, str(local), progress=True)
    except OSError as err:  # urllib's URLError / HTTPError, a full disk ...
        message = f"cannot download {url} into {local} ({err}). {fix}, or check the network."
        raise WeightsNotCachedError(message) from err
