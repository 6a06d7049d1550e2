"""Writing repo files: safetensors weights and folders that appear complete or not at all.

Shared by every writer (encoder and classifier repos, exports, deployment files), so that each writes the
same way: :func:`written_atomically` stages a folder and renames it into place.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn as nn
from safetensors.torch import save_file

__all__ = ["README_NAME", "save_weights", "cpu_tensors", "written_atomically"]

README_NAME = "README.md"


def save_weights(module: nn.Module, path: str | os.PathLike) -> None:
    """A module's state dict as a safetensors file (contiguous CPU copies; ``format: pt`` metadata)."""
    save_file(cpu_tensors(module), os.fspath(path), metadata={"format": "pt"})


def cpu_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    """A module's state dict as contiguous CPU tensors (what a safetensors file holds)."""
    return {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}


def _default_modes(folder: Path) -> tuple[int, int]:
    """(file mode, folder mode) that ``open()`` / ``mkdir()`` give in ``folder``: 0o666 / 0o777 less the umask.

    Read from a probe file and folder (no process-wide ``os.umask`` call, so it is safe with threads)."""
    probe = folder / f".mode-probe-{uuid.uuid4().hex}"
    os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    try:
        file_mode = probe.stat().st_mode & 0o777
    finally:
        probe.unlink()
    probe.mkdir(0o777)
    try:
        return file_mode, probe.stat().st_mode & 0o777
    finally:
        probe.rmdir()


@contextmanager
def written_atomically(folder: Path, *, keep: frozenset[str] = frozenset()) -> Iterator[Path]:
    """Yield an empty temporary sibling of ``folder`` to write into; when the block ends without error, it
    becomes ``folder`` by a rename, so ``folder`` is never half-written and an old one is replaced only by a
    complete new one. Entries of an old ``folder`` not named in ``keep`` (the files this writer owns) are
    moved into the new one. Files get the usual mode (0o666 less the umask), not tempfile's 0o600."""
    folder = Path(os.path.realpath(folder))  # a link to a folder: replace the folder it points to
    folder.parent.mkdir(parents=True, exist_ok=True)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder} exists and is not a folder; choose another output folder")
    stage = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        yield stage
        file_mode, dir_mode = _default_modes(stage)
        for path in stage.rglob("*"):
            os.chmod(path, dir_mode if path.is_dir() else file_mode)
        os.chmod(stage, dir_mode)
        if not folder.exists():
            os.rename(stage, folder)
            return
        old = folder.parent / f".{folder.name}.old-{uuid.uuid4().hex[:8]}"
        os.rename(folder, old)
        try:
            os.rename(stage, folder)
        except OSError:
            os.rename(old, folder)
            raise
        for entry in old.iterdir():  # what the caller put there beside our files stays
            if entry.name not in keep and not (folder / entry.name).exists():
                os.replace(entry, folder / entry.name)
        shutil.rmtree(old)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
