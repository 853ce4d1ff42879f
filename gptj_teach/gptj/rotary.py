"""Rotary position embeddings, the way GPT-J does them.

Rotary embeddings (RoPE) tell attention *where* each token is by rotating query and key vectors. Pairs of
dimensions are treated as points in a plane and turned by an angle ``position * frequency``; each pair has its
own frequency. Because a rotation by ``a`` followed by the inverse of a rotation by ``b`` is a rotation by
``a - b``, the dot product ``q_m . k_n`` depends only on the distance ``m - n``: attention sees relative position.

Where GPT-J differs from what you may know:

* the pairs are *adjacent* dimensions ``(x0, x1), (x2, x3), ...`` (``rotate_every_two``), unlike the
  half-split RoPE of GPT-NeoX and Llama, which pairs ``x_i`` with ``x_{i + d/2}``;
* only the first ``rotary_dim`` dimensions of each head are rotated (64 of 256 in GPT-J 6B); the rest pass
  through untouched and carry no position information at all.

References: Su et al., RoFormer (2021); mesh-transformer-jax ``fixed_pos_embedding`` / ``rotate_every_two`` /
``apply_rotary_pos_emb``; ``transformers.models.gptj.modeling_gptj`` (same names).
"""

import torch
from torch import nn


def inv_frequencies(rotary_dim: int, device=None) -> torch.Tensor:
    """The rotation speed of each pair: ``1 / 10000 ** (2i / rotary_dim)``, shape ``(rotary_dim // 2,)``."""
    return 1.0 / (10000 ** (torch.arange(0, rotary_dim, 2, dtype=torch.int64, device=device) / rotary_dim))


def fixed_pos_embedding(position_ids: torch.Tensor, rotary_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The sinusoid table: ``sin`` and ``cos`` of ``position * frequency``, always computed in fp32.

    position_ids: (batch, seq) integers. Returns sin, cos: each (batch, seq, rotary_dim // 2), float32.
    Computing in fp32 and casting later (in ``rotation_table``) is what makes fp16 / bf16 results bit-equal to
    ``transformers``, which builds the same fp32 table once and gathers rows from it.
    """
    inv_freq = inv_frequencies(rotary_dim, position_ids.device)  # (rotary_dim // 2,)
    angles = position_ids.float()[..., None] * inv_freq  # (batch, seq, rotary_dim // 2)
    return torch.sin(angles), torch.cos(angles)


def rotate_every_two(x: torch.Tensor) -> torch.Tensor:
    """Turn each adjacent pair ``(x0, x1)`` into ``(-x1, x0)``: a 90 degree rotation in every plane.

    x: (..., d) with d even. Returns the same shape.
    """
    x1 = x[..., ::2]  # (..., d // 2) the even dims
    x2 = x[..., 1::2]  # (..., d // 2) the odd dims
    return torch.stack((-x2, x1), dim=-1).flatten(-2)  # (..., d // 2, 2) -> (..., d), pairs interleaved again


def apply_rotary_pos_emb(x: torch.Tensor, sin: torch.Tensor, cos: torch.Tensor) -> torch.Tensor:
    """Rotate every adjacent pair of ``x`` by its angle: ``x * cos + rotate_every_two(x) * sin``.

    x: (batch, seq, heads, rot) with rot even; sin, cos: (batch, seq, rot // 2). Each angle is used for both
    members of its pair (``repeat_interleave``), broadcast over the heads.
    """
    return rotate_pairs(x, *angle_per_dim(sin, cos))


def angle_per_dim(sin: torch.Tensor, cos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The table once per dimension instead of once per pair: (batch, seq, rot // 2) -> (batch, seq, 1, rot),
    ``[s0, s0, s1, s1, ...]``, with a heads axis of 1 that broadcasts over every head."""
    sin = torch.repeat_interleave(sin[:, :, None, :], 2, dim=3)  # (batch, seq, 1, rot)
    cos = torch.repeat_interleave(cos[:, :, None, :], 2, dim=3)  # (batch, seq, 1, rot)
    return sin, cos


def rotate_pairs(x: torch.Tensor, sin: torch.Tensor, cos: torch.Tensor) -> torch.Tensor:
    """``x * cos + rotate_every_two(x) * sin`` with the table already per dimension (``angle_per_dim``)."""
    return (x * cos) + (rotate_every_two(x) * sin)


def rotation_table(position_ids: torch.Tensor, rotary_dim: int, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Everything the rotation needs that depends only on the positions, ready to use: sin and cos per
    dimension, (batch, seq, 1, rotary_dim), in ``dtype``. The same for every layer, so the model computes it
    once per forward (``GPTJModel.forward``) and every attention uses it.

    The table is computed in fp32 and rounded to ``dtype`` afterwards, as ``transformers`` does, which is what
    makes fp16 / bf16 results bit-equal to it.
    """
    sin, cos = fixed_pos_embedding(position_ids, rotary_dim)  # (batch, seq, rotary_dim // 2) each, fp32
    return angle_per_dim(sin.to(dtype), cos.to(dtype))


def apply_rotary(x: torch.Tensor, position_ids: torch.Tensor, rotary_dim: int) -> torch.Tensor:
    """GPT-J's rotary: rotate the first ``rotary_dim`` dims of every head, pass the rest through.

    x: (batch, seq, heads, head_dim); position_ids: (batch, seq). Returns (batch, seq, heads, head_dim).
    """
    sin, cos = rotation_table(position_ids, rotary_dim, x.dtype)  # (batch, seq, 1, rotary_dim) each
    return rotate_first_dims(x, sin, cos, rotary_dim)


def rotate_first_dims(x: torch.Tensor, sin: torch.Tensor, cos: torch.Tensor, rotary_dim: int) -> torch.Tensor:
    """``apply_rotary`` with the table already computed: sin, cos (batch, seq, 1, rotary_dim) from
    ``rotation_table``."""
    x_rot, x_pass = x[..., :rotary_dim], x[..., rotary_dim:]  # (.., rotary_dim), (.., head_dim - rotary_dim)
    if sin.dtype != x.dtype:  # under autocast q and k are bf16 while the table follows the fp32 residual stream
        sin, cos = sin.to(x.dtype), cos.to(x.dtype)
    return torch.cat([rotate_pairs(x_rot, sin, cos), x_pass], dim=-1)  # (batch, seq, heads, head_dim)


class Rotary(nn.Module):
    """``apply_rotary`` as a module with no weights. Attention holds one for q and one for k, so that a forward
    hook (``activations.py``) can read or change the rotated queries and keys by name. The table
    (``rotation_table``) is computed once per forward, for every layer, and handed in."""

    def __init__(self, rotary_dim: int):
        super().__init__()
        self.rotary_dim = rotary_dim

    def forward(self, x: torch.Tensor, sin: torch.Tensor, cos: torch.Tensor) -> torch.Tensor:
        """x: (batch, seq, heads, head_dim); sin, cos: (batch, seq, 1, rotary_dim). Returns x's shape."""
        return rotate_first_dims(x, sin, cos, self.rotary_dim)

    def extra_repr(self) -> str:
        return f"rotary_dim={self.rotary_dim}"
