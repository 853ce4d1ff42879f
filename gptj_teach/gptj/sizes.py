"""The sizes GPT-J derives from its configuration, spelled once.

``GPTJConfig`` leaves two sizes unset by default and means a rule by it: ``rotary_dim=None`` rotates the whole
head, ``n_inner=None`` makes the MLP four times as wide as the model. GPT-J 6B sets ``rotary_dim=64`` of a
``head_dim`` of 256 and leaves ``n_inner`` to the rule (4 x 4096 = 16384).

References: ``transformers.GPTJConfig``; mesh-transformer-jax ``d_head``, ``pe_rotary_dims``.
"""


def head_dim(config) -> int:
    """The width of one attention head: ``n_embd / n_head`` (256 in GPT-J 6B)."""
    return config.n_embd // config.n_head


def rotary_dim(config) -> int:
    """How many of each head's dimensions rotary turns: ``config.rotary_dim``, or the whole head when unset."""
    return config.rotary_dim or head_dim(config)


def inner_dim(config) -> int:
    """The MLP's hidden width: ``config.n_inner``, or 4 x ``n_embd`` when unset."""
    return config.n_inner or 4 * config.n_embd
