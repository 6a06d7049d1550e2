"""``from_pretrained``: one entry point for folders, Hub repos, registry names and released checkpoints.

Resolution order for ``name_or_path``:

1. a local folder (ijepa_hub or transformers layout);
2. a local ``.pth.tar`` file or an ``http(s)://`` / ``file://`` URL of one: downloaded into the
   torch hub cache, read with ``weights_only=True`` and converted once into a safetensors folder there;
3. a released variant's registry name (``ijepa_vith14_1k``) or checkpoint file name
   (``IN1K-vit.h.14-300e.pth.tar``): its released checkpoint, or with ``weights="transformers"`` its
   ``facebook/ijepa_*`` mirror (context encoder only);
4. a Hub repo id (``owner/name``), through ``hf_hub_download`` (``revision``, ``cache_dir``, ``token``,
   ``local_files_only`` and ``HF_HUB_OFFLINE`` honoured).

Every failure names the repo, file or URL and the fix: a repo or revision that does not exist keeps
huggingface_hub's exception type with a clearer message; offline with nothing cached is a
:class:`~ijepa_hub.errors.WeightsNotCachedError`; damaged files are :class:`~ijepa_hub.CheckpointError`.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import urllib.parse
from functools import partial
from pathlib import Path
from typing import Any, Callable, Literal

import torch
from huggingface_hub import constants as hf_constants
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import (
    GatedRepoError, LocalEntryNotFoundError, RemoteEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError,
)

from ..version import __version__
from ..errors import HubLayoutError, PickleNotAllowedError, WeightsNotCachedError
from ..reference import load_reference_checkpoint
from ..registry import VARIANTS, ModelConfig, PretrainedVariant
from ..state_dict import load_strict, read_safetensors, read_torch_pickle, strip_prefix
from .convert import is_transformers_config, model_config_from_transformers, transformers_to_timm
from .layout import CONFIG_NAME, PICKLE_SUFFIXES, WEIGHTS_NAME, parse_config
from .model import EncoderChoice, PretrainedIJepa
from .save import save_pretrained

__all__ = ["from_pretrained", "read_config", "cached_reference_folder"]

StateDict = dict[str, torch.Tensor]
_REPO_ID = re.compile(r"^[\w.\-]+/[\w.\-]+$")
_TRANSFORMERS_PICKLE = "pytorch_model.bin"


class _LocalFiles:
    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.source = str(folder)

    def get(self, filename: str) -> str | None:
        path = self.folder / filename
        return str(path) if path.is_file() else None


class _HubFiles:
    def __init__(self, repo_id: str, **download_kwargs: Any) -> None:
        self.repo_id = repo_id
        self.kwargs = download_kwargs
        rev = download_kwargs.get("revision")
        self.source = f"{repo_id}@{rev}" if rev else repo_id

    def get(self, filename: str) -> str | None:
        try:
            return hf_hub_download(
                self.repo_id, filename, library_name="ijepa_hub", library_version=__version__, **self.kwargs
            )
        except RemoteEntryNotFoundError:
            return None  # the repo exists but has no such file: the caller decides what that means
        except GatedRepoError:
            raise  # its own message says how to ask for access
        except (RepositoryNotFoundError, RevisionNotFoundError) as err:
            if isinstance(err, RevisionNotFoundError):
                what = (f"no revision {self.kwargs.get('revision')!r} (branch, tag or commit). Fix: check revision=, "
                        "or leave it out for the default branch.")
            else:
                what = (f"no such repo on {hf_constants.ENDPOINT}, or it is private. Fix: check the repo id "
                        "(owner/name), or pass token= (or run `hf auth login`) if it is private.")
            raise type(err)(f"{self.repo_id}: {what}", response=err.response, server_message=err.server_message) from err
        except LocalEntryNotFoundError as err:
            cache = self.kwargs.get("cache_dir") or hf_constants.HF_HUB_CACHE
            why = _offline_reason(self.kwargs.get("local_files_only", False)) or f"{hf_constants.ENDPOINT} cannot be reached"
            raise WeightsNotCachedError(
                f"{self.source}: {filename} is not in the Hugging Face cache ({cache}) and cannot be downloaded "
                f"({why}). Fix: load "
                "it once online to fill the cache, point cache_dir= / HF_HOME at the cache that holds it, or "
                "unset HF_HUB_OFFLINE / local_files_only."
            ) from err


def _offline_reason(local_files_only: bool) -> str | None:
    """Why downloads are off (``local_files_only=True`` or ``HF_HUB_OFFLINE=1``), or None when they are allowed."""
    if local_files_only:
        return "local_files_only=True"
    return "HF_HUB_OFFLINE=1" if hf_constants.is_offline_mode() else None


def _read_weights(files, filename: str, *, allow_pickle: bool) -> StateDict:
    if filename.endswith(PICKLE_SUFFIXES) and not allow_pickle:
        raise PickleNotAllowedError(
            f"{files.source}: {filename} is a pickle file; unpickling can run code, so it is refused. "
            "Pass allow_pickle=True to read it with torch.load(weights_only=True), or convert it to safetensors."
        )
    path = files.get(filename)
    if path is None:
        raise HubLayoutError(f"{files.source}: {filename} is listed in config.json but missing; re-upload the repo")
    if filename.endswith(".safetensors"):
        return read_safetensors(path, source=files.source)
    return strip_prefix(read_torch_pickle(path, fix="Download it again, or ask the owner for safetensors weights."))


def _read_transformers_weights(files, *, allow_pickle: bool) -> StateDict:
    path = files.get(WEIGHTS_NAME)
    if path is not None:
        return transformers_to_timm(read_safetensors(path, source=files.source), source=files.source)
    if not allow_pickle:
        raise PickleNotAllowedError(
            f"{files.source} has no {WEIGHTS_NAME}; its weights, if any, are in {_TRANSFORMERS_PICKLE} (pickle), "
            "which can run code when loaded. Pass allow_pickle=True to read it with "
            "torch.load(weights_only=True), or ask the owner for safetensors weights."
        )
    weights = _read_weights(files, _TRANSFORMERS_PICKLE, allow_pickle=True)
    return transformers_to_timm(weights, source=files.source)


def _read_json(files, *, what: str) -> dict[str, Any]:
    path = files.get(CONFIG_NAME)
    if path is None:
        raise HubLayoutError(f"{files.source} has no {CONFIG_NAME}: it is not an {what}")
    try:
        with open(path) as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise HubLayoutError(
            f"{files.source}: {CONFIG_NAME} is not valid JSON ({err}); it is truncated or was edited by hand. "
            "Fix: download it again, or re-save the model with ijepa_hub.save_pretrained."
        ) from err
    if not isinstance(data, dict):
        raise HubLayoutError(f"{files.source}: {CONFIG_NAME} holds a {type(data).__name__}, not a JSON object")
    return data


def _assemble(
    config: ModelConfig,
    parts: dict[str, Callable[[], StateDict]],
    *,
    encoder: EncoderChoice,
    with_predictor: bool,
    source: str,
    variant: str | None,
    hint: str = "",
) -> PretrainedIJepa:
    wanted = PretrainedIJepa.parts_for(encoder, with_predictor)
    missing = [p for p in wanted if p not in parts]
    if missing:
        raise HubLayoutError(
            f"{source} holds {sorted(parts)} but not {missing} (asked for encoder={encoder!r}, "
            f"with_predictor={with_predictor}).{hint or ' Ask only for what the repo holds.'}"
        )
    with torch.device("meta"):  # no memory and no init for weights that are about to be replaced
        model = PretrainedIJepa(
            config, encoder=encoder, with_predictor=with_predictor, variant=variant, source=source
        )
    for part in wanted:
        load_strict(getattr(model, part), parts[part](), source=source, what=part.replace("_", " "))
    left = [k for k, v in model.state_dict().items() if v.is_meta]
    if left:  # a tensor the I-JEPA networks own beyond those in the state dicts
        raise HubLayoutError(f"{source}: no weights for {left[:10]}; this ijepa_hub version cannot load the repo")
    return model.eval()


def _load_files(files, *, encoder, with_predictor, allow_pickle, variant=None) -> PretrainedIJepa:
    data = _read_json(files, what="ijepa_hub or transformers I-JEPA repo")
    if is_transformers_config(data):
        config = model_config_from_transformers(data, source=files.source)
        parts = {"context_encoder": partial(_read_transformers_weights, files, allow_pickle=allow_pickle)}
        hint = (
            " A transformers-layout I-JEPA repo holds only the context encoder (converted from the released "
            "'encoder'): pass encoder='context', or load the released checkpoint by its registry name for the "
            "target encoder and predictor."
        )
        return _assemble(config, parts, encoder=encoder, with_predictor=with_predictor, source=files.source,
                         variant=variant, hint=hint)
    if "ijepa" not in data:
        raise HubLayoutError(
            f"{files.source}: config.json is neither ijepa_hub's (no 'ijepa' section) nor transformers' "
            "I-JEPA (model_type 'ijepa'); it is not an I-JEPA repo"
        )
    repo = parse_config(data, source=files.source)
    parts = {part: partial(_read_weights, files, name, allow_pickle=allow_pickle) for part, name in repo.files.items()}
    return _assemble(repo.model, parts, encoder=encoder, with_predictor=with_predictor, source=files.source,
                     variant=variant or repo.variant)


def _is_url(s: str) -> bool:
    return urllib.parse.urlparse(s).scheme in ("http", "https", "file")


def _variant_for_file(name: str) -> PretrainedVariant | None:
    base = os.path.basename(urllib.parse.urlparse(name).path if _is_url(name) else name)
    return next((v for v in VARIANTS.values() if v.filename == base), None)


def cached_reference_folder(path_or_url: str, *, variant: str | None = None, local_files_only: bool = False) -> Path:
    """The safetensors folder of a released ``.pth.tar`` (file or URL), converted once in the torch hub cache.

    URLs are downloaded to ``<torch hub dir>/checkpoints/`` (through a temporary file, so an interrupted
    download leaves nothing behind), unless ``local_files_only`` or ``HF_HUB_OFFLINE=1``; folders live in
    ``<torch hub dir>/ijepa_hub/``, keyed by the URL, or by a local file's path, size and modification time.
    Two processes converting the same file at once both end with the same folder.
    """
    hub_dir = Path(torch.hub.get_dir())
    if _is_url(path_or_url):
        filename = os.path.basename(urllib.parse.urlparse(path_or_url).path)
        local = hub_dir / "checkpoints" / filename
        key = path_or_url
        if not local.is_file():
            _download(path_or_url, local, local_files_only=local_files_only)
    else:
        local = Path(path_or_url).resolve()
        if not local.is_file():
            raise FileNotFoundError(f"no checkpoint at {path_or_url!r}")
        stat = local.stat()
        key = f"{local}:{stat.st_size}:{stat.st_mtime_ns}"
    stem = local.name.split(".pth")[0]
    folder = hub_dir / "ijepa_hub" / f"{stem}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    if (folder / CONFIG_NAME).is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{stem}-", dir=folder.parent))
    try:
        model = load_reference_checkpoint(local)
        save_pretrained(model, tmp, encoder="target", variant=variant)
        try:
            os.replace(tmp, folder)
        except OSError:
            if not (folder / CONFIG_NAME).is_file():  # not a concurrent conversion that won the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _download(url: str, local: Path, *, local_files_only: bool) -> None:
    """Fetch a released checkpoint into the torch hub cache, unless offline; errors say where to put it."""
    fix = f"Fix: download {url} yourself and pass the file's path, or place it at {local}"
    offline = _offline_reason(local_files_only)
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


def from_pretrained(
    name_or_path: str | os.PathLike,
    *,
    encoder: EncoderChoice = "target",
    with_predictor: bool = False,
    weights: Literal["reference", "transformers"] = "reference",
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    token: str | bool | None = None,
    local_files_only: bool = False,
    allow_pickle: bool = False,
    device: str | torch.device | None = None,
) -> PretrainedIJepa:
    """Load a pretrained I-JEPA model (see the module docstring for what ``name_or_path`` may be).

    ``encoder="target"`` (default) loads the EMA encoder the paper evaluates; ``"context"`` the
    context encoder; ``"both"`` both. ``with_predictor=True`` adds the predictor. Loading is strict:
    missing or unexpected keys raise :class:`~ijepa_hub.StateDictMismatchError` listing them; NaN or
    infinite weights are refused. Pickle weights in a repo are refused unless ``allow_pickle=True`` (and
    even then only tensors are unpickled). ``local_files_only=True`` or ``HF_HUB_OFFLINE=1`` use only the
    caches (Hugging Face's, and torch hub's for released checkpoints) and raise
    :class:`~ijepa_hub.WeightsNotCachedError` for what is not there. The model is returned in eval mode.
    """
    s = os.fspath(name_or_path)
    opts = dict(encoder=encoder, with_predictor=with_predictor, allow_pickle=allow_pickle)
    hub = dict(revision=revision, cache_dir=cache_dir, token=token, local_files_only=local_files_only)
    if os.path.isdir(s):
        model = _load_files(_LocalFiles(s), **opts)
    elif os.path.isfile(s) or _is_url(s):
        released = _variant_for_file(s)
        variant = released.name if released else None
        folder = cached_reference_folder(s, variant=variant, local_files_only=local_files_only)
        model = _load_files(_LocalFiles(folder), **opts, variant=variant)
    elif s in VARIANTS or _variant_for_file(s) is not None:
        released = VARIANTS.get(s) or _variant_for_file(s)
        if weights == "reference":
            folder = cached_reference_folder(released.url, variant=released.name, local_files_only=local_files_only)
            model = _load_files(_LocalFiles(folder), **opts, variant=released.name)
        elif weights == "transformers":
            files = _HubFiles(released.hf_transformers_repo, **hub)
            model = _load_files(files, **opts, variant=released.name)
        else:
            raise ValueError(f"weights must be 'reference' or 'transformers', got {weights!r}")
    elif _REPO_ID.match(s):
        model = _load_files(_HubFiles(s, **hub), **opts)
    else:
        raise _not_found(s)
    return model.to(device) if device is not None else model


def read_config(name_or_path: str | os.PathLike, **hub_kwargs: Any) -> dict[str, Any]:
    """The ``config.json`` of a folder or Hub repo, without downloading weights (for ``ijepa-hub info``)."""
    s = os.fspath(name_or_path)
    if os.path.isdir(s):
        return _read_json(_LocalFiles(s), what="I-JEPA repo")
    if _REPO_ID.match(s):
        return _read_json(_HubFiles(s, **hub_kwargs), what="I-JEPA repo")
    raise _not_found(s)


def _not_found(s: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"{s!r} is not a folder, a checkpoint file or URL, a released variant "
        f"({', '.join(VARIANTS)}) or a Hub repo id ('owner/name')"
    )
