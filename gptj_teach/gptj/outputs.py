"""What the models return: the fields and names of ``transformers``' output classes, kept stable here.

An output is a ``transformers.utils.ModelOutput`` (read a field as ``out.logits`` or ``out["logits"]``; fields
left at ``None`` are skipped by ``keys()`` and ``to_tuple()``), so viz, bertviz and any tool written for
``transformers`` read ours too. The KV cache is ``out.cache``, the name ``transformers`` uses since 5.24;
``out.past_key_values``, the name before it, still reads the same object (and, unlike theirs, warns of nothing).

References: ``transformers.modeling_outputs`` (``CausalLMOutputWithPast`` and friends).
"""

from dataclasses import dataclass

import torch
from transformers.utils import ModelOutput

Tensors = tuple[torch.Tensor, ...]


class WithCache:
    """The old name of the cache, for code written before transformers 5.24 renamed it."""

    @property
    def past_key_values(self):
        return self.cache


@dataclass
class BaseModelOutputWithPast(WithCache, ModelOutput):
    """``last_hidden_state`` (batch, seq, n_embd) after ``ln_f``; ``cache``: one (k, v) per layer."""

    last_hidden_state: torch.Tensor | None = None
    cache: tuple | None = None
    hidden_states: Tensors | None = None
    attentions: Tensors | None = None


@dataclass
class CausalLMOutputWithPast(WithCache, ModelOutput):
    """``logits`` (batch, seq, vocab_size); ``loss`` when labels were given."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    cache: tuple | None = None
    hidden_states: Tensors | None = None
    attentions: Tensors | None = None


@dataclass
class SequenceClassifierOutputWithPast(ModelOutput):
    """``logits`` (batch, num_labels), read at each row's last real token."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: Tensors | None = None
    attentions: Tensors | None = None


@dataclass
class QuestionAnsweringModelOutput(ModelOutput):
    """``start_logits`` and ``end_logits`` (batch, seq): where the answer starts and ends."""

    loss: torch.Tensor | None = None
    start_logits: torch.Tensor | None = None
    end_logits: torch.Tensor | None = None
    hidden_states: Tensors | None = None
    attentions: Tensors | None = None
