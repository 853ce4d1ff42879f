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

Two functions do the work, under GPT-J's own names: ``fixed_pos_embedding`` builds the table of angles for the
positions (sin and cos), ``apply_rotary_pos_emb`` turns a head's vectors by them. ``inv_frequencies`` and
``rotate_every_two`` are the pieces they are made of; ``Rotary`` is the module attention holds.

References: Su et al., RoFormer (2021); mesh-transformer-jax ``fixed_pos_embedding`` / ``rotate_every_two`` /
``apply_rotary_pos_emb``; ``transformers.models.gptj.modeling_gptj`` (the same ``rotate_every_two`` and
``apply_rotary_pos_emb``; its table is ``create_sinusoidal_positions``, gathered by ``GPTJRotaryEmbedding``).
"""

import torch
from torch import nn


def inv_frequencies(rotary_dim: int, device=None) -> torch.Tensor:
    """The rotation speed of each pair: ``1 / 10000 ** (2i / rotary_dim)``, shape ``(rotary_dim // 2,)``."""
    return 1.0 / (10000 ** (torch.arange(0, rotary_dim, 2, dtype=torch.int64, device=device) / rotary_dim))


def fixed_pos_embedding(position_ids: torch.Tensor, rotary_dim: int, dtype=torch.float32):
    """The table for these positions: ``sin`` and ``cos`` of ``position * frequency``, one angle per pair.

    position_ids: (batch, seq) integers. Returns sin, cos: each (batch, seq, rotary_dim // 2), in ``dtype``.
    The angles depend only on the positions, not on the layer, so the model builds this table once per forward
    (``GPTJModel.forward``) and hands it to every attention. It is always computed in fp32 and rounded to
    ``dtype`` afterwards, as ``transformers`` does (its ``GPTJRotaryEmbedding``: an fp32 table, rows gathered,
    cast to the model's dtype): that is what makes fp16 / bf16 results bit-equal to it.
    """
    inv_freq = inv_frequencies(rotary_dim, position_ids.device)  # (rotary_dim // 2,)
    angles = position_ids.float()[..., None] * inv_freq  # (batch, seq, rotary_dim // 2), fp32
    return torch.sin(angles).to(dtype), torch.cos(angles).to(dtype)


def rotate_every_two(x: torch.Tensor) -> torch.Tensor:
    """Turn each adjacent pair ``(x0, x1)`` into ``(-x1, x0)``: a 90 degree rotation in every plane.

    x: (..., d) with d even. Returns the same shape.
    """
    x1 = x[..., ::2]  # (..., d // 2) the even dims
    x2 = x[..., 1::2]  # (..., d // 2) the odd dims
    return torch.stack((-x2, x1), dim=-1).flatten(-2)  # (..., d // 2, 2) -> (..., d), pairs interleaved again


def apply_rotary_pos_emb(x: torch.Tensor, sin: torch.Tensor, cos: torch.Tensor) -> torch.Tensor:
    """GPT-J's rotary: turn every adjacent pair of the first ``rotary_dim`` dims of each head by its angle,
    ``x * cos + rotate_every_two(x) * sin``, and pass the other dims through untouched.

    x: (batch, seq, heads, head_dim); sin, cos: (batch, seq, rotary_dim // 2) from ``fixed_pos_embedding``, whose
    width says how many dims turn. Returns x's shape and dtype. Each angle is used for both members of its pair
    (``repeat_interleave``) and broadcast over the heads. With ``head_dim == rotary_dim`` this is exactly
    ``transformers``' ``apply_rotary_pos_emb``, which its attention calls on the first ``rotary_dim`` dims only.
    """
    rot = 2 * sin.shape[-1]  # rotary_dim
    x_rot, x_pass = x[..., :rot], x[..., rot:]  # (..., rotary_dim), (..., head_dim - rotary_dim)
    sin = torch.repeat_interleave(sin[:, :, None, :], 2, dim=3).to(x.dtype)  # (batch, seq, 1, rotary_dim):
    cos = torch.repeat_interleave(cos[:, :, None, :], 2, dim=3).to(x.dtype)  # [s0, s0, s1, s1, ...]; the .to
    # matters only under autocast, where q and k are bf16 while the table follows the fp32 residual stream
    return torch.cat([x_rot * cos + rotate_every_two(x_rot) * sin, x_pass], dim=-1)  # (batch, seq, heads, head_dim)


class Rotary(nn.Module):
    """``apply_rotary_pos_emb`` as a module with no weights. Attention holds one for q and one for k, so that a
    forward hook (``interpret/activations.py``) can read or change the rotated queries and keys by name. The
    table (``fixed_pos_embedding``) is built once per forward, for every layer, and handed in."""

    def __init__(self, rotary_dim: int):
        super().__init__()
        self.rotary_dim = rotary_dim  # shown when the model prints; the table handed in turns this many dims

    def forward(self, x: torch.Tensor, sin: torch.Tensor, cos: torch.Tensor) -> torch.Tensor:
        """x: (batch, seq, heads, head_dim); sin, cos: (batch, seq, rotary_dim // 2). Returns x's shape."""
        return apply_rotary_pos_emb(x, sin, cos)

    def extra_repr(self) -> str:
        return f"rotary_dim={self.rotary_dim}"
