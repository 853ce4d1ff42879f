"""The model classes the package hands out: ``gptj/model.py``'s, with every input checked first.

``gptj/model.py`` is the model as a student reads it, with no line that is not the model. Given a wrong input it
fails deep inside torch, or worse, silently: an id past the vocabulary reads another row on some GPUs, a mask
of the wrong length broadcasts. So ``gt.GPTJForCausalLM`` (and what ``gt.load`` returns) is a subclass whose
``forward`` checks its inputs (``checks.py``: one message that says what to do) and then calls the model's own
``forward`` unchanged: the same parameters, outputs and numbers. Here too: building one from a
``transformers`` model without a copy (``from_transformers``) and writing a checkpoint (``save_pretrained``).

The compiled decode (``generation/fast.py``) traces the model's own ``forward``: the loop checks its inputs once,
before the first step.
"""

import copy
import os
from pathlib import Path
from typing import TypeVar

import torch

from .checks import (
    check_attention_mask,
    check_cache,
    check_config,
    check_dtype,
    check_flag,
    check_input_ids,
    check_position_ids,
    check_tensor,
    check_token_labels,
    check_whole,
)
from .errors import InputError, InputTypeError
from .gptj import model
from .gptj.cache import KVCache
from .gptj.outputs import (
    BaseModelOutputWithPast,
    CausalLMOutputWithPast,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutputWithPast,
)
from .saving import write_checkpoint


def cache_argument(cache, past_key_values):
    """The cache a caller passed, under its new name (``cache``) or its old one (``past_key_values``)."""
    if cache is not None and past_key_values is not None:
        raise InputError("pass the KV cache once: as cache= (past_key_values= is its older name), not both")
    return past_key_values if cache is None else cache


def check_body_inputs(
    body: model.GPTJModel,
    input_ids,
    attention_mask,
    cache,
    position_ids,
    use_cache=False,
    output_attentions=False,
    output_hidden_states=False,
) -> dict:
    """Every argument of ``GPTJModel.forward``, checked, as the keyword arguments the model's forward takes."""
    batch, seq = check_tensor(input_ids, "input_ids", 2).shape
    device = body.wte.weight.device
    if input_ids.device != device:
        raise InputError(
            f"input_ids is on {input_ids.device} but the model is on {device}: move it with input_ids.to(model.device)"
        )
    if cache is not None:
        cache = check_cache(cache, body.config, batch, seq, body.ln_f.weight.dtype, device)
    past = 0 if cache is None else cache.key_length(seq) - seq  # keys attention sees besides the new ones
    input_ids = check_input_ids(input_ids, body.config.vocab_size, body.config.n_positions, past)
    attention_mask = check_attention_mask(attention_mask, batch, past + seq)
    position_ids = check_position_ids(position_ids, batch, seq, body.config.n_positions)
    for name, tensor in (("attention_mask", attention_mask), ("position_ids", position_ids)):
        if tensor is not None and tensor.device != input_ids.device:
            raise InputError(
                f"{name} is on {tensor.device} but input_ids is on {input_ids.device}: "
                f"move it with .to(input_ids.device)"
            )
    return dict(
        input_ids=input_ids,
        attention_mask=attention_mask,
        cache=cache,
        position_ids=position_ids,
        use_cache=check_flag(use_cache, "use_cache"),
        output_attentions=check_flag(output_attentions, "output_attentions"),
        output_hidden_states=check_flag(output_hidden_states, "output_hidden_states"),
    )


P = TypeVar("P", bound="Public")  # from_transformers returns the class it is called on


class Public:
    """What the public classes add to the model's: a checked config, building from ``transformers``, saving."""

    def __init__(self, config):
        check_config(config)
        super().__init__(config)  # the model's class, next in the method resolution order

    @classmethod
    def from_transformers(cls: type[P], hf_model: torch.nn.Module) -> P:
        """Wrap a ``transformers`` GPT-J model of the same kind: the parameters are *its* tensors (no copy)."""
        if type(hf_model).__name__ != cls.__name__:
            raise InputTypeError(
                f"{cls.__name__}.from_transformers needs a transformers {cls.__name__}, got {type(hf_model).__name__}"
            )
        with torch.device("meta"):  # allocate nothing: every parameter is replaced just below
            built = cls(hf_model.config)
        built.load_state_dict(hf_model.state_dict(), strict=True, assign=True)  # assign: take the tensors themselves
        return built.train(hf_model.training)

    def save_pretrained(self, path: str | os.PathLike, dtype: torch.dtype | str | None = None) -> Path:
        """Write ``config.json`` + ``model.safetensors`` (Hugging Face layout) that ``transformers`` loads.

        dtype: store the weights in this dtype (fp16 halves the file); config.json keeps the model's own dtype,
        which is what ``transformers`` loads into by default. All or nothing: a save that fails or is killed
        leaves the checkpoint that was there loadable, and files of another layout (shards, ``.bin``) are
        removed so that no reader picks them over the new ones (``saving.py``). Returns the directory.
        """
        dtype = None if dtype is None else check_dtype(dtype)
        config = copy.deepcopy(self.config)
        config.architectures = [type(self).__name__]
        config.dtype = self.dtype  # the dtype to compute in; `dtype` only sets how the weights are stored
        state = {name: t.detach().to("cpu", dtype or t.dtype).contiguous() for name, t in self.state_dict().items()}
        return write_checkpoint(path, config, state)  # new files renamed over the old: see saving.py


