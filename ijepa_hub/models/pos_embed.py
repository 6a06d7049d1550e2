"""Fixed 2-D sin-cos position tables (MAE layout) and their resizing to other grids."""
from __future__ import annotations

import torch
from timm.layers import resample_abs_pos_embed

__all__ = ["sincos_1d", "sincos_2d", "resize_pos_embed"]


def sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """[len(positions), dim] table: ``[sin | cos]`` of ``pos * omega_i``, ``omega_i = 1e4^(-i/(dim/2))``."""
    if dim % 2:
        raise ValueError(f"sin-cos table needs an even dim, got {dim}")
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))
    angles = positions.to(torch.float64)[:, None] * omega[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def sincos_2d(dim: int, grid_size: int | tuple[int, int]) -> torch.Tensor:
    """[1, H*W, dim] table for a row-major patch grid.

    As in MAE and the I-JEPA release: the first ``dim/2`` channels encode the column (x) index, the last
    ``dim/2`` the row (y) index. Computed in float64 and returned as float32.
    """
    if dim % 4:
        raise ValueError(f"2-D sin-cos table needs dim divisible by 4, got {dim}")
    h, w = (grid_size, grid_size) if isinstance(grid_size, int) else grid_size
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    table = torch.cat([sincos_1d(dim // 2, cols.flatten()), sincos_1d(dim // 2, rows.flatten())], dim=1)
    return table.float().unsqueeze(0)


def resize_pos_embed(pos_embed: torch.Tensor, old_grid: tuple[int, int], new_grid: tuple[int, int]) -> torch.Tensor:
    """Resample a [1, H*W, D] table (no class token) to another grid.

    Bicubic, ``align_corners=False``, no antialiasing: the convention of ``transformers.IJepaModel``
    (``interpolate_pos_encoding=True``), so features agree with it at any size. timm's
    ``dynamic_img_size`` antialiases, which differs when shrinking the grid.
    """
    if tuple(old_grid) == tuple(new_grid):
        return pos_embed
    return resample_abs_pos_embed(
        pos_embed, new_size=list(new_grid), old_size=list(old_grid), num_prefix_tokens=0, antialias=False
    )
