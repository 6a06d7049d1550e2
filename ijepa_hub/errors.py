"""Exceptions that tell the user which file or key is wrong and what to do."""
from __future__ import annotations

__all__ = ["IJepaError", "CheckpointError", "StateDictMismatchError", "PickleNotAllowedError", "HubLayoutError"]


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
            ("shape mismatches", self.mismatched),
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
