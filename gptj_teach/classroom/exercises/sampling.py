"""Notebook 06, Sampling: the checks of its "your turn" cells."""

import torch

from ...generation import sampling
from .grading import _first_failure, _same_tensor, _shape_hint, _verdict


def check_top_p(fn) -> bool:
    """Notebook 06: fn(logits (..., vocab), p) -> logits with everything outside the top-p nucleus set to -inf."""
    g = torch.Generator().manual_seed(0)
    probs = torch.tensor([0.05, 0.5, 0.15, 0.3])
    two_rows = torch.tensor([[0.05, 0.5, 0.15, 0.3], [0.7, 0.12, 0.1, 0.08]]).log()
    cases = [
        (probs.log(), 0.7),
        (probs.log(), 0.9),
        (probs.log(), 0.4),
        (probs.log(), 1.0),
        (two_rows, 0.6),
        (3 * torch.randn(3, 2, 50, generator=g), 0.8),
        (torch.randn(100, generator=g), 0.5),
    ]

    def diagnose(got, expected, args):
        if hint := _shape_hint(got, expected):
            return hint
        logits, p = args
        kept, right_kept = ~torch.isneginf(got), ~torch.isneginf(expected)
        if got.isfinite().all() and (got >= 0).all() and torch.allclose(got.sum(-1), torch.ones(())):
            return "return the filtered logits, not probabilities (the softmax comes after the filter)"
        dropped_changed = not torch.equal(got[~right_kept], logits[~right_kept])
        if got.isfinite().all() and dropped_changed and torch.equal(got[right_kept], logits[right_kept]):
            return "set the dropped logits to -inf (float('-inf')), so that softmax gives them probability 0"
        if (kept.sum(-1) > right_kept.sum(-1)).any():
            return (
                f"for p={p} you keep too many tokens: keep the smallest set of most likely tokens whose "
                "probabilities add up to p or more"
            )
        if (kept.sum(-1) < right_kept.sum(-1)).any():
            return (
                f"for p={p} you keep too few tokens: the kept probabilities must add up to at least p, so the "
                "token that crosses p stays"
            )
        if not torch.equal(kept, right_kept):
            return "you keep the right number of tokens but not the right ones: keep the MOST likely"
        return "leave the kept logits unchanged (only the dropped ones become -inf)"

    hint = _first_failure(fn, cases, sampling.top_p_filter, lambda g, e: _same_tensor(g, e, 1e-6), diagnose)
    return _verdict(hint is None, "The nucleus adapts: few tokens when the model is sure, many when it is not.", hint)


def check_top_k(fn) -> bool:
    """Notebook 06: fn(logits (..., vocab), k) -> logits with all but the k highest of each row set to -inf."""
    g = torch.Generator().manual_seed(0)
    probs = torch.tensor([0.05, 0.5, 0.15, 0.3])
    cases = [
        (probs.log(), 2),
        (probs.log(), 1),
        (probs.log(), 4),
        (torch.randn(50, generator=g), 10),
        (torch.randn(3, 20, generator=g), 5),
        (2 * torch.randn(2, 2, 30, generator=g), 3),
    ]

    def diagnose(got, expected, args):
        logits, k = args
        if hint := _shape_hint(got, expected):
            return hint
        kept = (~torch.isneginf(got)).sum(-1)
        if got.isfinite().all() and (got >= 0).all() and torch.allclose(got.sum(-1), torch.ones(())):
            return "return the filtered logits, not probabilities (the softmax comes after the filter)"
        if logits.dim() > 1 and not (kept == k).all():
            return (
                f"for a batch of rows {tuple(logits.shape)} keep k = {k} in EVERY row: compare each row with its "
                "own k-th best score (topk(...).values[..., -1:])"
            )
        if (kept != k).any():
            return f"for k = {k} you keep {kept.flatten()[0].item()} tokens: keep exactly the k highest scores"
        if not torch.equal(~torch.isneginf(got), ~torch.isneginf(expected)):
            return "you keep k tokens but not the right ones: keep the HIGHEST scores"
        return "leave the kept logits unchanged (only the dropped ones become -inf)"

    hint = _first_failure(fn, cases, sampling.top_k_filter, lambda g, e: _same_tensor(g, e), diagnose)
    return _verdict(
        hint is None, "A fixed number of candidates, whether the model is sure or not: what top-p improves on.", hint
    )


def check_logits_to_probs(fn) -> bool:
    """Notebook 06: fn(logits, temperature, top_k, top_p) -> probabilities: temperature, top-k, top-p, softmax."""
    g = torch.Generator().manual_seed(0)
    logits, batch = 3 * torch.randn(200, generator=g), 3 * torch.randn(2, 200, generator=g)
    cases = [
        (logits, 0.8, 40, 0.9),
        (logits, 1.0, 0, 1.0),
        (logits, 0.3, 0, 0.5),
        (logits, 1.5, 0, 0.9),
        (logits, 2.0, 5, 1.0),
        (batch, 0.7, 20, 0.8),
    ]

    def diagnose(got, expected, args):
        logits, t, k, p = args
        if hint := _shape_hint(got, expected):
            return hint
        if torch.isnan(got).any():  # softmax of a row of -inf only, or 0 * inf: a step removed every token
            return "your probabilities contain NaN: a step removed every token of a row (all -inf)" + (
                ", and top_k = 0 means no top-k cut at all (keep every token)"
                if k == 0
                else ": top-p must always keep at least the most likely token"
            )
        if not torch.allclose(got.sum(-1), torch.ones(())) or (got < 0).any():
            return "return probabilities: end with a softmax over the vocabulary"
        if k == 0 and ((got > 0).sum(-1) <= 1).all() and ((expected > 0).sum(-1) > 1).any():
            return "top_k = 0 means no top-k cut at all (keep every token), not keep one"
        late_t = torch.softmax(sampling.top_p_filter(sampling.top_k_filter(logits, k), p) / t, dim=-1)
        if torch.allclose(got, late_t, atol=1e-6):
            return (
                "the temperature comes FIRST, then top-k, then top-p: the nucleus depends on the temperature "
                f"(T = {t}, top-p = {p})"
            )
        return (
            f"for T = {t}, top-k = {k}, top-p = {p} your probabilities differ: temperature -> top-k -> top-p -> softmax"
        )

    hint = _first_failure(fn, cases, sampling.logits_to_probs, lambda g, e: _same_tensor(g, e, 1e-6), diagnose)
    return _verdict(
        hint is None, "The same pipeline as transformers' generate: same settings, same seed, same tokens.", hint
    )
