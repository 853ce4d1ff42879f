"""Generating text: the decode loop with a KV cache, ``generate`` and ``stream``.

One pass over the prompt (the *prefill*) fills the KV cache and gives the logits of the last position; then
each step feeds only the newest token, which attends to the cached keys and values of all earlier ones. A
step: logits -> ``sampling.next_token`` -> append. Rows that produced ``eos_token_id`` are finished: they get
eos from then on, and the loop stops when all are done.

Positions are computed the way ``transformers``' ``generate`` does (``positions_from_mask``): a left-padded
prompt gets the positions it would have alone, so a batch of prompts of different lengths continues each one
exactly as if it were alone.

``fast=True`` runs the same loop on a ``StaticCache`` with the model's own forward compiled for one token
(``fast.py``): the same tokens, without Python's per-step overhead once compiled.

``generate`` (ids in, ids out) and ``stream`` (text in, text pieces out) take the same settings under
``transformers``' names and defaults: greedy unless ``do_sample=True`` (``transformers``' ``generate`` is greedy
by default too), ``seed``, ``eos_token_id``, ``fast``. Only ``generate`` takes an ``attention_mask``: ``stream``
reads one prompt, which has no padding. Both build one ``SamplingSettings`` (``sampling.py``), which the loop
carries to ``next_token``.

References: ``transformers`` ``GenerationMixin.generate`` (greedy and sample loops); gpt-fast ``generate.py``.
"""

from collections.abc import Iterator
from functools import partial

import torch
from transformers import PreTrainedTokenizerBase

from ..checks import (
    check_attention_mask,
    check_causal_lm,
    check_flag,
    check_input_ids,
    check_text,
    check_tokenizer,
    check_whole,
)
from ..errors import InputError
from ..gptj import model as gptj_model
from ..gptj.cache import DynamicCache
from ..gptj.model import positions_from_mask
from .fast import compiled_step, key_mask, static_cache
from .sampling import GREEDY, SamplingSettings, next_token


def one_token(model, token, attention_mask, position_ids, cache) -> torch.Tensor:
    """The model's own forward for one new token per row: token (batch,) -> the next logits (batch, vocab).

    ``gptj/model.py``'s forward itself, not the checked one of ``api.py``: the loop checked the prompt and the
    settings once, before the first step, and a compiled step traces no checks."""
    out = gptj_model.GPTJForCausalLM.forward(model, token[:, None], attention_mask, cache, position_ids, use_cache=True)
    return out.logits[:, -1]


def greedy_token(model, token, attention_mask, position_ids, cache) -> torch.Tensor:
    """``one_token`` and its argmax: token (batch,) -> the next token (batch,). Compiled, the pick is part of
    the graph instead of a kernel call of its own."""
    return next_token(one_token(model, token, attention_mask, position_ids, cache), GREEDY)


@torch.inference_mode()
def decode_steps(
    model: gptj_model.GPTJForCausalLM,
    input_ids: torch.Tensor,
    max_new_tokens: int,
    settings: SamplingSettings = GREEDY,
    attention_mask: torch.Tensor | None = None,
    eos_token_id: int | None = None,
    fast: bool = False,
) -> Iterator[torch.Tensor]:
    """The generation loop, one new token per row per step: yields (batch,) tensors. Checks nothing:
    ``generate`` and ``stream`` check every input first, then call this.

    settings: how ``next_token`` picks (a ``SamplingSettings``; greedy by default). fast: a static cache and a
    compiled step (greedy: ``greedy_token``, which picks the token too); ``finished`` is then read on the host
    every 16 steps only (each read waits for the GPU), so up to 15 steps may follow the one where every row
    finished.
    """
    batch, prompt = input_ids.shape
    mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask  # (batch, prompt)
    positions = positions_from_mask(mask)  # (batch, prompt): padding skipped
    pick = partial(next_token, settings=settings)
    cache, step, check_every = DynamicCache(), one_token, 1
    if fast:
        cache, mask = static_cache(model, batch, prompt + max_new_tokens), key_mask(mask, prompt + max_new_tokens)
        cache.seek(torch.arange(prompt, device=input_ids.device))
        step, check_every = compiled_step(model, one_token if settings.do_sample else greedy_token), 16
    out = model(input_ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True, logits_to_keep=1)
    token, finished = pick(out.logits[:, -1]), torch.zeros(batch, dtype=torch.bool, device=input_ids.device)
    picks_itself = fast and not settings.do_sample  # the compiled greedy step returns the next token, not logits
    for t in range(max_new_tokens):
        if eos_token_id is not None:
            token = token.masked_fill(finished, eos_token_id)
            finished |= token == eos_token_id
        yield token  # (batch,)
        if t == max_new_tokens - 1 or (
            eos_token_id is not None and t % check_every == check_every - 1 and finished.all()
        ):
            return
        positions, mask = positions[:, -1:] + 1, cache.advance(mask)  # (batch, 1), the mask with a slot for it
        out = step(model, token, mask, positions, cache)  # the next logits (batch, vocab), or token (batch,)
        token = out if picks_itself else pick(out)
        if fast and t == 0:  # every later step has this one's shapes: call what this one ran (fast.py)
            step = step.last


def trim_after_all_finished(tokens: list, eos_token_id) -> list:
    """Drop the steps after the one where every row had produced eos (the fast loop checks every 16 steps)."""
    if eos_token_id is None:
        return tokens
    done = torch.stack(tokens, dim=1).eq(eos_token_id).cummax(dim=1).values.all(dim=0)  # (steps,)
    return tokens[: int(done.nonzero()[0]) + 1] if done.any() else tokens


