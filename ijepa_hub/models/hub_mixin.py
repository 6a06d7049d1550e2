"""``HubMixin``: the ``save_pretrained`` / ``push_to_hub`` methods of the models, written by the hub layer.

The models (layer 1) must not import :mod:`ijepa_hub.hub` (layer 4), which imports them. As
``huggingface_hub.ModelHubMixin`` gives a class its save and push methods and leaves the writing to a hook,
this mixin gives the methods and leaves the writing to the :class:`RepoWriter` that :mod:`ijepa_hub.hub.save`
registers when it is imported, which ``import ijepa_hub`` always does. The class attribute ``repo_kind``
(``"encoder"``, ``"classifier"``) tells the writer which kind of repo the model is saved as.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Protocol

__all__ = ["HubMixin", "RepoWriter", "register_repo_writer", "repo_writer"]


class RepoWriter(Protocol):
    """Writes a model as a repo folder of its ``repo_kind`` and uploads it (implemented by the hub layer)."""

    def save(self, model: Any, save_directory: str | os.PathLike, **kwargs: Any) -> Path: ...

    def push(self, model: Any, repo_id: str, **kwargs: Any) -> str: ...


_writer: RepoWriter | None = None


def register_repo_writer(writer: RepoWriter) -> None:
    """Install the writer behind every model's ``save_pretrained`` / ``push_to_hub`` (the hub layer calls it)."""
    global _writer
    _writer = writer


def repo_writer() -> RepoWriter:
    """The registered writer; raises ``RuntimeError`` when the hub layer has not been imported yet."""
    if _writer is None:
        raise RuntimeError(
            "no repo writer is registered, so save_pretrained / push_to_hub cannot run; the hub layer registers "
            "it when imported. Fix: import ijepa_hub (or ijepa_hub.hub) before saving."
        )
    return _writer


class HubMixin:
    """``save_pretrained`` and ``push_to_hub`` for a model class; ``repo_kind`` names the kind of repo written."""

    repo_kind: ClassVar[str]

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> Path:
        """Write this model as a repo folder of its kind; returns the folder (see :func:`ijepa_hub.save_pretrained`)."""
        return repo_writer().save(self, save_directory, **kwargs)

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> str:
        """Upload this model to the Hub in one commit; returns the commit URL (see :func:`ijepa_hub.push_to_hub`)."""
        return repo_writer().push(self, repo_id, **kwargs)
