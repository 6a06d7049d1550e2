"""The released checkpoints' finder and download cache, now :mod:`ijepa_hub.released` (re-exported here).

Released variants are registry data, and :mod:`ijepa_hub.reference` (below the hub) fetches them, so the
module moved down a layer; these names stay importable from here.
"""
from ..released import (  # noqa: F401  (the names this module always had)
    cache_path,
    check_is_checkpoint,
    find_variant,
    is_url,
    offline_reason,
    reference_checkpoint_path,
)

__all__ = ["find_variant", "is_url", "offline_reason", "reference_checkpoint_path", "cache_path", "check_is_checkpoint"]
