"""Notebook 11, Inside GPT-J: the checks of its "your turn" cells."""

import torch

from ...gptj.model import make_mask
from .grading import _first_failure, _same_tensor, _shape_hint, _verdict


def _random_patterns(batch: int, heads: int, seq: int, seed: int) -> torch.Tensor:
    """Causal attention patterns with random rows: (batch, heads, seq, seq), each row sums to 1."""
    scores = torch.randn(batch, heads, seq, seq, generator=torch.Generator().manual_seed(seed)) * 2
    return (scores + make_mask(None, torch.arange(seq), seq, torch.float32)).softmax(-1)


def _zeroed_positions(got, z, indices) -> bool:
    """Whether got is z with the positions ``indices`` zeroed: heads taken for positions, the usual axis mix-up."""
    wrong_axis = z.clone()
    wrong_axis[:, [i for i in indices if i < z.shape[1]]] = 0
    return torch.equal(got, wrong_axis)


def check_induction_score(fn) -> bool:
    """Notebook 11: fn(pattern (batch, heads, seq, seq), n) -> (heads,), the mean attention from each token of the
    second copy (the last n positions) to the token after its earlier copy (n - 1 back)."""
    from ...interpret.circuits import induction_score

    cases = [(_random_patterns(1, 3, 11, 0), 5), (_random_patterns(2, 2, 8, 1), 4), (_random_patterns(3, 4, 13, 2), 6)]

    def offset_score(pattern, n, back):  # the mean attention from the second copy to `back` positions earlier
        q = torch.arange(pattern.shape[-1] - n, pattern.shape[-1])
        return pattern[:, :, q, q - back].mean(dim=(0, 2))

    def diagnose(got, expected, args):
        pattern, n = args
        if isinstance(got, torch.Tensor) and tuple(got.shape) == tuple(pattern.shape[:2]):
            return "one score per head: average over the batch as well as over the query positions"
        if hint := _shape_hint(got, expected):
            return hint
        if torch.allclose(got, offset_score(pattern, n, n)):
            return (
                "that is the attention to the earlier copy of the same token (n back), a duplicate-token score; "
                "an induction head looks at the token AFTER that copy: n - 1 back"
            )
        if torch.allclose(got, offset_score(pattern, n, n - 2)) or torch.allclose(got, offset_score(pattern, n, 1)):
            return "wrong distance: from query position q, the key to read is q - n + 1"
        return (
            f"for n={n} and a pattern of shape {tuple(pattern.shape)} your scores differ: average only over the "
            "queries of the second copy (the last n positions)"
        )

    hint = _first_failure(fn, cases, induction_score, lambda g, e: _same_tensor(g, e, 1e-6), diagnose)
    return _verdict(
        hint is None,
        "An induction head scores near 1: it has found where the current token was before and reads what came next.",
        hint,
    )


def check_dla_term(fn) -> bool:
    """Notebook 11: fn(term (..., n_embd), scale (..., 1), ln_weight, direction) -> (...), one component's share of
    a logit difference through ln_f with its scale frozen."""
    from ...interpret.circuits import dla_term

    g = torch.Generator().manual_seed(0)
    cases = [
        (
            torch.randn(3, 5, 16, generator=g) + 1,
            torch.rand(3, 5, 1, generator=g) + 0.5,
            torch.randn(16, generator=g),
            torch.randn(16, generator=g),
        ),
        (torch.randn(8, generator=g) - 2, torch.tensor([1.7]), torch.rand(8, generator=g), torch.randn(8, generator=g)),
    ]

    def diagnose(got, expected, args):
        term, scale, weight, direction = args
        if hint := _shape_hint(got, expected):
            return hint
        centred = term - term.mean(-1, keepdim=True)
        mistakes = [
            (
                (term / scale * weight) @ direction,
                "subtract the term's mean over n_embd first: ln_f centres the "
                "whole sum, which is the same as centring every term",
            ),
            ((centred * weight) @ direction, "divide by the frozen scale: ln_f divides the whole sum by it"),
            ((centred / scale) @ direction, "multiply by ln_weight (ln_f's weight) before the dot product"),
            ((centred * scale * weight) @ direction, "divide by the scale, do not multiply"),
        ]
        return next(
            (hint for wrong, hint in mistakes if torch.allclose(got, wrong, atol=1e-5)),
            "your share differs: ((term - mean) / scale * ln_weight) . direction",
        )

    hint = _first_failure(fn, cases, dla_term, lambda g, e: _same_tensor(g, e, 1e-5), diagnose)
    return _verdict(
        hint is None,
        "With the scale frozen ln_f is linear, so the shares add up to the logit difference (plus the biases).",
        hint,
    )


