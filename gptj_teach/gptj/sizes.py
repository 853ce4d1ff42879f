"""The sizes GPT-J derives from its configuration, spelled once: widths, and how many parameters they make.

``GPTJConfig`` leaves two sizes unset by default and means a rule by it: ``rotary_dim=None`` rotates the whole
head, ``n_inner=None`` makes the MLP four times as wide as the model. GPT-J 6B sets ``rotary_dim=64`` of a
``head_dim`` of 256 and leaves ``n_inner`` to the rule (4 x 4096 = 16384).

References: ``transformers.GPTJConfig``; mesh-transformer-jax ``d_head``, ``pe_rotary_dims``.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # named in the hints only: the configuration is transformers' own class
    from transformers import GPTJConfig


def head_dim(config: "GPTJConfig") -> int:
    """The width of one attention head: ``n_embd / n_head`` (256 in GPT-J 6B)."""
    return config.n_embd // config.n_head


def rotary_dim(config: "GPTJConfig") -> int:
    """How many of each head's dimensions rotary turns: ``config.rotary_dim``, or the whole head when unset."""
    return config.rotary_dim or head_dim(config)


def inner_dim(config: "GPTJConfig") -> int:
    """The MLP's hidden width: ``config.n_inner``, or 4 x ``n_embd`` when unset."""
    return config.n_inner or 4 * config.n_embd


def layer_parameter_count(config: "GPTJConfig") -> int:
    """The numbers in one block: ``ln_1`` (2d) + ``q_proj, k_proj, v_proj, out_proj`` (4 d^2, **no biases**)
    + ``fc_in`` (d x inner + inner) + ``fc_out`` (inner x d + d). One LayerNorm only: the block is parallel."""
    d, inner = config.n_embd, inner_dim(config)
    return 2 * d + 4 * d * d + (d * inner + inner) + (inner * d + d)


def parameter_count(config: "GPTJConfig") -> int:
    """Every parameter of ``GPTJForCausalLM(config)``, from the config alone: ``wte`` (vocab x d) + n_layer blocks
    + ``ln_f`` (2d) + ``lm_head`` (d x vocab + vocab: GPT-J's head has a bias and is not tied to ``wte``, unlike
    GPT-2's). GPT-J 6B: 6,050,882,784."""
    d, vocab = config.n_embd, config.vocab_size
    return vocab * d + config.n_layer * layer_parameter_count(config) + 2 * d + (d * vocab + vocab)
