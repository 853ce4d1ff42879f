"""Notebook 07, Attention visualization: the checks of its "your turn" cells."""

import functools
import operator

import torch

from ...gptj.model import make_mask
from .grading import _first_failure, _same_tensor, _shape_hint, _verdict

PREVIOUS_TOKEN_TEXT = (
    'def add(a, b):\n    """Return the sum of a and b."""\n    return a + b\n\n\n'
    "for i in range(10):\n    print(add(i, i * 2))\n"
)  # the text check_previous_token_head reads


PREVIOUS_TOKEN_MARGIN = 0.02  # a head this close to the best previous-token score also counts


def _reference_head_scores(attentions):
    maps = torch.stack([a[0] for a in attentions])  # (layers, heads, query, key) of the first sequence
    return maps.diagonal(offset=-1, dim1=-2, dim2=-1).mean(-1), maps[:, :, 1:, 0].mean(-1)


def check_head_scores(fn) -> bool:
    """Notebook 07: fn(attentions) -> (previous, first), each (layers, heads): the mean weight on key i - 1 and on
    key 0, over the queries i = 1 .. T-1. attentions: a tuple of (batch, heads, T, T), one per layer."""
    g = torch.Generator().manual_seed(0)
    cases = []
    for layers, heads, T in [(3, 2, 6), (2, 4, 9)]:
        scores = torch.randn(layers, 1, heads, T, T, generator=g) + make_mask(None, torch.arange(T), T, torch.float32)
        cases.append((tuple(scores.softmax(-1)),))

    def diagnose(got, expected, args):
        if not (isinstance(got, tuple) and len(got) == 2):
            return "return two tensors: (previous, first)"
        maps = torch.stack([a[0] for a in args[0]])
        for name, mine, right in zip(("previous", "first"), got, expected):
            if hint := _shape_hint(mine, right):
                return f"{name}: {hint} (layers, heads)"
        previous, first = got
        if torch.allclose(previous, maps.diagonal(0, -2, -1).mean(-1), atol=1e-6) or torch.allclose(
            previous, maps.diagonal(0, -2, -1)[..., 1:].mean(-1), atol=1e-6
        ):
            return "the main diagonal is each token looking at ITSELF: the previous token is diagonal(offset=-1)"
        if torch.allclose(previous, maps.diagonal(1, -2, -1).mean(-1), atol=1e-6):
            return "offset=+1 is the token AFTER (always 0: masked); the previous token is diagonal(offset=-1)"
        if not torch.allclose(previous, expected[0], atol=1e-6):
            return "previous: the mean of A[i, i - 1] over i = 1 .. T-1"
        if torch.allclose(first, maps[..., 0].mean(-1), atol=1e-6):
            return "first: leave out query 0 (it can only look at itself): A[1:, 0]"
        return "first: the mean of A[i, 0] over i = 1 .. T-1"

    def same(got, expected):
        return isinstance(got, tuple) and len(got) == 2 and all(_same_tensor(a, b, 1e-6) for a, b in zip(got, expected))

    hint = _first_failure(fn, cases, _reference_head_scores, same, diagnose)
    return _verdict(hint is None, "Two numbers per head that summarise a T x T map: how interpretability starts.", hint)


def _reference_best_head(scores):
    return divmod(scores.argmax().item(), scores.shape[1])  # flat index -> (layer, head)


def check_best_head(fn) -> bool:
    """Notebook 07: fn(scores (layers, heads)) -> (layer, head) of the highest score, as two ints."""
    g = torch.Generator().manual_seed(0)
    cases = [
        (torch.rand(4, 3, generator=g),),
        (torch.rand(2, 5, generator=g),),
        (torch.rand(28, 16, generator=g),),
        (torch.rand(3, 1, generator=g),),
    ]

    def as_pair(got):
        layer, head = got
        return operator.index(layer), operator.index(head)

    def same(got, expected):
        try:
            return as_pair(got) == expected
        except Exception:
            return False

    def diagnose(got, expected, args):
        scores = args[0]
        try:
            pair = as_pair(got)
        except Exception:  # not a pair of whole numbers
            return (
                f"return a pair of ints (layer, head), not {got!r}: divmod(flat index, number of heads) turns "
                "scores.argmax() into one"
            )
        if pair == expected[::-1]:
            return "(layer, head), in that order: the layers are the rows of scores"
        if pair == divmod(scores.argmax().item(), scores.shape[0]):
            return "divide the flat index by the number of HEADS (scores.shape[1], the length of a row)"
        return f"for scores of shape {tuple(scores.shape)} the highest is at {expected}, you gave {pair}"

    hint = _first_failure(fn, cases, _reference_best_head, same, diagnose)
    return _verdict(hint is None, "argmax over a flattened grid, then back to its row and column.", hint)


@functools.lru_cache(maxsize=1)
def _previous_token_scores() -> torch.Tensor:
    """(n_layer, n_head): the tiny model's mean attention weight from each token to the one just before it."""
    from ...checkpoint import load

    model, tok = load("tiny")
    ids = tok(PREVIOUS_TOKEN_TEXT, return_tensors="pt").input_ids  # (1, seq)
    with torch.no_grad():
        attentions = torch.stack(model(ids, output_attentions=True).attentions)[:, 0]  # (layer, head, q, k)
    return attentions.diagonal(offset=-1, dim1=-2, dim2=-1).mean(-1)  # weight of query i on key i - 1


def check_previous_token_head(answer) -> bool:
    """Notebook 07: (layer, head) of the tiny model's head that attends most to the previous token."""
    how = (
        "score every (layer, head) by its mean attention weight from each token to the token just before it (the "
        "diagonal just below the main one), with output_attentions=True on gt.classroom.exercises.PREVIOUS_TOKEN_TEXT"
    )
    if answer is None:
        return _verdict(False, "", f"replace None with your (layer, head): {how}")
    try:
        layer, head = (operator.index(i) for i in answer)
    except Exception:  # not a pair of integers (a float, a string, three numbers, ...)
        return _verdict(False, "", f"give a pair of integers (layer, head), not {answer!r}")
    scores = _previous_token_scores()  # (n_layer, n_head)
    if not (0 <= layer < scores.shape[0] and 0 <= head < scores.shape[1]):
        return _verdict(False, "", f"layers go 0..{scores.shape[0] - 1} and heads 0..{scores.shape[1] - 1}")
    best = scores.max()
    ok = scores[layer, head] >= best - PREVIOUS_TOKEN_MARGIN
    # counted from 1 by mistake? Then both numbers are one too high (a neighbouring head alone is just wrong)
    if not ok and min(layer, head) >= 1 and scores[layer - 1, head - 1] >= best - PREVIOUS_TOKEN_MARGIN:
        hint = "close: layers and heads are counted from 0"
    else:
        hint = (
            f"head ({layer}, {head}) puts {scores[layer, head]:.2f} of its attention on the previous token, "
            f"others put more: {how}"
        )
    return _verdict(
        bool(ok),
        "Previous-token heads are half of an induction head, which copies patterns seen earlier in the context.",
        hint,
    )
