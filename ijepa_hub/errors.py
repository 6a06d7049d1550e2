"""Exceptions that tell the user which file or key is wrong and what to do."""
from __future__ import annotations

from huggingface_hub.errors import LocalEntryNotFoundError

__all__ = [
    "IJepaError",
    "CheckpointError",
    "CheckpointWriteError",
    "StateDictMismatchError",
    "PickleNotAllowedError",
    "HubLayoutError",
    "PoolingMismatchError",
    "WeightsNotCachedError",
    "DataError",
    "ImageReadError",
    "TooManyBrokenImagesError",
    "TrainingDivergedError",
    "PushToHubError",
    "ExportError",
    "MissingExtraError",
    "RunFolderError",
    "RunLockedError",
    "MaskError",
]


class IJepaError(Exception):
    """Base class of ijepa_hub's own errors."""


class CheckpointError(IJepaError, ValueError):
    """A weights file cannot be read or does not describe an I-JEPA model."""


class StateDictMismatchError(CheckpointError):
    """Strict loading found missing, unexpected or wrongly shaped tensors."""

    def __init__(
        self,
        source: str,
        what: str,
        missing: list[str],
        unexpected: list[str],
        mismatched: list[str] | None = None,
    ) -> None:
        self.source, self.what = source, what
        self.missing, self.unexpected, self.mismatched = missing, unexpected, mismatched or []
        lines = [f"{source}: the {what} weights do not match the model architecture."]
        for title, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape or dtype mismatches", self.mismatched),
        ):
            if keys:
                shown = ", ".join(keys[:20]) + (f", ... ({len(keys) - 20} more)" if len(keys) > 20 else "")
                lines.append(f"  {title} ({len(keys)}): {shown}")
        lines.append(
            "  Fix: build the model from the configuration that produced these weights "
            "(or pass the matching model name / img_size / patch_size)."
        )
        super().__init__("\n".join(lines))


class PickleNotAllowedError(CheckpointError):
    """A Hub repo or folder offers only pickle weights (``.bin``, ``.pt``) and the caller did not opt in."""


class HubLayoutError(CheckpointError):
    """A folder or Hub repo is not in the ijepa_hub or transformers I-JEPA layout, or lacks a part."""


class PoolingMismatchError(CheckpointError):
    """A checkpoint or classifier repo has (or lacks) the attentive pooler (``attn_pool.*``) that the run or
    its ``config.json`` asks for: e.g. ``--model.mode attentive`` resuming a linear-mode run."""


class CheckpointWriteError(CheckpointError, OSError):
    """A training checkpoint could not be written (disk full, permissions); the previous one is intact."""


class WeightsNotCachedError(IJepaError, LocalEntryNotFoundError):
    """Offline (``HF_HUB_OFFLINE=1``, ``local_files_only=True``) or unreachable, and the files are not cached."""


class RecipeError(IJepaError, ValueError):
    """A recipe file or override is invalid; the message names the key."""


class DataError(IJepaError, ValueError):
    """Training or feature-extraction data cannot be used as given."""


class ImageReadError(IJepaError, OSError):
    """An image file cannot be decoded (damaged, truncated, not an image, over the decompression-bomb limit).

    ``path`` names the file (or ``shard.tar:member``).
    """

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class TooManyBrokenImagesError(DataError):
    """More training images were unreadable than ``data.max_broken_fraction`` allows."""


class TrainingDivergedError(IJepaError, FloatingPointError):
    """The loss or the weights became NaN or infinite; the run stopped and kept its last good checkpoint."""


class PushToHubError(IJepaError):
    """Uploading a trained model failed; it is still on disk, and the message gives the command to push it again."""


class ExportError(IJepaError, ValueError):
    """A deployment export (ONNX, torch.export) failed or its outputs differ from the eager model's."""


class MissingExtraError(IJepaError, ImportError):
    """An optional dependency is not installed; the message gives the ``pip install`` line of its extra."""


class RunFolderError(CheckpointError):
    """A run folder cannot be used as asked: it holds another run's output, or ``--resume`` names another folder.

    A :class:`CheckpointError`, as the refusal of a folder holding a checkpoint was before it had its own class."""


class RunLockedError(RunFolderError):
    """Another live process is writing to the run folder; ``pid`` names it."""

    def __init__(self, message: str, *, pid: int | None = None) -> None:
        super().__init__(message)
        self.pid = pid


class MaskError(IJepaError, ValueError):
    """The mask settings cannot produce masks for this patch grid; the message names the settings."""