class GPTJModel(Public, model.GPTJModel):
    __doc__ = model.GPTJModel.__doc__

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        position_ids: torch.Tensor | None = None,
        use_cache: bool = False,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        past_key_values: KVCache | None = None,
    ) -> BaseModelOutputWithPast:
        """``gptj/model.py``'s forward, inputs checked first; ``past_key_values`` is the cache's older name."""
        return super().forward(
            **check_body_inputs(
                self,
                input_ids,
                attention_mask,
                cache_argument(cache, past_key_values),
                position_ids,
                use_cache,
                output_attentions,
                output_hidden_states,
            )
        )


class GPTJForCausalLM(Public, model.GPTJForCausalLM):
    __doc__ = model.GPTJForCausalLM.__doc__

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        position_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        use_cache: bool = False,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        past_key_values: KVCache | None = None,
        logits_to_keep: int = 0,
    ) -> CausalLMOutputWithPast:
        """``gptj/model.py``'s forward, inputs checked first; ``past_key_values`` is the cache's older name."""
        inputs = check_body_inputs(
            self.transformer,
            input_ids,
            attention_mask,
            cache_argument(cache, past_key_values),
            position_ids,
            use_cache,
            output_attentions,
            output_hidden_states,
        )
        logits_to_keep = check_whole(logits_to_keep, "logits_to_keep", 0)
        if logits_to_keep and labels is not None:
            raise InputError("labels score every position: pass logits_to_keep=0 (the default) with labels")
        if labels is not None:
            labels = check_token_labels(labels, inputs["input_ids"].shape, self.config.vocab_size)
        return super().forward(**inputs, labels=labels, logits_to_keep=logits_to_keep)


class GPTJForSequenceClassification(Public, model.GPTJForSequenceClassification):
    __doc__ = model.GPTJForSequenceClassification.__doc__

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ) -> SequenceClassifierOutputWithPast:
        """``gptj/model.py``'s forward, inputs checked first (labels of the three kinds: ``classification_loss``)."""
        pad = getattr(self.config, "pad_token_id", None)  # unset, it is no attribute at all in some 5.x releases
        if pad is not None:
            check_whole(pad, "config.pad_token_id", 0, self.config.vocab_size - 1)
        inputs = check_body_inputs(
            self.transformer,
            input_ids,
            attention_mask,
            None,
            position_ids,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        if pad is None and input_ids.shape[0] != 1:
            raise InputError(
                "a batch above 1 needs config.pad_token_id to find each row's last token: "
                "set it (GPT-J has no pad token; tok.eos_token_id is the usual choice)"
            )
        if labels is not None:
            labels = check_class_labels(labels, (input_ids.shape[0], self.config.num_labels))
        return super().forward(
            inputs["input_ids"],
            inputs["attention_mask"],
            inputs["position_ids"],
            labels,
            inputs["output_attentions"],
            inputs["output_hidden_states"],
        )


def check_class_labels(labels, shape) -> torch.Tensor:
    """Labels of the three kinds ``classification_loss`` takes, for a pooled output of ``shape`` (batch, num_labels)."""
    batch, num_labels = shape
    labels = check_tensor(labels, "labels", None, "labels")  # the shape depends on the kind: checked below
    if num_labels == 1 or labels.dtype.is_floating_point:  # regression targets or multi-hot floats
        want = (batch,) if num_labels == 1 else (batch, num_labels)
        if labels.numel() != batch * num_labels or (num_labels > 1 and tuple(labels.shape) != want):
            raise InputError(f"labels must have shape {want} (float targets), got {tuple(labels.shape)}")
        return labels.float()
    if tuple(labels.shape) not in ((batch,), (batch, 1)) or ((labels < 0) | (labels >= num_labels)).any():
        raise InputError(
            f"labels must be {batch} class ids in [0, {num_labels}) (shape ({batch},)), got "
            f"{tuple(labels.shape)} with values {labels.flatten()[:8].tolist()}"
        )
    return labels.long()


class GPTJForQuestionAnswering(Public, model.GPTJForQuestionAnswering):
    __doc__ = model.GPTJForQuestionAnswering.__doc__

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        start_positions: torch.Tensor | None = None,
        end_positions: torch.Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ) -> QuestionAnsweringModelOutput:
        """``gptj/model.py``'s forward, inputs checked first."""
        inputs = check_body_inputs(
            self.transformer,
            input_ids,
            attention_mask,
            None,
            position_ids,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        if (start_positions is None) != (end_positions is None):
            raise InputError("pass both start_positions and end_positions (for the loss), or neither")
        if start_positions is not None:
            for name, value in (("start_positions", start_positions), ("end_positions", end_positions)):
                if check_tensor(value, name, None).numel() != input_ids.shape[0]:
                    raise InputError(
                        f"{name} must hold one token index per row ({input_ids.shape[0]}), got {tuple(value.shape)}"
                    )
        return super().forward(
            inputs["input_ids"],
            inputs["attention_mask"],
            inputs["position_ids"],
            start_positions,
            end_positions,
            inputs["output_attentions"],
            inputs["output_hidden_states"],
        )
