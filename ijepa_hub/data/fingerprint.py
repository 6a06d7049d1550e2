"""What identifies a file's content for the caches: its size and a SHA-256 of its first MiB.

Paths, sizes and times do not: a file replaced at the same size with its time kept would read as the old
one. The released-checkpoint cache and the evaluation feature cache both key on this.
"""
from __future__ import annotations

import hashlib
import os

__all__ = ["HEAD_BYTES", "file_fingerprint", "content_key"]

HEAD_BYTES = 1 << 20  # bytes hashed to recognise a file


def file_fingerprint(path: str | os.PathLike) -> dict[str, object]:
    """``{"size": bytes, "head_sha256": SHA-256 of the first MiB}`` of the file at ``path``."""
    with open(path, "rb") as f:
        head = f.read(HEAD_BYTES)
        size = os.fstat(f.fileno()).st_size
    return {"size": size, "head_sha256": hashlib.sha256(head).hexdigest()}


def content_key(path: str | os.PathLike) -> str:
    """:func:`file_fingerprint` as one short string, ``size:sha256``, for cache keys."""
    fp = file_fingerprint(path)
    return f"{fp['size']}:{fp['head_sha256']}"