def check_zero_ablate(fn) -> bool:
    """Notebook 11: fn(z (batch, seq, heads, head_dim), head) -> z with that head's output zeroed."""
    from ...interpret.circuits import zero_ablate

    g = torch.Generator().manual_seed(0)
    cases = [
        (torch.randn(2, 5, 3, 4, generator=g), 1),
        (torch.randn(1, 7, 4, 8, generator=g), 3),
        (torch.randn(3, 4, 4, 2, generator=g), 0),
    ]

    def diagnose(got, expected, args):
        z, head = args
        if hint := _shape_hint(got, expected):
            return hint
        if not got.any():
            return "zero only the chosen head; the other heads keep their outputs"
        if _zeroed_positions(got, z, [head]):
            return "z is (batch, seq, heads, head_dim): that zeroed a position. Heads are the third axis: z[:, :, head]"
        if torch.equal(got, z):
            return "the head's output is still there: set z[:, :, head] to 0 (on a copy) and return it"
        return f"for head={head} your result differs: only z[:, :, {head}] should change, to 0"

    hint = _first_failure(fn, cases, zero_ablate, _same_tensor, diagnose)
    return _verdict(
        hint is None, "Used as a hook on h.<layer>.attn.z, this removes one head from the forward pass.", hint
    )


def check_patch_head(fn) -> bool:
    """Notebook 11: fn(z, clean_z, head, pos) -> a copy of z (batch, seq, heads, head_dim) whose ``head`` at ``pos``
    holds clean_z's value there: head-by-position activation patching."""
    from ...interpret.circuits import patch_head

    g = torch.Generator().manual_seed(0)
    cases = [
        (torch.randn(2, 5, 3, 4, generator=g), torch.randn(2, 5, 3, 4, generator=g), 2, 1),
        (torch.randn(1, 6, 4, 2, generator=g), torch.randn(1, 6, 4, 2, generator=g), 0, -1),
        (torch.randn(3, 4, 4, 3, generator=g), torch.randn(3, 4, 4, 3, generator=g), 1, 3),
    ]

    def diagnose(got, expected, args):
        z, clean, head, pos = args
        if hint := _shape_hint(got, expected):
            return hint
        every_position, every_head = z.clone(), z.clone()
        every_position[:, :, head] = clean[:, :, head]
        every_head[:, pos] = clean[:, pos]
        if torch.equal(got, clean):
            return "that is the whole clean activation: paste only one head at one position, keep the rest of z"
        if torch.equal(got, z):
            return "nothing changed: copy clean_z[:, pos, head] into (a copy of) z at [:, pos, head]"
        if torch.equal(got, every_position):
            return "that patched the head at every position: z is (batch, seq, heads, head_dim), set z[:, pos, head]"
        if torch.equal(got, every_head):
            return "that patched every head at that position: choose the head too, z[:, pos, head]"
        return "z is (batch, seq, heads, head_dim): the position is the second axis and the head the third"

    hint = _first_failure(fn, cases, patch_head, _same_tensor, diagnose)
    return _verdict(
        hint is None,
        "As a hook on h.<layer>.attn.z in the corrupted run, it asks: does this one head, "
        "at this one position, carry what differs between the prompts?",
        hint,
    )


def check_copying_score(fn) -> bool:
    """Notebook 11: fn(ov (tokens, tokens), k) -> a float, the fraction of rows whose diagonal entry is among the
    row's k largest."""
    from ...interpret.circuits import copying_score

    g = torch.Generator().manual_seed(0)
    ovs = [
        torch.randn(8, 8, generator=g) + torch.eye(8) * 1.5,
        torch.randn(12, 12, generator=g) + torch.eye(12),
        torch.randn(6, 6, generator=g),
    ]
    ovs[1][3, 3] = ovs[1][3].max() + 1  # a sure copy in one row; the column of 3 not the column's top
    ovs[1][:, 3] -= 5
    ovs[1][3, 3] += 10
    cases = [(ovs[0], 1), (ovs[1], 3), (ovs[2], 2), (ovs[1], 1)]

    def same(got, expected):
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        return isinstance(got, float) and abs(got - expected) < 1e-6

    def diagnose(got, expected, args):
        ov, k = args
        value = got.item() if isinstance(got, torch.Tensor) and got.numel() == 1 else got
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return f"return one number (a float), not a {type(got).__name__}"
        rows = torch.arange(ov.shape[0])
        if abs(value - copying_score(ov.T, k)) < 1e-6:
            return "rank within each ROW (the logits one source token produces): topk(k, dim=1), not dim=0"
        if abs(value - expected * ov.shape[0]) < 1e-6:
            return "that is a count: divide by the number of rows to get a fraction"
        if abs(value - copying_score(ov, 1)) < 1e-6:
            return f"with k={k} the own token counts when it is among the row's {k} largest, not only the largest"
        if abs(value - (ov.argmax(0) == rows).float().mean().item()) < 1e-6:
            return "rank within each ROW (the logits one source token produces), not within each column"
        return f"for k={k} your fraction differs: for each row i, is column i among the row's k largest?"

    hint = _first_failure(fn, cases, copying_score, same, diagnose)
    return _verdict(
        hint is None,
        "A head whose OV circuit maps each token to itself writes whatever it attends to: a copying head.",
        hint,
    )
