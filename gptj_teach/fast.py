"""A decode as fast as the memory allows: static KV cache, fused attention, one compiled step.

Generating one token reads every weight once (11.7 GB for GPT-J 6B in fp16), so a GPU that copies 3 TB/s
cannot do better than ~257 tokens/s. The eager loop (``sampling.decode_steps``) spends most of its time
elsewhere: hundreds of small kernel launches per token from Python, a KV cache that grows by concatenation
(a new allocation and copy per layer per token), and a mask rebuilt every step. This path removes them:

* a **static KV cache**: one (batch, heads, max_len, head_dim) buffer per layer, allocated once; step ``t``
  writes its keys and values at index ``t`` (``index_copy_``) and attends over the whole buffer with the
  not-yet-written slots masked out, so every step has the same shapes;
* the **fused attention** (``scaled_dot_product_attention``);
* the single-token step **compiled** with ``torch.compile(mode="reduce-overhead")``, which records the step's
  kernels once as a CUDA graph and replays it: one launch per token instead of hundreds;
* sampling stays on the GPU (``torch.multinomial`` on the device; no ``.item()`` per step).

The prompt itself goes through the ordinary model once (prefill), and its keys and values are copied into
the static buffers. Without CUDA, or when compilation fails, ``generate(fast=True)`` warns once and uses the
eager loop. The step also runs uncompiled (``compile=False``), which is how the CPU tests check that it picks
the same tokens as the eager loop.

References: gpt-fast (PyTorch team, 2023) ``generate.py``; ``transformers`` ``StaticCache``.
"""

import math
import warnings

import torch
from torch.nn import functional as F

from .attention import merge_heads, split_heads
from .rotary import apply_rotary
from .sampling import decode_steps, next_token

_warned = False


def static_step(model, token, index, positions, key_mask, cache):
    """One token for every row through the whole model, reading and writing the static cache.

    token: (batch,) ids; index: () the cache slot of this step; positions: (batch,) rotary positions;
    key_mask: (batch, max_len) True where a slot holds a real token; cache: per layer (k, v), each
    (batch, heads, max_len, head_dim). Returns logits (batch, vocab).
    """
    x = model.transformer.wte(token[:, None])  # (batch, 1, n_embd)
    allowed = torch.zeros(key_mask.shape, dtype=x.dtype, device=x.device).masked_fill(~key_mask, -math.inf)
    for block, (k_cache, v_cache) in zip(model.transformer.h, cache):
        attn, h = block.attn, block.ln_1(x)
        q = apply_rotary(split_heads(attn.q_proj(h), attn.n_head), positions[:, None], attn.rotary_dim)
        k = apply_rotary(split_heads(attn.k_proj(h), attn.n_head), positions[:, None], attn.rotary_dim)
        v = split_heads(attn.v_proj(h), attn.n_head)  # (batch, 1, heads, head_dim) all three
        k_cache.index_copy_(2, index[None], k.transpose(1, 2))  # write slot `index`: (batch, heads, 1, head_dim)
        v_cache.index_copy_(2, index[None], v.transpose(1, 2))
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k_cache, v_cache, attn_mask=allowed[:, None, None, :],
                                             scale=1 / math.sqrt(q.shape[-1]))  # (batch, heads, 1, head_dim)
        x = attn.out_proj(merge_heads(out)) + block.mlp(h) + x  # the parallel block: attn + mlp + residual
    return model.lm_head(model.transformer.ln_f(x))[:, -1]  # (batch, vocab)


def prefill(model, input_ids, attention_mask, max_len, static_addresses=False):
    """Run the prompt through the model once; return its last logits and the static cache holding its keys.

    static_addresses: tell torch.compile that the buffers never move, so that the CUDA graph can write into
    them in place (transformers' StaticCache does the same).
    """
    out = model(input_ids, attention_mask=attention_mask, use_cache=True)
    cache = []
    for k, v in out.cache:  # (batch, heads, prompt, head_dim)
        k_static = k.new_zeros(*k.shape[:2], max_len, k.shape[-1])  # (batch, heads, max_len, head_dim)
        v_static = v.new_zeros(*v.shape[:2], max_len, v.shape[-1])
        k_static[:, :, : k.shape[2]] = k
        v_static[:, :, : v.shape[2]] = v
        if static_addresses:
            torch._dynamo.mark_static_address(k_static)
            torch._dynamo.mark_static_address(v_static)
        cache.append((k_static, v_static))
    return out.logits[:, -1], cache


