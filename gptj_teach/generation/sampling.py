"""Choosing the next token: temperature, top-k and top-p as pure functions on logits, and ``next_token``.

The model gives a score (logit) to each of the 50400 tokens. Sampling reshapes that distribution, in this
order, each step a small pure function you can call on a tensor and plot:

1. **temperature** ``T``: ``logits / T``. Below 1 sharpens (the favourite gets more likely), above 1 flattens.
   It never changes which token is the favourite.
2. **top-k**: keep the ``k`` best tokens, drop the rest (-inf). ``k = 0`` keeps all (our default).
3. **top-p** (nucleus): keep the smallest set of best tokens whose probabilities add up to at least ``p``.
   A confident model keeps few tokens, an unsure one many. ``p = 1`` keeps all.
4. **draw**: softmax, then ``torch.multinomial`` from the global torch generator.

Greedy decoding (``do_sample=False``) skips all of that and takes the argmax.

The trap: ``transformers``' ``generate(do_sample=True, temperature=..., top_p=...)`` *also* applies
``top_k=50`` unless you pass ``top_k=0``; its default generation config sets it. Ours defaults to ``top_k=0``.
With the same settings and the same ``torch.manual_seed``, ``generate`` (``loop.py``, the decode loop)
picks exactly the tokens that ``transformers`` picks: same order of operations, logits cast to fp32, one
``multinomial`` call per step.

References: Holtzman et al. (2020) "The Curious Case of Neural Text Degeneration" (top-p); Fan et al. (2018)
(top-k); ``transformers.generation.logits_process`` (``TemperatureLogitsWarper``, ``TopKLogitsWarper``,
``TopPLogitsWarper``); gpt-fast ``logits_to_probs``.
"""

import math

import torch


def temperature_scale(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``logits / temperature``. logits: (..., vocab).

    A temperature so small that the division overflows (1e-39: logits become +-inf, the softmax NaN) is taken
    to its limit instead: the logits are shifted so that the best is 0 before dividing, and the best token (or
    the tied best) keeps all the probability while the others get none: greedy, as the maths says.
    """
    scaled = logits / temperature
    if torch.isfinite(torch.stack(torch.aminmax(scaled))).all():  # all finite (5x cheaper than isfinite(scaled))
        return scaled  # the usual case: exactly transformers' TemperatureLogitsWarper
    shifted = (logits - logits.max(dim=-1, keepdim=True).values) / temperature  # <= 0; 0 / 0 = nan at the best
    return shifted.nan_to_num(nan=0.0, neginf=-math.inf)


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` highest logits (and any tied with the k-th), set the rest to -inf. ``k = 0``: keep all."""
    if k == 0:
        return logits
    kth_best = torch.topk(logits, min(k, logits.shape[-1])).values[..., -1, None]  # (..., 1)
    return logits.masked_fill(logits < kth_best, -math.inf)


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose probability reaches ``p`` (always at least one).

    Sorted from least to most likely, a token is dropped when the mass of it and everything below it is at
    most ``1 - p``: what is left then holds at least ``p``. ``p = 1``: keep all. Sorting all 50400 logits
    every step costs more than the tiny model's forward, so the answer is read off the best ``CANDIDATES``
    first (``top_p_among_best``); the full sort decides only when they cannot.
    """
    if p >= 1.0:
        return logits
    if logits.shape[-1] > CANDIDATES:
        kept = top_p_among_best(logits, p)
        if kept is not None:
            return kept
    sorted_logits, order = torch.sort(logits, descending=False)  # (..., vocab), least likely first
    mass_below = sorted_logits.softmax(dim=-1).cumsum(dim=-1)  # (..., vocab)
    drop_sorted = mass_below <= (1 - p)
    drop_sorted[..., -1:] = False  # the most likely token always stays
    drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, -math.inf)


CANDIDATES = 256  # top-p looks among this many best tokens first: a topk of 256 is ~20x cheaper than a sort
MARGIN = 3e-5  # closer to p than this, the full sort decides: the two ways to add round differently, by up
# to 1.5e-6 on 2200 rows of real and random logits (tests/test_sampling.py checks decisions just outside it)


def top_p_among_best(logits: torch.Tensor, p: float):
    """``top_p_filter`` from the ``CANDIDATES`` best tokens alone, or None when they cannot settle it.

    A token stays when the tokens more likely than it hold less than ``p``: the same rule as above, counted
    from the top. None (sort everything) when a token's mass lies within ``MARGIN`` of ``p`` (there the order
    of additions could decide, and the sort adds like ``transformers``), when all of them stay (the edge is
    past them), or when the last token kept is tied with the next (the sort breaks the tie).
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


def logits_to_probs(logits: torch.Tensor, temperature=1.0, top_k=0, top_p=1.0) -> torch.Tensor:
    """The whole pipeline: fp32 -> temperature -> top-k -> top-p -> softmax. (..., vocab) -> (..., vocab)."""
    logits = logits.float()
    if temperature != 1.0:  # like transformers: T = 1 is not applied at all (x / 1.0 == x anyway)
        logits = temperature_scale(logits, temperature)
    return torch.softmax(top_p_filter(top_k_filter(logits, top_k), top_p), dim=-1)


def next_token(logits: torch.Tensor, do_sample: bool, temperature=1.0, top_k=0, top_p=1.0) -> torch.Tensor:
    """One token per row from the last position's logits (batch, vocab): argmax, or a draw. Returns (batch,)."""
    if not do_sample:  # argmax: the first of the best if several tie; max(dim) finds the same, 3x faster on a CPU
        return logits.float().max(dim=-1).indices
    probs = logits_to_probs(logits, temperature, top_k, top_p)
    return torch.multinomial(probs, num_samples=1).squeeze(1)