def generate(
    model: gptj_model.GPTJForCausalLM,
    input_ids: torch.Tensor,
    max_new_tokens: int = 50,
    *,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    attention_mask: torch.Tensor | None = None,
    eos_token_id: int | str | None = "config",
    seed: int | None = None,
    fast: bool = False,
) -> torch.Tensor:
    """Continue ``input_ids`` (batch, seq) by up to ``max_new_tokens``; returns prompt + new ids, like
    ``transformers``' ``generate`` (finished rows are filled with eos).

    Greedy unless ``do_sample=True``; ``top_k`` defaults to 0 (off), unlike ``transformers`` (50). For a batch of
    prompts of different lengths, pad on the *left* (``tok.padding_side = "left"``) and pass ``attention_mask``.
    ``seed``: call ``torch.manual_seed(seed)`` first. ``eos_token_id``: "config" (the model's), an id, or None
    (never stop early). Raises before generating if the prompt plus ``max_new_tokens`` would pass the model's
    ``n_positions``. ``fast=True``: the same loop on a static cache with the forward compiled (``fast.py``): the
    same tokens, faster once compiled.
    """
    eos_token_id, max_new_tokens, seed, fast = check_run(model, eos_token_id, max_new_tokens, seed, fast)
    settings = SamplingSettings(do_sample, temperature, top_k, top_p)
    input_ids = check_length(model, input_ids, max_new_tokens)
    attention_mask = check_attention_mask(attention_mask, *input_ids.shape)
    if max_new_tokens == 0:
        return input_ids
    if seed is not None:
        torch.manual_seed(seed)
    steps = list(decode_steps(model, input_ids, max_new_tokens, settings, attention_mask, eos_token_id, fast))
    return torch.cat([input_ids, torch.stack(trim_after_all_finished(steps, eos_token_id), dim=1)], dim=1)


def check_generation(model, eos_token_id):
    """generate, stream and the sampler need one of our causal LMs; eos_token_id is None, "config" or a token id.
    Returns the id (None: never stop early)."""
    check_causal_lm(model)
    if isinstance(eos_token_id, str) and eos_token_id == "config":
        eos_token_id = model.config.eos_token_id
    return None if eos_token_id is None else check_whole(eos_token_id, "eos_token_id", 0, model.config.vocab_size - 1)


def check_run(model, eos_token_id, max_new_tokens, seed, fast) -> tuple:
    """What generate and stream check alike, besides the sampling settings (``SamplingSettings`` checks those).
    Returns (eos_token_id, max_new_tokens, seed, fast), checked."""
    eos_token_id = check_generation(model, eos_token_id)
    seed = None if seed is None else check_whole(seed, "seed", 0, 2**63 - 1)  # what torch.manual_seed takes
    return eos_token_id, check_whole(max_new_tokens, "max_new_tokens", 0), seed, check_flag(fast, "fast")


def check_length(model, input_ids, max_new_tokens) -> torch.Tensor:
    """The prompt must be a (batch, seq) id tensor and fit, with the new tokens, in n_positions."""
    n_positions = model.config.n_positions
    input_ids = check_input_ids(input_ids, model.config.vocab_size, n_positions)
    if input_ids.shape[1] + max_new_tokens > n_positions:
        raise InputError(
            f"the prompt ({input_ids.shape[1]} tokens) + max_new_tokens ({max_new_tokens}) exceeds "
            f"n_positions ({n_positions}), the longest context of this model: use max_new_tokens <= "
            f"{n_positions - input_ids.shape[1]} or a shorter prompt"
        )
    return input_ids


def stream(
    model: gptj_model.GPTJForCausalLM,
    tok: PreTrainedTokenizerBase,
    prompt: str,
    max_new_tokens: int = 50,
    *,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    eos_token_id: int | str | None = "config",
    seed: int | None = None,
    fast: bool = False,
) -> Iterator[str]:
    """Yield the continuation of ``prompt`` as text, piece by piece, as the tokens arrive. The settings are
    ``generate``'s, with the same defaults; after the same seed the tokens are ``generate``'s too.

    A character such as "漢" or an emoji can span several byte-level tokens; a piece is only yielded once its
    characters are complete, so every piece is valid text and ``"".join(pieces)`` is the decoded continuation.
    """
    eos_token_id, max_new_tokens, seed, fast = check_run(model, eos_token_id, max_new_tokens, seed, fast)
    settings = SamplingSettings(do_sample, temperature, top_k, top_p)
    check_tokenizer(tok)
    prompt = check_text(prompt, "prompt")
    input_ids = tok(prompt, return_tensors="pt").input_ids.to(model.device)  # (1, seq)
    input_ids = check_length(model, input_ids, max_new_tokens)
    if max_new_tokens == 0:
        return
    if seed is not None:
        torch.manual_seed(seed)
    new_ids, shown = [], ""
    for token in decode_steps(model, input_ids, max_new_tokens, settings, eos_token_id=eos_token_id, fast=fast):
        new_ids.append(token.item())
        text = tok.decode(new_ids)
        if not text.endswith("\ufffd"):  # "\ufffd": the last character is still incomplete
            yield text[len(shown) :]
            shown = text
        if new_ids[-1] == eos_token_id:  # finished (the fast loop would only notice a few steps later)
            break
    text = tok.decode(new_ids)
    if len(text) > len(shown):  # a truly broken byte sequence at the very end: show it as decoded
        yield text[len(shown) :]
