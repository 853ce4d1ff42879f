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

The four settings travel together as one frozen ``SamplingSettings``, checked when it is built: ``generate``
and ``stream`` (``loop.py``) build it from their keywords, and the loop, ``next_token`` and the sampler widget
carry it. The functions of the pipeline stay plain functions of a tensor and a number.

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
import warnings
from dataclasses import dataclass

import torch

from ..checks import check_flag, check_number, check_whole
from ..errors import InputError
from .fast_top_p import CANDIDATES, top_p_among_best


def temperature_scale(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``logits / temperature``. logits: (..., vocab).

    A temperature so small that the division overflows (1e-39: logits become +-inf, the softmax NaN) is taken
    to its limit instead: the logits are shifted so that the best is 0 before dividing, and the best token (or
    the tied best) keeps all the probability while the others get none: greedy, as the maths says.
    """
    scaled = logits / temperature
    if torch.isfinite(torch.stack(torch.aminmax(scaled))).all():  # all finite? (the extremes tell: one pass)
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
    most ``1 - p``: what is left then holds at least ``p``. ``p = 1``: keep all. On a large vocabulary the same
    answer is usually read off the best few hundred tokens without a sort (``fast_top_p.py``); the sort below
    is the definition, and decides whenever they cannot.
    """
    if p >= 1.0:
        return logits
    if logits.shape[-1] > CANDIDATES:  # the shortcut, where there is something to save
        kept = top_p_among_best(logits, p)
        if kept is not None:
            return kept
    sorted_logits, order = torch.sort(logits, descending=False)  # (..., vocab), least likely first
    mass_below = sorted_logits.softmax(dim=-1).cumsum(dim=-1)  # (..., vocab)
    drop_sorted = mass_below <= (1 - p)
    drop_sorted[..., -1:] = False  # the most likely token always stays
    drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, -math.inf)


def logits_to_probs(logits: torch.Tensor, temperature=1.0, top_k=0, top_p=1.0) -> torch.Tensor:
    """The whole pipeline: fp32 -> temperature -> top-k -> top-p -> softmax. (..., vocab) -> (..., vocab)."""
    logits = logits.float()
    if temperature != 1.0:  # like transformers: T = 1 is not applied at all (x / 1.0 == x anyway)
        logits = temperature_scale(logits, temperature)
    return torch.softmax(top_p_filter(top_k_filter(logits, top_k), top_p), dim=-1)


@dataclass(frozen=True)
class SamplingSettings:
    """How each next token is picked: greedy (``do_sample=False``, the default, like ``transformers``' generation
    config) or a draw after temperature -> top-k -> top-p. ``SamplingSettings(do_sample=True, temperature=0.8,
    top_p=0.9)``.

    Checked when built (``gptj_teach.errors``: the value, and what to pass instead), frozen afterwards: one value
    that ``decode_steps``, ``next_token`` and the sampler widget carry, and that cannot change halfway through a
    generation. Setting temperature, top-k or top-p without ``do_sample=True`` changes nothing, so it warns.
    """

    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0  # 0: off (transformers' default is 50)
    top_p: float = 1.0  # 1: off

    def __post_init__(self):
        checked = {
            "do_sample": check_flag(self.do_sample, "do_sample"),
            "temperature": check_number(self.temperature, "temperature"),
            "top_k": check_whole(self.top_k, "top_k", 0),
            "top_p": check_number(self.top_p, "top_p"),
        }
        if not 0 < checked["top_p"] <= 1:
            raise InputError(f"top_p must be in (0, 1] (1 turns it off), got {self.top_p}")
        if checked["do_sample"] and checked["temperature"] <= 0:
            raise InputError(
                f"temperature must be > 0 when sampling, got {self.temperature}; for the single most "
                "likely token use do_sample=False (greedy)"
            )
        for name, value in checked.items():  # plain bool, float, int: numpy numbers or a tensor element converted
            object.__setattr__(self, name, value)  # (a frozen dataclass sets its own fields this way)
        changed = {"temperature": self.temperature != 1.0, "top_k": self.top_k != 0, "top_p": self.top_p != 1.0}
        if not self.do_sample and any(changed.values()):
            given = ", ".join(f"{name}={getattr(self, name)}" for name, on in changed.items() if on)
            warnings.warn(
                f"{given}: no effect with do_sample=False (greedy, the default); pass do_sample=True to sample",
                UserWarning,
                stacklevel=3,
            )


GREEDY = SamplingSettings()  # argmax at every step


def next_token(logits: torch.Tensor, settings: SamplingSettings = GREEDY) -> torch.Tensor:
    """One token per row from the last position's logits (batch, vocab): argmax, or a draw. Returns (batch,)."""
    if not settings.do_sample:  # argmax: the first of the best if several tie (max(dim) finds the same, faster)
        return logits.float().max(dim=-1).indices
    probs = logits_to_probs(logits, settings.temperature, settings.top_k, settings.top_p)
    return torch.multinomial(probs, num_samples=1).squeeze(1)
