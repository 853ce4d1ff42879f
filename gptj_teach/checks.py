"""Clear errors for bad input, raised before the input reaches torch.

A wrong token id deep inside ``nn.Embedding`` is an ``IndexError`` on the CPU and a device-side assert on a
GPU; both say nothing about what to fix. Each check here names the problem and the fix.
"""

import torch


def check_config(config) -> None:
    """Refuse configs that are not GPT-J or whose sizes do not fit together."""
    if getattr(config, "model_type", None) != "gptj":
        raise ValueError(
            f"expected a GPT-J config (model_type 'gptj'), got model_type {getattr(config, 'model_type', None)!r}: "
            "gptj_teach implements GPT-J only; build one with transformers.GPTJConfig(...)"
        )
    if config.n_embd % config.n_head:
        raise ValueError(f"n_embd ({config.n_embd}) must be divisible by n_head ({config.n_head})")
    head_dim = config.n_embd // config.n_head
    rotary_dim = config.rotary_dim or head_dim
    if rotary_dim % 2 or not 0 < rotary_dim <= head_dim:
        raise ValueError(f"rotary_dim ({config.rotary_dim}) must be even and at most head_dim ({head_dim})")


def check_input_ids(input_ids, vocab_size: int, n_positions: int, past_length: int = 0) -> None:
    """input_ids: a (batch, seq) integer tensor of ids in [0, vocab_size), with past + seq <= n_positions."""
    if not isinstance(input_ids, torch.Tensor):
        raise TypeError(f"input_ids must be a torch.Tensor of token ids, got {type(input_ids).__name__}; "
                        "use tok(text, return_tensors='pt').input_ids")
    if input_ids.dtype.is_floating_point or input_ids.dtype.is_complex or input_ids.dtype == torch.bool:
        raise TypeError(f"input_ids must hold integer token ids, got dtype {input_ids.dtype}; convert with .long()")
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must have shape (batch, seq), got {tuple(input_ids.shape)}; "
                         "for a single sequence use input_ids[None]")
    if input_ids.shape[1] == 0:
        raise ValueError("input_ids is empty (seq length 0): give the model at least one token")
    if input_ids.numel() and (input_ids.min() < 0 or input_ids.max() >= vocab_size):
        bad = input_ids[(input_ids < 0) | (input_ids >= vocab_size)][0].item()
        raise ValueError(f"token id {bad} is outside the vocabulary [0, {vocab_size}): "
                         "was this text encoded with the GPT-J tokenizer (gt.load_tokenizer())?")
    if past_length + input_ids.shape[1] > n_positions:
        raise ValueError(f"{past_length} cached + {input_ids.shape[1]} new tokens exceed n_positions "
                         f"({n_positions}), the longest context this model supports: shorten the prompt")


def check_attention_mask(attention_mask, batch: int, total_length: int) -> None:
    """attention_mask: (batch, past + seq) of 0 (padding) and 1 (real token)."""
    if attention_mask is None:
        return
    if tuple(attention_mask.shape) != (batch, total_length):
        raise ValueError(f"attention_mask must have shape (batch, past + seq) = {(batch, total_length)}, "
                         f"got {tuple(attention_mask.shape)}: one 0/1 entry per token, cached ones included")
    if ((attention_mask != 0) & (attention_mask != 1)).any():
        raise ValueError("attention_mask must hold only 0 (padding) and 1 (real token)")
