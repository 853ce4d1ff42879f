"""Notebook 03, Attention: the checks of its "your turn" cells."""

import math

import torch

from ...gptj.attention import plain_attention
from ...gptj.model import make_mask
from .grading import _first_failure, _same_tensor, _shape_hint, _verdict


def _reference_causal_mask(q_len: int, kv_len: int) -> torch.Tensor:
    slots = torch.arange(kv_len - q_len, kv_len)  # (q_len,) the queries are the last q_len tokens
    return make_mask(None, slots, kv_len, torch.float32)[0, 0] == 0  # (q_len, kv_len), True = may attend


def check_causal_mask(fn) -> bool:
    """Notebook 03: fn(q_len, kv_len) -> bool (q_len, kv_len), True where a query may attend (queries = the LAST
    q_len of the kv_len positions, as with a KV cache)."""
    cases = [(4, 4), (1, 1), (1, 6), (3, 7), (2, 3), (5, 5)]

    def diagnose(got, expected, args):
        q_len, kv_len = args
        if hint := _shape_hint(got, expected):
            return hint
        if got.dtype != torch.bool:
            same = torch.equal(got.detach() == 0, ~expected) or torch.equal(got.detach() != 0, expected)
            return "return a bool tensor (True = may attend)" + (
                ": your pattern is right, convert it"
                if same
                else f", yours is {got.dtype}; an additive 0 / -inf mask is the next step, not this one"
            )
        if torch.equal(got, torch.ones(q_len, kv_len, dtype=torch.bool).tril()):
            return (
                f"for q_len={q_len}, kv_len={kv_len} your queries start at position 0; with a KV cache they are "
                "the LAST q_len positions: query i sits at position kv_len - q_len + i (torch.tril's diagonal=)"
            )
        if (got & ~expected).any():
            return (
                f"for q_len={q_len}, kv_len={kv_len} some queries may look at later keys: True only for keys at "
                "or before the query's own position"
            )
        return f"for q_len={q_len}, kv_len={kv_len} some queries cannot see earlier keys or themselves"

    hint = _first_failure(fn, cases, _reference_causal_mask, _same_tensor, diagnose)
    return _verdict(
        hint is None, "With a KV cache only the new queries run, and each still sees every earlier key.", hint
    )


def _qk_cases():
    """Queries and keys: fp32, fp16 large enough that an fp16 matmul overflows, and more keys than queries."""
    g = torch.Generator().manual_seed(0)
    return [
        (torch.randn(1, 3, 5, 64, generator=g), torch.randn(1, 3, 5, 64, generator=g)),
        ((150 * torch.randn(2, 2, 4, 16, generator=g)).half(), (150 * torch.randn(2, 2, 6, 16, generator=g)).half()),
        (torch.randn(1, 1, 1, 8, generator=g).bfloat16(), torch.randn(1, 1, 3, 8, generator=g).bfloat16()),
    ]


def _reference_scores(q, k):
    return torch.matmul(q.float(), k.float().transpose(-1, -2)) / math.sqrt(q.shape[-1])


def check_attention_scores(fn) -> bool:
    """Notebook 03: fn(q, k) (batch, heads, q_len / kv_len, head_dim) -> fp32 scores q k^T / sqrt(head_dim)."""

    def diagnose(got, expected, args):
        q, k = args
        if hint := _shape_hint(got, expected):
            return hint + " (every query against every key: q @ k.transpose(-1, -2))"
        if got.dtype != torch.float32:
            return (
                f"for {q.dtype} inputs your scores are {got.dtype}: compute them in fp32 (q.float(), k.float()), "
                "as GPT-J does, so that long dot products neither overflow nor lose digits"
            )
        if not torch.isfinite(got).all():
            return (
                "some of your scores are inf: the fp16 matmul overflowed (fp16 stops at 65504); upcast q and k "
                "to fp32 BEFORE the matmul, not after it"
            )
        unscaled = torch.matmul(q.float(), k.float().transpose(-1, -2))
        if torch.allclose(got, unscaled, rtol=1e-4):
            return "divide the dot products by sqrt(head_dim)"
        if torch.allclose(got, unscaled / q.shape[-1], rtol=1e-4):
            return "divide by the SQUARE ROOT of head_dim, not by head_dim itself"
        if torch.allclose(got, expected, rtol=1e-2):
            return f"close, but for {q.dtype} inputs not exact: upcast q and k to fp32 before the matmul"
        return "compare with q.float() @ k.float().transpose(-1, -2) / sqrt(head_dim)"

    hint = _first_failure(fn, _qk_cases(), _reference_scores, lambda g, e: _same_tensor(g, e, 1e-4), diagnose)
    return _verdict(hint is None, "fp32 scores and the sqrt(d) scale keep the softmax out of saturation.", hint)


ATOL = 1e-3  # softmax_attention's bound, for the grade and the hints alike (an fp16 softmax is about 1e-3 off)


def check_softmax_attention(fn) -> bool:
    """Notebook 03: fn(q, k, v, mask) -> (output (batch, heads, q_len, head_dim), weights in q's dtype), as
    gt.gptj.attention.plain_attention."""
    g = torch.Generator().manual_seed(1)
    cases = []
    for (q, k), padding in zip(_qk_cases(), [None, torch.tensor([[0, 1, 1, 1, 1, 1], [1] * 6]), None]):
        v = torch.randn(k.shape, generator=g).to(k.dtype)
        cases.append(
            (
                q / 8,
                k / 8,
                v,
                make_mask(padding, torch.arange(k.shape[2] - q.shape[2], k.shape[2]), k.shape[2], torch.float32),
            )
        )

    def diagnose(got, expected, args):
        q, k, v, mask = args
        if not (isinstance(got, tuple) and len(got) == 2):
            return "return two things: (output, weights)"
        (out, weights), (right_out, right_weights) = got, expected
        if hint := _shape_hint(weights, right_weights):
            return "weights: " + hint
        if hint := _shape_hint(out, right_out):
            return "output: " + hint
        w = weights.detach().float()
        if not torch.allclose(w.sum(-1), torch.ones(()), atol=1e-2):
            return "each row of the weights must sum to 1: softmax over the keys (dim=-1)"
        if (w * (mask < 0)).amax() > 1e-3:
            return "some weights fall on masked keys: add the mask to the scores before the softmax"
        if weights.dtype != q.dtype:
            return f"for {q.dtype} inputs cast the fp32 weights back to {q.dtype} (.to(q.dtype)) before weights @ v"
        if not torch.allclose(w, right_weights.float(), atol=ATOL):  # the bound `same` grades with
            return "the weights differ: softmax(q k^T / sqrt(head_dim) + mask), in fp32"
        return "the weights are right, the output is not: output = weights @ v"

    def same(got, expected):
        return (
            isinstance(got, tuple)
            and len(got) == 2
            and _same_tensor(got[1], expected[1], ATOL)
            and _same_tensor(got[0], expected[0], ATOL)
        )

    hint = _first_failure(fn, cases, plain_attention, same, diagnose)
    return _verdict(
        hint is None, "Scores, mask, softmax, weighted sum: the whole of attention, in fp32 where it matters.", hint
    )
