"""Choosing the next token: temperature, top-k, top-p, and the generation loop with a KV cache.

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
With the same settings and the same ``torch.manual_seed``, ``generate`` here picks exactly the tokens that
``transformers`` picks: same order of operations, logits cast to fp32, one ``multinomial`` call per step.

References: Holtzman et al. (2020) "The Curious Case of Neural Text Degeneration" (top-p); Fan et al. (2018)
(top-k); ``transformers.generation.logits_process`` (``TemperatureLogitsWarper``, ``TopKLogitsWarper``,
``TopPLogitsWarper``); gpt-fast ``logits_to_probs``.
"""

import math
from collections.abc import Iterator

import torch

from .checks import (check_attention_mask, check_flag, check_input_ids, check_number, check_text, check_tokenizer,
                     check_whole)
from .errors import InputError, InputTypeError


def temperature_scale(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``logits / temperature``. logits: (..., vocab).

    A temperature so small that the division overflows (1e-39: logits become +-inf, the softmax NaN) is taken
    to its limit instead: the logits are shifted so that the best is 0 before dividing, and the best token (or
    the tied best) keeps all the probability while the others get none: greedy, as the maths says.
    """
    scaled = logits / temperature
    if torch.isfinite(scaled).all():
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
    most ``1 - p``: what is left then holds at least ``p``. ``p = 1``: keep all.
    """
    if p >= 1.0:
        return logits
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


def next_token(logits: torch.Tensor, do_sample: bool, temperature=1.0, top_k=0, top_p=1.0) -> torch.Tensor:
    """One token per row from the last position's logits (batch, vocab): argmax, or a draw. Returns (batch,)."""
    if not do_sample:
        return logits.float().argmax(dim=-1)
    probs = logits_to_probs(logits, temperature, top_k, top_p)
    return torch.multinomial(probs, num_samples=1).squeeze(1)


def check_settings(do_sample, temperature, top_k, top_p, max_new_tokens) -> tuple:
    """Clear errors for settings that would crash or silently do something else, before the first step.
    Returns them as (bool, float, int, float, int)."""
    do_sample = check_flag(do_sample, "do_sample")
    max_new_tokens = check_whole(max_new_tokens, "max_new_tokens", 0)
    top_k = check_whole(top_k, "top_k", 0)
    top_p = check_number(top_p, "top_p")
    if not 0 < top_p <= 1:
        raise InputError(f"top_p must be in (0, 1] (1 turns it off), got {top_p}")
    temperature = check_number(temperature, "temperature")
    if do_sample and temperature <= 0:
        raise InputError(f"temperature must be > 0 when sampling, got {temperature}; for the single most likely "
                         "token use do_sample=False (greedy)")
    return do_sample, temperature, top_k, top_p, max_new_tokens


def check_generation(model, eos_token_id):
    """generate and stream need one of our causal LMs; eos_token_id is None, "config" or a token id."""
    from .model import GPTJForCausalLM

    if not isinstance(model, GPTJForCausalLM):
        raise InputTypeError(f"model must be a gptj_teach GPTJForCausalLM, got {type(model).__name__}: load one "
                             "with gt.load(...) or wrap a transformers model with gt.GPTJForCausalLM.from_transformers")
    eos_token_id = model.config.eos_token_id if isinstance(eos_token_id, str) and eos_token_id == "config" else eos_token_id
    return None if eos_token_id is None else check_whole(eos_token_id, "eos_token_id", 0, model.config.vocab_size - 1)


@torch.inference_mode()
def decode_steps(model, input_ids, max_new_tokens, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                 attention_mask=None, eos_token_id=None) -> Iterator[torch.Tensor]:
    """The generation loop, one new token per row per step: yields (batch,) tensors.

    One full pass over the prompt fills the KV cache; each later step feeds only the newest token. Rows that
    produced ``eos_token_id`` are finished: they get eos from then on, and the loop stops when all are done.
    """
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    finished = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
    out = model(input_ids, attention_mask=attention_mask, use_cache=True)  # the prompt: (batch, seq, vocab)
    for step in range(max_new_tokens):
        token = next_token(out.logits[:, -1], do_sample, temperature, top_k, top_p)  # (batch,)
        if eos_token_id is not None:
            token = token.masked_fill(finished, eos_token_id)
            finished |= token == eos_token_id
        yield token
        if finished.all() or step == max_new_tokens - 1:
            return
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones(attention_mask.shape[0], 1)], dim=1)
        out = model(token[:, None], attention_mask=attention_mask, cache=out.cache,
                    use_cache=True)  # one token: (batch, 1, vocab)


