"""A shortcut for top-p on a large vocabulary: the nucleus read off the best few hundred tokens instead of a sort.

``sampling.top_p_filter`` says what top-p *is*: sort every token, add up the probabilities, cut where the mass
reaches ``p``. Sorting all 50400 logits at every step costs more than the tiny model's forward pass, and the
nucleus is almost always far smaller than the vocabulary, so ``top_p_filter`` first asks ``top_p_among_best``,
which looks at the ``CANDIDATES`` best tokens only (one ``topk``), and sorts everything only when the candidates
cannot settle it. The two give the same kept tokens (``tests/test_sampling.py`` proves it, near the edge too);
what each costs is measured in ``benchmarks/RESULTS.md``.

References: the rule is ``transformers``' ``TopPLogitsWarper`` (as in ``sampling.py``); the shortcut is ours.
"""

import math

import torch

CANDIDATES = 256  # top-p looks among this many best tokens first
MARGIN = 3e-5  # closer to p than this, the full sort decides: the two ways to add round differently, by up
# to 1.5e-6 on 2200 rows of real and random logits (tests/test_sampling.py checks decisions just outside it)


def top_p_among_best(logits: torch.Tensor, p: float):
    """``top_p_filter`` from the ``CANDIDATES`` best tokens alone, or None when they cannot settle it.

    A token stays when the tokens more likely than it hold less than ``p``: the same rule as ``top_p_filter``,
    counted from the top. None (sort everything) when a token's mass lies within ``MARGIN`` of ``p`` (there the
    order of additions could decide, and the sort adds like ``transformers``), when all of them stay (the edge
    is past them), or when the last token kept is tied with the next (the sort breaks the tie).
    """
    best, where = torch.topk(logits, CANDIDATES)  # (..., CANDIDATES), most likely first
    probs = (best - torch.logsumexp(logits, dim=-1, keepdim=True)).exp()  # their probabilities among all
    mass_above = probs.cumsum(dim=-1) - probs  # (..., CANDIDATES): what the more likely tokens hold
    keep = mass_above < p  # (..., CANDIDATES), a prefix
    edge = keep.sum(dim=-1, keepdim=True)  # (..., 1): how many stay (at least 1: the best has 0 above it)
    last_in, first_out = best.gather(-1, edge - 1), best.gather(-1, edge.clamp(max=CANDIDATES - 1))
    near_p = ((mass_above - p).abs() < MARGIN).any(dim=-1, keepdim=True)  # (..., 1)
    if (near_p | (edge == CANDIDATES) | (last_in == first_out)).any():  # too close to call, or the edge unseen
        return None  # or in a tie. (A nucleus past the candidates shows as edge == CANDIDATES or near_p.)
    kept = best.masked_fill(~keep, -math.inf)  # (..., CANDIDATES): the nucleus, the other candidates -inf
    return torch.full_like(logits, -math.inf).scatter(-1, where, kept)  # back to vocabulary order
