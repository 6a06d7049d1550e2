"""The final weights in the Hub layout (``ijepa_hub.save_pretrained``) and the optional upload of that folder."""
from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

from huggingface_hub.errors import HfHubHTTPError, HFValidationError

from ..errors import PushToHubError
from ..hub import save_pretrained
from ..hub.save import push_to_hub as push_folder  # the one push function, under this module's old name
from ..models import IJepa
from ..recipe import Recipe

__all__ = ["export_model", "push_model"]

# What a failed upload raises: the Hub's HTTP errors, OSError (offline mode, files, requests' errors), the
# HTTP client's own base error (httpx's ConnectError is not an OSError) and an invalid repo id.
_PUSH_ERRORS = (
    HfHubHTTPError, OSError, HFValidationError, *(c for c in HfHubHTTPError.__mro__[1:] if c.__name__ == "HTTPError"),
)


def export_model(model: IJepa, out_dir: str | os.PathLike, *, recipe: Recipe, metrics: dict[str, Any]) -> Path:
    """Write ``model`` as a Hub folder: the target encoder as the main weights (what the paper
    evaluates), the context encoder and predictor beside it, and a card with the recipe and metrics."""
    return Path(save_pretrained(model, out_dir, encoder="target", recipe=recipe, metrics=metrics))


def push_model(folder: str | os.PathLike, repo_id: str, *, private: bool = False) -> str:
    """Upload the folder :func:`export_model` wrote to ``repo_id`` in one commit; returns the commit URL.

    The upload is what ``ijepa-hub push FOLDER REPO_ID`` does, so a failed one (network, permissions, an
    invalid repo id) raises :class:`PushToHubError` giving that command; the folder is left as it is.
    """
    try:
        return push_folder(folder, repo_id, private=private)
    except _PUSH_ERRORS as err:
        command = f"ijepa-hub push {shlex.quote(str(folder))} {shlex.quote(repo_id)}"
        raise PushToHubError(
            f"pushing the trained model to the Hub repo {repo_id} failed: {type(err).__name__}: {err}. The model "
            f"is safe in {folder}; once the cause is fixed, push it again with: {command}"
        ) from err
