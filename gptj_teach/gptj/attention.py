"""Causal self-attention with a KV cache: every token looks back at the tokens before it.

For each head: ``softmax(q k^T / sqrt(head_dim) + mask) v``. GPT-J's details:

* q, k, v and the output projection have **no bias** (GPT-2's do);
* rotary position embeddings are applied to q and k (see ``rotary.py``), there is no position table;
* the scores and the softmax are computed in **fp32** even when the model runs in fp16, then the
  probabilities are cast back to the model dtype before they multiply v;
* the KV cache (``cache.py``) keeps the keys and values of the tokens already seen, so that generating token
  ``t`` costs one new query instead of recomputing all ``t`` rows: ``cache.update`` stores this step's keys and
  values and hands back all of them.

Two ways to compute the same thing: ``plain_attention`` shows every step and returns the attention weights
(in the ``transformers`` layout, so bertviz takes them directly); ``fused_attention`` calls PyTorch's
``scaled_dot_product_attention``, which never materialises the weights and is faster. Tests prove them equal.

References: Vaswani et al. (2017); GPT-J / mesh-transformer-jax; ``transformers`` ``GPTJAttention``.
"""

import math

import torch
from torch import nn
from torch.nn import functional as F

from .cache import KVCache
from .rotary import Rotary, fixed_pos_embedding
from .sizes import rotary_dim


def attention_weights(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Who looks at whom. q: (batch, heads, q_len, head_dim); k: (batch, heads, kv_len, head_dim);
    mask: additive, (batch or 1, 1, q_len, kv_len): 0 where a query may look, a huge negative number elsewhere.

    Returns softmax(q k^T / sqrt(head_dim) + mask), computed in fp32, cast back to q's dtype:
    (batch, heads, q_len, kv_len), each row sums to 1.
    """
    scores = torch.matmul(q.float(), k.float().transpose(-1, -2))  # (batch, heads, q_len, kv_len), fp32
    scores = scores / math.sqrt(q.shape[-1])
    scores = scores + mask  # masked positions become ~ -3.4e38 and vanish in the softmax
    return F.softmax(scores, dim=-1).to(q.dtype)


def plain_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention step by step: the weights, then their weighted sum of v. v: (batch, heads, kv_len, head_dim).

    Returns (output (batch, heads, q_len, head_dim), weights (batch, heads, q_len, kv_len)).
    """
    weights = attention_weights(q, k, mask)
    return torch.matmul(weights, v), weights  # (batch, heads, q_len, kv_len) @ (.., kv_len, head_dim)


def fused_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The same computation in one fused PyTorch call (no weights returned). Shapes as ``plain_attention``."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask.to(q.dtype), scale=1 / math.sqrt(q.shape[-1]))


def split_heads(x: torch.Tensor, n_head: int) -> torch.Tensor:
    """(batch, seq, n_embd) -> (batch, seq, heads, head_dim)."""
    return x.view(*x.shape[:-1], n_head, x.shape[-1] // n_head)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(batch, heads, seq, head_dim) -> (batch, seq, n_embd)."""
    x = x.transpose(1, 2)  # (batch, seq, heads, head_dim)
    return x.reshape(*x.shape[:2], -1)  # (batch, seq, heads * head_dim)


class GPTJAttention(nn.Module):
    """Multi-head causal self-attention with rotary on q and k. Attribute names follow ``transformers``."""

    def __init__(self, config, layer_idx: int = 0):
        super().__init__()
        n_embd = config.n_embd
        self.n_head = config.n_head
        self.layer_idx = layer_idx  # which layer's keys and values this attention stores in the cache
        self.rotary_dim = rotary_dim(config)
        self.k_proj = nn.Linear(n_embd, n_embd, bias=False)  # k, v, q: transformers' order, so that state
        self.v_proj = nn.Linear(n_embd, n_embd, bias=False)  # dicts list their keys identically
        self.q_proj = nn.Linear(n_embd, n_embd, bias=False)
        self.out_proj = nn.Linear(n_embd, n_embd, bias=False)
        self.rotary_q = Rotary(self.rotary_dim)  # weightless: named only so that hooks can reach q and k
        self.rotary_k = Rotary(self.rotary_dim)
        self.attn_dropout = nn.Dropout(config.attn_pdrop)
        self.resid_dropout = nn.Dropout(config.resid_pdrop)

    def forward(
        self,
        x: torch.Tensor,
        position_ids: torch.Tensor,
        mask: torch.Tensor,
        cache: KVCache | None = None,
        output_attentions: bool = False,
        rotation: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: (batch, seq, n_embd); position_ids: (batch, seq); mask: (batch or 1, 1, seq, keys), keys = every
        token the cache holds after this step; cache: a ``DynamicCache`` / ``StaticCache`` or None; rotation: the
        table ``fixed_pos_embedding(position_ids, ...)`` when the caller has it (the model builds it once for all
        layers).

        Returns (output (batch, seq, n_embd), attention weights (batch, heads, seq, keys) or None).
        """
        if rotation is None:
            rotation = fixed_pos_embedding(position_ids, self.rotary_dim, x.dtype)  # sin, cos: (batch, seq, rot // 2)
        q = self.rotary_q(split_heads(self.q_proj(x), self.n_head), *rotation)
        k = self.rotary_k(split_heads(self.k_proj(x), self.n_head), *rotation)
        v = split_heads(self.v_proj(x), self.n_head)  # (batch, seq, heads, head_dim) all three
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (batch, heads, seq, head_dim)
        if cache is not None:  # store this step's keys and values, get back those of every token so far
            k, v = cache.update(k, v, self.layer_idx)  # (batch, heads, keys, head_dim)
        if output_attentions or (self.training and self.attn_dropout.p > 0):
            weights = attention_weights(q, k, mask)  # (batch, heads, seq, keys)
            out = torch.matmul(self.attn_dropout(weights), v)  # (batch, heads, seq, head_dim)
        else:
            out, weights = fused_attention(q, k, v, mask), None
        return self.resid_dropout(self.out_proj(merge_heads(out))), weights  # (batch, seq, n_embd)
