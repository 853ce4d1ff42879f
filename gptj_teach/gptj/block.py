"""The MLP and GPT-J's *parallel* transformer block.

GPT-2's block is sequential: ``x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))``. GPT-J's is parallel: one
LayerNorm output feeds attention and the MLP side by side, and both results are added to the residual::

    h = ln_1(x)
    x = attn(h) + mlp(h) + x          # in this order: another order differs in the last bits (~1e-7 relative)

There is no ``ln_2``. The two branches can run at the same time, which made GPT-J faster to train on TPUs
at a negligible cost in quality.

References: Wang & Komatsuzaki, GPT-J-6B (2021), mesh-transformer-jax; ``transformers`` ``GPTJBlock``/``GPTJMLP``.
"""

import math

import torch
from torch import nn

from .attention import GPTJAttention
from .cache import KVCache
from .sizes import inner_dim


def gelu_new(x: torch.Tensor) -> torch.Tensor:
    """GELU, tanh approximation (GPT-2 / GPT-J's ``gelu_new``): ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``.

    Written exactly like ``transformers.activations.NewGELUActivation`` so results match to the last bit.
    """
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class NewGELU(nn.Module):
    """``gelu_new`` as a module (``transformers``' ``NewGELUActivation``): the MLP's activation gets a name,
    ``mlp.act``, where a forward hook can read the activations after the nonlinearity."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gelu_new(x)


class GPTJMLP(nn.Module):
    """The feed-forward network: ``fc_out(gelu_new(fc_in(x)))``, n_embd -> n_inner (4 x n_embd) -> n_embd, biases."""

    def __init__(self, config):
        super().__init__()
        n_inner = inner_dim(config)
        self.fc_in = nn.Linear(config.n_embd, n_inner)
        self.act = NewGELU()
        self.fc_out = nn.Linear(n_inner, config.n_embd)
        self.dropout = nn.Dropout(config.resid_pdrop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, seq, n_embd) -> (batch, seq, n_embd)."""
        return self.dropout(self.fc_out(self.act(self.fc_in(x))))  # inside: (batch, seq, n_inner)


class GPTJBlock(nn.Module):
    """One transformer layer: ``x + attn(ln_1(x)) + mlp(ln_1(x))``."""

    def __init__(self, config, layer_idx: int = 0):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.attn = GPTJAttention(config, layer_idx)
        self.mlp = GPTJMLP(config)

    def forward(
        self,
        x: torch.Tensor,
        position_ids: torch.Tensor,
        mask: torch.Tensor,
        cache: KVCache | None = None,
        output_attentions: bool = False,
        rotation: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: (batch, seq, n_embd); the other arguments go to attention. Returns (x (batch, seq, n_embd),
        attention weights or None)."""
        h = self.ln_1(x)  # one LayerNorm for both branches
        attn_out, weights = self.attn(h, position_ids, mask, cache, output_attentions, rotation)
        return attn_out + self.mlp(h) + x, weights