def generate(model, input_ids, max_new_tokens=50, do_sample=False, temperature=1.0, top_k=0, top_p=1.0,
             attention_mask=None, eos_token_id="config", fast=False) -> torch.Tensor:
    """Continue ``input_ids`` (batch, seq) by up to ``max_new_tokens``; returns prompt + new ids, like
    ``transformers``' ``generate`` (finished rows are filled with eos).

    For a batch of prompts of different lengths, pad on the *left* (``tok.padding_side = "left"``) and pass
    ``attention_mask``. ``top_k`` defaults to 0 (off), unlike ``transformers`` (50). Raises before generating
    if the prompt plus ``max_new_tokens`` would pass the model's ``n_positions``.
    """
    eos_token_id = check_generation(model, eos_token_id)
    do_sample, temperature, top_k, top_p, max_new_tokens = check_settings(do_sample, temperature, top_k, top_p,
                                                                          max_new_tokens)
    input_ids = check_length(model, input_ids, max_new_tokens)
    attention_mask, fast = check_attention_mask(attention_mask, *input_ids.shape), check_flag(fast, "fast")
    if max_new_tokens == 0:
        return input_ids
    if fast:
        from .fast import fast_decode_steps  # the compiled GPU path (benchmarks/gpu_decode.py)

        steps = fast_decode_steps(model, input_ids, max_new_tokens, do_sample, temperature, top_k, top_p,
                                  attention_mask, eos_token_id)
    else:
        steps = decode_steps(model, input_ids, max_new_tokens, do_sample, temperature, top_k, top_p,
                             attention_mask, eos_token_id)
    return torch.cat([input_ids, torch.stack(list(steps), dim=1)], dim=1)  # (batch, seq + new)


def check_length(model, input_ids, max_new_tokens) -> torch.Tensor:
    """The prompt must be a (batch, seq) id tensor and fit, with the new tokens, in n_positions."""
    n_positions = model.config.n_positions
    input_ids = check_input_ids(input_ids, model.config.vocab_size, n_positions)
    if input_ids.shape[1] + max_new_tokens > n_positions:
        raise InputError(f"the prompt ({input_ids.shape[1]} tokens) + max_new_tokens ({max_new_tokens}) exceeds "
                         f"n_positions ({n_positions}), the longest context of this model: use max_new_tokens <= "
                         f"{n_positions - input_ids.shape[1]} or a shorter prompt")
    return input_ids


def stream(model, tok, prompt: str, max_new_tokens=50, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
           seed=None) -> Iterator[str]:
    """Yield the continuation of ``prompt`` as text, piece by piece, as the tokens arrive.

    A character such as "漢" or an emoji can span several byte-level tokens; a piece is only yielded once its
    characters are complete, so every piece is valid text and ``"".join(pieces)`` is the decoded continuation.
    ``seed``: call ``torch.manual_seed(seed)`` first (same tokens as ``generate`` after the same seed).
    """
    eos_token_id = check_generation(model, "config")
    check_tokenizer(tok)
    prompt = check_text(prompt, "prompt")
    do_sample, temperature, top_k, top_p, max_new_tokens = check_settings(do_sample, temperature, top_k, top_p,
                                                                          max_new_tokens)
    seed = None if seed is None else check_whole(seed, "seed", 0, 2**63 - 1)
    input_ids = tok(prompt, return_tensors="pt").input_ids.to(model.device)  # (1, seq)
    input_ids = check_length(model, input_ids, max_new_tokens)
    if seed is not None:
        torch.manual_seed(seed)
    new_ids, shown = [], ""
    for token in decode_steps(model, input_ids, max_new_tokens, do_sample, temperature, top_k, top_p,
                              eos_token_id=eos_token_id):
        new_ids.append(token.item())
        text = tok.decode(new_ids)
        if not text.endswith("\ufffd"):  # "\ufffd": the last character is still incomplete
            yield text[len(shown):]
            shown = text
    text = tok.decode(new_ids)
    if len(text) > len(shown):  # a truly broken byte sequence at the very end: show it as decoded
        yield text[len(shown):]
