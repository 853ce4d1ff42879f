"""Notebook 11b, Watching an induction head form: the checks of its "your turn" cells."""

import torch

from .grading import _first_failure, _same_tensor, _shape_hint, _verdict
from .inside import _random_patterns, _zeroed_positions


def _offset(pattern, back, queries):
    """The mean attention from each of ``queries`` to the key ``back`` before it: (heads,)."""
    return pattern[:, :, queries, queries - back].mean(dim=(0, 2))


def check_offset_score(fn) -> bool:
    """Notebook 11b: fn(pattern (batch, heads, seq, seq), back) -> (heads,), the mean attention from each query q
    that has a key ``back`` positions earlier (q >= back) to that key."""
    from ...interpret.circuits import offset_score

    cases = [(_random_patterns(2, 3, 9, 0), 1), (_random_patterns(1, 4, 12, 1), 5), (_random_patterns(3, 2, 7, 2), 6)]

    def diagnose(got, expected, args):
        pattern, back = args
        seq = pattern.shape[-1]
        if isinstance(got, torch.Tensor) and tuple(got.shape) == tuple(pattern.shape[:2]):
            return "one score per head: average over the batch as well as over the queries"
        if hint := _shape_hint(got, expected):
            return hint
        if torch.allclose(got, pattern.diagonal(-back, -2, -1).sum(-1).mean(0) / seq, atol=1e-6):
            return (
                f"the first {back} queries have no key {back} back: average over the seq - back queries that do, "
                "not over all seq"
            )
        for wrong in (back - 1, back + 1):
            if 0 <= wrong < seq and torch.allclose(got, _offset(pattern, wrong, torch.arange(wrong, seq)), atol=1e-6):
                return f"off by one: from query q the key is q - back (you read q - {wrong})"
        return f"for back={back} your scores differ: the mean of pattern[:, :, q, q - back] over q = back .. seq - 1"

    hint = _first_failure(fn, cases, offset_score, lambda g, e: _same_tensor(g, e, 1e-6), diagnose)
    return _verdict(
        hint is None,
        "back=1 is the previous-token score; a head that always looks the same distance "
        "back scores 1 at that distance, whatever the text.",
        hint,
    )


def check_induction_score_at(fn) -> bool:
    """Notebook 11b: fn(pattern, start, n) -> (heads,), the induction score of a repeat whose first copy starts at
    position ``start`` (a prefix before it, possibly other tokens after the second copy)."""
    from ...interpret.circuits import induction_score

    cases = [
        (_random_patterns(2, 3, 16, 3), 3, 5),
        (_random_patterns(1, 2, 11, 4), 0, 4),
        (_random_patterns(2, 4, 14, 5), 6, 4),
    ]

    def diagnose(got, expected, args):
        pattern, start, n = args
        queries = torch.arange(start + n, start + 2 * n)
        if isinstance(got, torch.Tensor) and tuple(got.shape) == tuple(pattern.shape[:2]):
            return "one score per head: average over the batch as well as over the queries of the second copy"
        if hint := _shape_hint(got, expected):
            return hint
        if torch.allclose(got, induction_score(pattern, n), atol=1e-6):
            return (
                "that scores the LAST 2n positions: here the first copy starts at `start` and other tokens may "
                "follow the second copy; the queries are start + n .. start + 2n - 1"
            )
        if torch.allclose(got, _offset(pattern, n, queries), atol=1e-6):
            return (
                "n back is the earlier copy of the same token (a duplicate-token score): the induction key is "
                "n - 1 back"
            )
        if torch.allclose(got, _offset(pattern, n - 1, torch.arange(start + n - 1, start + 2 * n - 1)), atol=1e-6):
            return "off by one in the queries: the second copy is positions start + n .. start + 2n - 1"
        return (
            f"for start={start}, n={n} your scores differ: the mean of pattern[:, :, q, q - n + 1] over the second copy"
        )

    hint = _first_failure(
        fn, cases, lambda p, s, n: induction_score(p, n, s), lambda g, e: _same_tensor(g, e, 1e-6), diagnose
    )
    return _verdict(
        hint is None,
        "Now a repeat can sit anywhere: a head that only looks a fixed distance back no longer scores by luck.",
        hint,
    )


def check_zero_heads(fn) -> bool:
    """Notebook 11b: fn(z (batch, seq, heads, head_dim), heads (a list)) -> a copy of z with those heads zeroed."""
    from ...interpret.circuits import zero_heads

    g = torch.Generator().manual_seed(0)
    cases = [
        (torch.randn(2, 5, 4, 3, generator=g), [1, 3]),
        (torch.randn(1, 6, 4, 2, generator=g), [0]),
        (torch.randn(2, 4, 4, 2, generator=g), [0, 1, 2, 3]),
        (torch.randn(2, 4, 3, 2, generator=g), []),
    ]

    def diagnose(got, expected, args):
        z, heads = args
        if hint := _shape_hint(got, expected):
            return hint
        if heads and torch.equal(got, zero_heads(z, heads[:1])):
            return "only the first head is zeroed: zero every head in the list"
        if torch.equal(got, zero_heads(z, [h for h in range(z.shape[2]) if h not in heads])):
            return "that zeroed the OTHER heads: zero the ones in the list, keep the rest"
        if _zeroed_positions(got, z, heads):
            return "z is (batch, seq, heads, head_dim): that zeroed positions. Heads are the third axis: z[:, :, heads]"
        return f"for heads={heads} your result differs: only z[:, :, h] for h in the list should change, to 0"

    hint = _first_failure(fn, cases, zero_heads, _same_tensor, diagnose)
    return _verdict(hint is None, "As a hook on h.<layer>.attn.z it switches off a whole group of heads at once.", hint)