def compiled_step(model):
    """The step compiled once per model with CUDA graphs (cached on the model)."""
    if getattr(model, "_compiled_step", None) is None:
        model._compiled_step = torch.compile(static_step, mode="reduce-overhead", fullgraph=True)
    return model._compiled_step


@torch.inference_mode()
def fast_decode_steps(model, input_ids, max_new_tokens, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                      attention_mask=None, eos_token_id=None, compile=True):
    """Like ``sampling.decode_steps`` (yields (batch,) tokens), on the static cache and the compiled step."""
    if compile and model.device.type != "cuda":
        return fallback(model, input_ids, max_new_tokens, do_sample, temperature, top_k, top_p, attention_mask,
                        eos_token_id, "fast=True needs a CUDA GPU")
    try:
        step = compiled_step(model) if compile else static_step
        tokens = list(static_loop(model, step, input_ids, max_new_tokens, do_sample, temperature, top_k, top_p,
                                  attention_mask, eos_token_id, static_addresses=compile))
        return trim_after_all_finished(tokens, eos_token_id)
    except Exception as error:  # an old GPU, a missing compiler toolchain, ...
        if not compile:
            raise
        return fallback(model, input_ids, max_new_tokens, do_sample, temperature, top_k, top_p, attention_mask,
                        eos_token_id, f"torch.compile failed ({type(error).__name__}: {error})")


def trim_after_all_finished(tokens, eos_token_id):
    """Drop the steps after the one where every row had produced eos (the loop checks only every 16 steps)."""
    if eos_token_id is None:
        return tokens
    done = torch.stack(tokens, dim=1).eq(eos_token_id).cummax(dim=1).values.all(dim=0)  # (steps,)
    return tokens[: int(done.nonzero()[0]) + 1] if done.any() else tokens


def static_loop(model, step, input_ids, max_new_tokens, do_sample, temperature, top_k, top_p, attention_mask,
                eos_token_id, static_addresses=False):
    """The generation loop over the static cache: same stopping rule as ``decode_steps``."""
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    batch, prompt = input_ids.shape
    max_len = prompt + max_new_tokens
    logits, cache = prefill(model, input_ids, attention_mask, max_len, static_addresses)
    key_mask = torch.zeros(batch, max_len, dtype=torch.bool, device=input_ids.device)
    key_mask[:, :prompt] = attention_mask.bool()
    positions = attention_mask.long().sum(-1)  # (batch,) the next rotary position of each row
    finished = torch.zeros(batch, dtype=torch.bool, device=input_ids.device)
    for t in range(max_new_tokens):
        token = next_token(logits, do_sample, temperature, top_k, top_p)  # (batch,) on the device
        if eos_token_id is not None:
            token = token.masked_fill(finished, eos_token_id)
            finished |= token == eos_token_id
        yield token
        if t == max_new_tokens - 1 or (eos_token_id is not None and t % 16 == 15 and finished.all()):
            return  # checking `finished` on the host every 16 steps keeps the GPU busy in between
        key_mask[:, prompt + t] = True
        logits = step(model, token, torch.tensor(prompt + t, device=token.device), positions, key_mask, cache)
        positions = positions + 1


def fallback(model, input_ids, max_new_tokens, do_sample, temperature, top_k, top_p, attention_mask, eos_token_id,
             why):
    """Warn once, then decode with the eager loop."""
    global _warned
    if not _warned:
        warnings.warn(f"{why}: generate(fast=True) falls back to the eager path (same tokens, slower)", stacklevel=4)
        _warned = True
    return list(decode_steps(model, input_ids, max_new_tokens, do_sample, temperature, top_k, top_p, attention_mask,
                             eos_token_id))
