"""Notebook 02, Rotary position embeddings: the checks of its "your turn" cells."""

import torch

from ...gptj import rotary
from .grading import _first_failure, _same_tensor, _shape_hint, _verdict


def _rotate_half(x):
    """The half-split rotation of GPT-NeoX / Llama: the usual wrong answer for GPT-J."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def check_rotate_every_two(fn) -> bool:
    """Notebook 02: fn(x (..., d)) -> GPT-J's rotate_every_two(x), same shape and dtype."""
    g = torch.Generator().manual_seed(0)
    cases = [
        (torch.arange(1.0, 9.0),),
        (torch.randn(2, 3, 4, 16, generator=g),),
        (torch.randn(5, 2, generator=g),),
        (torch.randn(3, 4, 8, generator=g, dtype=torch.float64),),
        (torch.randn(6, 4, generator=g).t(),),
    ]

    def diagnose(got, expected, args):
        x = args[0]
        if hint := _shape_hint(got, expected):
            return hint
        if got.dtype != expected.dtype:
            return f"keep the input's dtype ({x.dtype}), yours is {got.dtype}"
        if torch.equal(got, _rotate_half(x)):
            return (
                "that pairs dim i with dim i + d/2: the half-split rotate_half of GPT-NeoX / Llama. GPT-J pairs "
                "adjacent dims: (x0, x1), (x2, x3), ..."
            )
        if torch.equal(got.abs(), expected.abs()):
            return "every number is in the right place but some signs are wrong: which member of each pair is negated?"
        if torch.equal(got.flatten().sort().values, expected.flatten().sort().values):
            return "the right numbers in the wrong order: put each rotated pair back side by side (interleave them)"
        shown = f"x = {x.tolist()}" if x.numel() <= 8 else f"x of shape {tuple(x.shape)}"
        return f"for {shown} your result differs from GPT-J's rotate_every_two"

    hint = _first_failure(fn, cases, rotary.rotate_every_two, _same_tensor, diagnose)
    return _verdict(
        hint is None,
        "Adjacent pairs turned by 90 degrees; with cos and sin this rotates q and k by their "
        "position (GPT-J's way, not Llama's half split).",
        hint,
    )


def check_inv_frequencies(fn) -> bool:
    """Notebook 02: fn(rotary_dim) -> (rotary_dim // 2,) float tensor, theta_i = 10000 ** (-2 i / rotary_dim)."""
    cases = [(16,), (64,), (2,), (8,)]

    def diagnose(got, expected, args):
        d = args[0]
        if isinstance(got, torch.Tensor) and got.shape == (d,):
            return f"one frequency per PAIR of dims: for rotary_dim {d}, {d // 2} of them (torch.arange(0, d, 2))"
        if hint := _shape_hint(got, expected):
            return hint
        if not got.dtype.is_floating_point:
            return f"return floating-point frequencies, yours are {got.dtype}"
        i = torch.arange(0, d, 2).double()
        if torch.allclose(got.double(), 10000 ** (i / d), rtol=1e-4):
            return "the frequencies must fall from 1 towards 0: theta_i = 1 / 10000 ** (2i / d), not 10000 ** (2i / d)"
        if torch.allclose(got.double(), 1 / 10000 ** (i / 2 / d), rtol=1e-4):
            return "the exponent is 2i / d with i the pair's index: with torch.arange(0, d, 2) that is arange / d"
        return f"for rotary_dim {d} your frequencies are {[round(t, 5) for t in got.tolist()]}"

    def same(got, expected):
        return (
            isinstance(got, torch.Tensor)
            and got.shape == expected.shape
            and got.dtype.is_floating_point
            and torch.allclose(got.double(), expected.double(), rtol=1e-5, atol=0)
        )

    hint = _first_failure(fn, cases, rotary.inv_frequencies, same, diagnose)
    return _verdict(
        hint is None,
        "Fast pairs tell neighbours apart, slow pairs still differ hundreds of tokens "
        "apart: like the hands of a clock.",
        hint,
    )


def check_apply_rotary_pos_emb(fn) -> bool:
    """Notebook 02: fn(x (batch, seq, heads, rot), sin, cos (batch, seq, rot // 2)) -> x rotated pair by pair."""
    g = torch.Generator().manual_seed(0)
    position_ids = torch.arange(7)[None]  # (1, 7)
    cases = [
        (torch.randn(1, 7, 3, 16, generator=g), *rotary.fixed_pos_embedding(position_ids, 16)),
        (torch.randn(2, 5, 2, 8, generator=g), *rotary.fixed_pos_embedding(torch.arange(2, 12, 2).expand(2, 5), 8)),
        (torch.randn(1, 1, 1, 2, generator=g), *rotary.fixed_pos_embedding(torch.tensor([[3]]), 2)),
    ]

    def diagnose(got, expected, args):
        x, sin, cos = args
        if hint := _shape_hint(got, expected):
            return hint
        sin_c, cos_c = torch.cat([sin, sin], -1)[:, :, None], torch.cat([cos, cos], -1)[:, :, None]
        if torch.allclose(got, x * cos_c + rotary.rotate_every_two(x) * sin_c, atol=1e-5):
            return (
                "each angle belongs to one adjacent PAIR: repeat it for both dims of the pair "
                "(repeat_interleave(2) on the last dim), not torch.cat([sin, sin]) (Llama's half-split layout)"
            )
        sin_i, cos_i = (t.repeat_interleave(2, -1)[:, :, None] for t in (sin, cos))
        if torch.allclose(got, x * cos_i - rotary.rotate_every_two(x) * sin_i, atol=1e-5):
            return "that turns every pair the wrong way: x * cos + rotate_every_two(x) * sin"
        if torch.allclose(got, x * cos_i + x * sin_i, atol=1e-5):
            return "the sin term multiplies rotate_every_two(x), not x itself"
        return "compare with the formula x' = x * cos + rotate_every_two(x) * sin, one angle per adjacent pair"

    hint = _first_failure(fn, cases, rotary.apply_rotary_pos_emb, lambda g, e: _same_tensor(g, e, 1e-5), diagnose)
    return _verdict(hint is None, "No rotation matrix needed: two multiplications and one shuffle per vector.", hint)
