"""Notebook 12, Fine-tune: the checks of its "your turn" cells."""


import torch
from transformers import GPTJConfig

from ...show import memory
from .grading import _as_number, _check_number, _first_failure, _same_tensor, _shape_hint, _verdict


def _lora_trainable(r: int) -> int:
    """Trainable parameters when peft puts rank-r LoRA on q_proj and v_proj of the tiny model's classifier (2 labels)
    and trains its score head whole: counted by peft itself, on the meta device (nothing allocated)."""
    import peft

    from ...api import GPTJForSequenceClassification
    from ...checkpoint import TINY

    config = GPTJConfig.from_pretrained(TINY, num_labels=2)
    with torch.device("meta"):
        model = GPTJForSequenceClassification(config)
    lora = peft.LoraConfig(r=r, lora_alpha=2 * r, target_modules=["q_proj", "v_proj"], modules_to_save=["score"])
    return peft.get_peft_model(model, lora).get_nb_trainable_parameters()[0]


def check_lora_parameter_count(answer) -> bool:
    """Notebook 12: trainable parameters of rank-8 LoRA on q_proj, v_proj of the tiny classifier, score head included.
    A count is exact: no tolerance."""
    from ...checkpoint import TINY

    config = GPTJConfig.from_pretrained(TINY)
    right, d, r = _lora_trainable(8), config.n_embd, 8
    mistakes = {right - 2 * d: "close: the score head (n_embd x 2 labels) is trained too",
                (right - 2 * d) // 2 + 2 * d: "count both q_proj and v_proj",
                right - config.n_layer * 2 * r * d: "each adapter has two matrices: A (r x n_embd) and B (n_embd x r)",
                (right - 2 * d) // config.n_layer + 2 * d: "that is one layer: LoRA sits in every layer"}
    value, hint = _as_number(answer, "parameters")
    if hint is None and value != right:
        hint = mistakes.get(value, "per layer: 2 adapters (q_proj, v_proj), each A (r x n_embd) + B (n_embd x r); "
                                   "plus the score head (n_embd x 2)")
    return _verdict(hint is None, "A few ten-thousand numbers steer a model of millions: that is why LoRA fits a T4.",
                    hint)


def check_lora_merge(fn) -> bool:
    """Notebook 12: fn(weight (out, in), A (r, in), B (out, r), alpha, r) -> the merged weight W + alpha / r * B @ A."""
    g = torch.Generator().manual_seed(0)
    cases = [(torch.randn(6, 4, generator=g), torch.randn(2, 4, generator=g), torch.randn(6, 2, generator=g), 4, 2),
             (torch.randn(5, 5, generator=g), torch.randn(3, 5, generator=g), torch.randn(5, 3, generator=g), 3, 3)]

    def diagnose(got, expected, args):
        weight, a, b, alpha, r = args
        if hint := _shape_hint(got, expected):
            return hint + " (B @ A is (out, r) @ (r, in) = (out, in), the weight's shape)"
        if torch.allclose(got, weight + b @ a):
            return "scale the update by alpha / r"
        return "the merged weight is W + (alpha / r) * (B @ A)"

    hint = _first_failure(fn, cases, lambda w, a, b, alpha, r: w + alpha / r * (b @ a),
                          lambda got, exp: _same_tensor(got, exp, 1e-5), diagnose)
    return _verdict(hint is None, "After the merge the adapter costs nothing at inference: one matrix, as before.",
                    hint)


def check_nf4_weights_gb(answer) -> bool:
    """Notebook 12: GB (1e9 bytes) of GPT-J 6B's weights stored in 4 bits (half a byte) per parameter."""
    right = memory.parameter_count(GPTJConfig()) / 2 / memory.GB
    mistakes = [(right * 2, "that is 8 bits (1 byte) per parameter: 4 bits is half a byte"),
                (right * 4, "that is fp16: 4 bits is a quarter of fp16's 16"),
                (right * 8, "that is bits: give GB (divide by 8 bits per byte, then by 1e9)")]
    return _check_number(answer, right, "GB", mistakes, "too high: parameters x 0.5 bytes / 1e9",
                         "too low: parameters x 0.5 bytes / 1e9", "3 GB of weights: the 6B and its LoRA training "
                         "fit a 16 GB T4 with room for activations.")
