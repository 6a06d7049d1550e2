"""``from_pretrained``: one entry point for folders, Hub repos, registry names and released checkpoints.

Resolution order for ``name_or_path``:

1. a local folder (ijepa_hub or transformers layout), or a run folder of ``ijepa-train`` / ``ijepa-finetune``
   (its exported ``model/``);
2. a local ``.pth.tar`` file or an ``http(s)://`` / ``file://`` URL of one: downloaded into the
   torch hub cache, read with ``weights_only=True`` and converted in memory;
3. a released variant's registry name (``ijepa_vith14_1k``), alias (``ijepa_vith14``) or checkpoint file
   name (``IN1K-vit.h.14-300e.pth.tar``): its released checkpoint, or with ``weights="transformers"`` its
   ``facebook/ijepa_*`` mirror (context encoder only);
4. a path that does not exist (``./x``, ``../x``, ``/x``, ``~/x``, ``a/b/c``, a weight-file suffix, or
   ``runs/x`` where ``runs`` is a local folder): ``FileNotFoundError`` at once, without any network;
5. a Hub repo id (``owner/name``), through ``hf_hub_download`` (``revision``, ``cache_dir``, ``token``,
   ``local_files_only`` and ``HF_HUB_OFFLINE`` honoured).

Every failure names the repo, file or URL and the fix: a repo or revision that does not exist keeps
huggingface_hub's exception type with a clearer message; offline with nothing cached is a
:class:`~ijepa_hub.errors.WeightsNotCachedError`; damaged files are :class:`~ijepa_hub.CheckpointError`.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable
from functools import partial
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Literal

import torch
from huggingface_hub import constants as hf_constants
from huggingface_hub import hf_hub_download, try_to_load_from_cache
from huggingface_hub.errors import (
    GatedRepoError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from ..errors import HubLayoutError, PickleNotAllowedError, WeightsNotCachedError
from ..limits import check_declared_size
from ..reference import infer_model_config, read_reference_checkpoint, refuse_exported
from ..registry import ALIASES, VARIANTS, ModelConfig
from ..released import find_variant, is_url, offline_reason, reference_checkpoint_path
from ..state_dict import load_strict, read_safetensors, read_torch_pickle, strip_prefix
from ..version import __version__
from .classifier import load_classifier
from .convert import is_transformers_config, model_config_from_transformers, transformers_to_timm
from .layout import (
    CLASSIFIER_KIND,
    CONFIG_NAME,
    PICKLE_SUFFIXES,
    WEIGHTS_NAME,
    EncoderName,
    parse_config,
    read_config_json,
    renamed_options,
    repo_kind,
)
from .model import PretrainedIJepa, PretrainedModel
from .network import check_reachable

RUN_MODEL_FOLDER = "model"  # where a run folder holds its exported model (runs/<name>/model)

__all__ = ["from_pretrained", "read_config", "PretrainedModel"]

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
    def __init__(self, repo_id: str, *, maybe_local: bool = False, **download_kwargs: Any) -> None:
        self.repo_id = repo_id
        self.kwargs = download_kwargs
        rev = download_kwargs.get("revision")
        self.source = f"{repo_id}@{rev}" if rev else repo_id
        # a name given by a user that could also have been a local path: errors say that it is not one
        self.not_local = f"; no local folder {repo_id!r} either" if maybe_local else ""
        self.reached = False  # one quick check per repo: huggingface_hub would retry an unreachable Hub for ~25 s

    def _check_reachable(self, filename: str) -> None:
        """Before downloading an uncached file: one quick request, so an unreachable Hub fails at once."""
        if self.reached or self.kwargs.get("local_files_only") or hf_constants.is_offline_mode():
            return
        rev, cache = self.kwargs.get("revision"), self.kwargs.get("cache_dir")
        if isinstance(try_to_load_from_cache(self.repo_id, filename, cache_dir=cache, revision=rev), str):
            return  # cached: huggingface_hub falls back to it without retrying
        check_reachable(self.repo_id, filename, revision=rev, token=self.kwargs.get("token"),
                        what=f"{self.source}{self.not_local.replace(';', ',')}")
        self.reached = True

    def get(self, filename: str) -> str | None:
        try:
            self._check_reachable(filename)
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
                what = (f"no such repo on {hf_constants.ENDPOINT}, or it is private{self.not_local}. Fix: check the "
                        f"repo id (owner/name){' or the local path' if self.not_local else ''}, or pass token= (or "
                        "run `hf auth login`) if it is private.")
            raise type(err)(f"{self.repo_id}: {what}", response=err.response, server_message=err.server_message) from err
        except LocalEntryNotFoundError as err:
            cache = self.kwargs.get("cache_dir") or hf_constants.HF_HUB_CACHE
            offline = offline_reason(self.kwargs.get("local_files_only", False))
            why = offline or f"{hf_constants.ENDPOINT} cannot be reached"
            unset = f", or drop {offline}" if offline else ""
            raise WeightsNotCachedError(
                f"{self.source}: {filename} is not in the Hugging Face cache ({cache}) and cannot be downloaded "
                f"({why}){self.not_local}. Fix: load it once online to fill the cache, or point cache_dir= / "
                f"HF_HOME at the cache that holds it{unset}."
            ) from err


def _inside(files, filename: str) -> None:
    """Refuse a file name in ``ijepa.files`` that leaves the folder or repo (absolute, ``..``, a drive)."""
    pure = PurePosixPath(filename.replace("\\", "/"))
    if not filename or pure.is_absolute() or ".." in pure.parts or PureWindowsPath(filename).drive:
        raise HubLayoutError(
            f"{files.source}: config.json 'ijepa.files' names {filename!r}, a path that leaves the folder; a repo's "
            "weights are files inside it. Fix: name the file relative to the folder, without '..'."
        )


def _is_safetensors(path: str) -> bool:
    """By content: a safetensors file starts with the 8-byte length of a JSON header that opens with '{'."""
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and 2 <= int.from_bytes(head[:8], "little") <= os.path.getsize(path) and head[8:9] == b"{"


def _pickle_refused(files, filename: str, why: str) -> PickleNotAllowedError:
    return PickleNotAllowedError(
        f"{files.source}: {filename} {why}; unpickling can run code, so it is refused. Pass allow_pickle=True to "
        "read it with torch.load(weights_only=True), or convert it to safetensors."
    )


def _read_weights(files, filename: str, *, allow_pickle: bool) -> StateDict:
    """A part's weights: safetensors decided by the file's content, anything else only with ``allow_pickle``."""
    _inside(files, filename)
    if filename.lower().endswith(PICKLE_SUFFIXES) and not allow_pickle:
        raise _pickle_refused(files, filename, "is a pickle file")  # refused before downloading it
    path = files.get(filename)
    if path is None:
        raise HubLayoutError(f"{files.source}: {filename} is listed in config.json but missing; re-upload the repo")
    if _is_safetensors(path):
        return read_safetensors(path, source=files.source)
    if filename.lower().endswith(".safetensors"):
        return read_safetensors(path, source=files.source)  # damaged: its error says so
    if not allow_pickle:
        raise _pickle_refused(files, filename, "is not a safetensors file (by its content), so it may be a pickle")
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
    return read_config_json(path, source=files.source)


def _assemble(
    config: ModelConfig,
    parts: dict[str, Callable[[], StateDict]],
    *,
    options: dict[str, Any],
    source: str,
    variant: str | None,
    hint: str = "",
) -> PretrainedIJepa:
    """A :class:`PretrainedIJepa` with the parts ``options`` ask for, each read by its ``parts`` callable."""
    wanted = PretrainedIJepa.parts_for(**options)
    missing = [p for p in wanted if p not in parts]
    if missing:
        asked = ", ".join(f"{k}={v!r}" for k, v in options.items())
        raise HubLayoutError(
            f"{source} holds {sorted(parts)} but not {missing} (asked for {asked})."
            f"{hint or ' Ask only for what the repo holds.'}"
        )
    check_declared_size(config, source=source)  # before building even on the meta device
    with torch.device("meta"):  # no memory and no init for weights that are about to be replaced
        model = PretrainedIJepa(config, **options, variant=variant, source=source)
    for part in wanted:
        load_strict(getattr(model, part), parts[part](), source=source, what=part.replace("_", " "))
    left = [k for k, v in model.state_dict().items() if v.is_meta]
    if left:  # a tensor the I-JEPA networks own beyond those in the state dicts
        raise HubLayoutError(f"{source}: no weights for {left[:10]}; this ijepa_hub version cannot load the repo")
    return model.eval()


def _load_files(files, *, options, allow_pickle, variant=None) -> PretrainedModel:
    data = _read_json(files, what="ijepa_hub or transformers I-JEPA repo")
    if is_transformers_config(data):
        config = model_config_from_transformers(data, source=files.source)
        parts = {"context_encoder": partial(_read_transformers_weights, files, allow_pickle=allow_pickle)}
        hint = (
            " A transformers-layout I-JEPA repo holds only the context encoder (converted from the released "
            "'encoder'): pass encoder='context', or load the released checkpoint by its registry name for the "
            "target encoder and predictor."
        )
        return _assemble(config, parts, options=options, source=files.source, variant=variant, hint=hint)
    if "ijepa" not in data:
        raise HubLayoutError(
            f"{files.source}: config.json is neither ijepa_hub's (no 'ijepa' section) nor transformers' "
            "I-JEPA (model_type 'ijepa'); it is not an I-JEPA repo"
        )
    try:
        kind = repo_kind(data)
    except HubLayoutError as err:
        raise HubLayoutError(f"{files.source}: {err}") from None
    if kind == CLASSIFIER_KIND:  # a fine-tuned classifier (ijepa-finetune): see hub/classifier.py
        return load_classifier(files, data, options=options, allow_pickle=allow_pickle)
    repo = parse_config(data, source=files.source)
    parts = {part: partial(_read_weights, files, name, allow_pickle=allow_pickle) for part, name in repo.files.items()}
    return _assemble(repo.model, parts, options=options, source=files.source, variant=variant or repo.variant)


def _load_released(name_or_path: str, *, options, local_files_only: bool, heads: dict[str, Any]) -> PretrainedIJepa:
    """A released ``.pth.tar`` (file, URL, name), converted in memory: only the parts asked for are loaded."""
    path, released = reference_checkpoint_path(name_or_path, local_files_only=local_files_only)
    source = os.fspath(path)
    checkpoint = read_reference_checkpoint(source)
    config = infer_model_config(checkpoint["encoder"], checkpoint["predictor"], source=source, **heads)
    names = {"context_encoder": "encoder", "target_encoder": "target_encoder", "predictor": "predictor"}
    parts = {part: partial(checkpoint.get, key) for part, key in names.items()}
    return _assemble(config, parts, options=options, source=source, variant=released.name if released else None)


# a string that can only be meant as a local path (it is not a repo id, a variant name or a URL)
_WEIGHT_SUFFIXES = (".safetensors", ".json", *PICKLE_SUFFIXES)


def _path_like(s: str) -> str | None:
    """Why ``s`` (not an existing file or folder) can only be a local path, or None if it may be a Hub repo id."""
    if s.startswith(("./", "../", "/", "~", ".\\")) or os.path.isabs(s):
        return "it is a relative or absolute path"
    if s.endswith(_WEIGHT_SUFFIXES):
        return "it ends with a weight-file suffix"
    first, sep, _ = s.partition("/")
    if sep and os.path.isdir(first):
        return f"its first component {first!r} is a local folder"
    if not _REPO_ID.match(s) and ("/" in s or os.sep in s):
        return "it is a path (a Hub repo id is owner/name)"
    return None


def _local_or_hub(s: str, hub: dict[str, Any]):
    """The files of a local folder or of a Hub repo; a path-like ``s`` that does not exist fails at once."""
    if os.path.isdir(s):
        run_model = os.path.join(s, RUN_MODEL_FOLDER)
        if not os.path.exists(os.path.join(s, CONFIG_NAME)) and os.path.isfile(os.path.join(run_model, CONFIG_NAME)):
            return _LocalFiles(run_model)  # a run folder: its exported model
        return _LocalFiles(s)
    why = _path_like(s)
    if why:
        where = os.path.abspath(os.path.expanduser(s))
        raise FileNotFoundError(
            f"no local folder {s!r} ({where}) and, since {why}, it is not tried as a Hub repo id. "
            "Fix: check the path (a Hub repo id is owner/name)."
        )
    if _REPO_ID.match(s):
        return _HubFiles(s, maybe_local=True, **hub)
    raise _not_found(s)


def from_pretrained(
    name_or_path: str | os.PathLike,
    *,
    encoder: EncoderName = "target",
    with_context_encoder: bool = False,
    with_predictor: bool = False,
    weights: Literal["reference", "transformers"] = "reference",
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    token: str | bool | None = None,
    local_files_only: bool = False,
    allow_pickle: bool = False,
    num_heads: int | None = None,
    pred_num_heads: int | None = None,
    device: str | torch.device | None = None,
) -> PretrainedModel:
    """Load a pretrained I-JEPA model (see the module docstring for what ``name_or_path`` may be).

    Returns a :data:`PretrainedModel`: a :class:`PretrainedIJepa` for an encoder repo, released checkpoint or
    transformers-layout repo, a :class:`~ijepa_hub.models.Classifier` for a classifier repo (``config.json``'s
    ``ijepa.kind``); narrow it with ``isinstance`` where the kind is not known in advance.

    ``encoder`` is the feature encoder, the one ``model.encoder`` and ``extract_features`` use:
    ``"target"`` (default, the EMA encoder the paper evaluates) or ``"context"``.
    ``with_context_encoder=True`` also loads the context encoder beside the target encoder;
    ``with_predictor=True`` the predictor (``encoder="both"`` is the deprecated spelling of
    ``encoder="target", with_context_encoder=True``). Loading is strict:
    missing or unexpected keys raise :class:`~ijepa_hub.StateDictMismatchError` listing them; NaN or
    infinite weights are refused. Pickle weights in a repo are refused unless ``allow_pickle=True`` (and
    even then only tensors are unpickled). ``local_files_only=True`` or ``HF_HUB_OFFLINE=1`` use only the
    caches (Hugging Face's, and torch hub's for released checkpoints) and raise
    :class:`~ijepa_hub.WeightsNotCachedError` for what is not there. ``num_heads`` / ``pred_num_heads``
    are read only for released-layout ``.pth.tar`` files whose width matches no preset (head counts are
    not in the weights). The model is returned in eval mode.
    """
    s = os.fspath(name_or_path)
    options = renamed_options(
        dict(encoder=encoder, with_context_encoder=with_context_encoder, with_predictor=with_predictor), {},
        where="from_pretrained",
    )
    hub = dict(revision=revision, cache_dir=cache_dir, token=token, local_files_only=local_files_only)
    refuse_exported(s)
    released = None if os.path.exists(s) else find_variant(s)
    if weights not in ("reference", "transformers"):
        raise ValueError(f"weights must be 'reference' or 'transformers', got {weights!r}")
    if os.path.isfile(s) or is_url(s) or (released and weights == "reference"):
        heads = dict(num_heads=num_heads, pred_num_heads=pred_num_heads)
        model = _load_released(s, options=options, local_files_only=local_files_only, heads=heads)
    elif released:
        files = _HubFiles(released.hf_transformers_repo, **hub)
        model = _load_files(files, options=options, allow_pickle=allow_pickle, variant=released.name)
    else:
        model = _load_files(_local_or_hub(s, hub), options=options, allow_pickle=allow_pickle)
    return model.to(device) if device is not None else model


def read_config(name_or_path: str | os.PathLike, **hub_kwargs: Any) -> dict[str, Any]:
    """The ``config.json`` of a folder or Hub repo, without downloading weights (for ``ijepa-hub info``)."""
    return _read_json(_local_or_hub(os.fspath(name_or_path), hub_kwargs), what="I-JEPA repo")


def _not_found(s: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"{s!r} is not a folder, a checkpoint file or URL, a released variant "
        f"({', '.join(VARIANTS)}; aliases {', '.join(ALIASES)}) or a Hub repo id ('owner/name')"
    )
