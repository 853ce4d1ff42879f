"""Notebook 12, Fine-tune: the checks of its "your turn" cells."""

import torch
from transformers import GPTJConfig

from ...show import memory
from .grading import _as_number, _call, _check_number, _first_failure, _same_tensor, _shape_hint, _verdict


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
    mistakes = {
        right - 2 * d: "close: the score head (n_embd x 2 labels) is trained too",
        (right - 2 * d) // 2 + 2 * d: "count both q_proj and v_proj",
        right - config.n_layer * 2 * r * d: "each adapter has two matrices: A (r x n_embd) and B (n_embd x r)",
        (right - 2 * d) // config.n_layer + 2 * d: "that is one layer: LoRA sits in every layer",
    }
    value, hint = _as_number(answer, "parameters")
    if hint is None and value != right:
        hint = mistakes.get(
            value,
            "per layer: 2 adapters (q_proj, v_proj), each A (r x n_embd) + B (n_embd x r); "
            "plus the score head (n_embd x 2)",
        )
    return _verdict(
        hint is None, "A few ten-thousand numbers steer a model of millions: that is why LoRA fits a T4.", hint
    )


def check_lora_merge(fn) -> bool:
    """Notebook 12: fn(weight (out, in), A (r, in), B (out, r), alpha, r) -> the merged weight W + alpha / r * B @ A."""
    g = torch.Generator().manual_seed(0)
    cases = [
        (torch.randn(6, 4, generator=g), torch.randn(2, 4, generator=g), torch.randn(6, 2, generator=g), 4, 2),
        (torch.randn(5, 5, generator=g), torch.randn(3, 5, generator=g), torch.randn(5, 3, generator=g), 3, 3),
    ]

    def diagnose(got, expected, args):
        weight, a, b, alpha, r = args
        if hint := _shape_hint(got, expected):
            return hint + " (B @ A is (out, r) @ (r, in) = (out, in), the weight's shape)"
        if torch.allclose(got, weight + b @ a):
            return "scale the update by alpha / r"
        return "the merged weight is W + (alpha / r) * (B @ A)"

    hint = _first_failure(
        fn,
        cases,
        lambda w, a, b, alpha, r: w + alpha / r * (b @ a),
        lambda got, exp: _same_tensor(got, exp, 1e-5),
        diagnose,
    )
    return _verdict(
        hint is None, "After the merge the adapter costs nothing at inference: one matrix, as before.", hint
    )


NF4_BITS = 4 + 32 / 64  # a 4-bit code per weight, and one fp32 absmax per block of 64 weights (QLoRA, sec. 3)


def check_nf4_weights_gb(answer) -> bool:
    """Notebook 12: GB (1e9 bytes) of GPT-J 6B's weights in NF4: 4.5 bits per parameter (the 4-bit code plus its
    share of its block's fp32 absmax)."""
    params = memory.parameter_count(GPTJConfig())
    right = params * NF4_BITS / 8 / memory.GB
    mistakes = [
        (
            params * 0.5 / memory.GB,
            "that is 4 bits flat: each block of 64 weights also stores its fp32 absmax (32 bits shared by 64 weights)",
        ),
        (params / memory.GB, "that is 8 bits (1 byte) per parameter"),
        (params * 2 / memory.GB, "that is fp16 (2 bytes per parameter)"),
        (params * NF4_BITS / memory.GB, "that is bits: give GB (divide by 8 bits per byte, then by 1e9)"),
    ]
    return _check_number(
        answer,
        right,
        "GB",
        mistakes,
        "too high: parameters x (4 + 32 / 64) bits / 8 / 1e9",
        "too low: parameters x (4 + 32 / 64) bits / 8 / 1e9",
        "3.4 GB of weights: the 6B and its LoRA training fit a 16 GB T4 with room for activations.",
    )


def _linear_case():
    """A small nn.Linear (6 -> 5, with bias) and an input (2, 3, 6), drawn without touching the global stream."""
    g = torch.Generator().manual_seed(0)
    base = torch.nn.Linear(6, 5)
    with torch.no_grad():
        base.weight.copy_(torch.randn(5, 6, generator=g))
        base.bias.copy_(torch.randn(5, generator=g))
    return base, torch.randn(2, 3, 6, generator=g)


def _build(fn, args, not_callable: str, returned_none: str):
    """(fn(*args), None) with the global random stream left alone, or (None, the hint for what went wrong)."""
    if not callable(fn):
        return None, not_callable
    with torch.random.fork_rng(devices=[]):
        got, hint = _call(fn, args)
    return got, hint or (returned_none if got is None else None)


def check_lora_linear(cls) -> bool:
    """Notebook 12: cls(base nn.Linear, r, alpha), a module with ``base`` frozen, ``A`` (r, in) random and ``B``
    (out, r) zero as trainable Parameters, ``scale`` = alpha / r, and forward(x) = base(x) + scale * x A^T B^T."""
    base, x = _linear_case()
    layer, hint = _build(
        cls,
        (base, 2, 4.0),
        "pass your class itself, e.g. check(MyLoRALinear)",
        "your class returned None: is MyLoRALinear a class (class MyLoRALinear(torch.nn.Module))?",
    )
    hint = hint or _lora_layer_hint(layer, base, x)
    return _verdict(
        hint is None,
        "Two thin matrices beside a frozen one: the layer starts as it was and learns a rank-r change.",
        hint,
    )


def _lora_layer_hint(layer, base, x) -> str | None:
    """What is wrong with a LoRA layer built on ``base`` with r = 2, alpha = 4 (None: nothing)."""
    A, B = getattr(layer, "A", None), getattr(layer, "B", None)
    if not (isinstance(A, torch.nn.Parameter) and isinstance(B, torch.nn.Parameter)):
        return "make self.A and self.B torch.nn.Parameter's, so that the optimizer finds them"
    if A.shape != (2, 6) or B.shape != (5, 2):
        return (
            f"A is (r, in_features) = (2, 6) and B is (out_features, r) = (5, 2); yours are {tuple(A.shape)}, "
            f"{tuple(B.shape)}"
        )
    if base.weight.requires_grad or base.bias.requires_grad:
        return "freeze the base layer (self.base.requires_grad_(False)): only A and B train"
    if not (A.requires_grad and B.requires_grad):
        return "A and B must train (requires_grad True)"
    if torch.count_nonzero(B) or not torch.count_nonzero(A):
        return "B starts at zero and A at random: the layer starts as the base layer, and gradients still reach B"
    if getattr(layer, "scale", None) != 2.0:
        return "self.scale is alpha / r"
    with torch.no_grad():
        B.copy_(torch.randn(B.shape, generator=torch.Generator().manual_seed(1)))
        got, hint = _call(layer, (x,))
        if hint is not None:
            return hint
        right, update = base(x), x @ A.T @ B.T  # (2, 3, 5) each
        if not isinstance(got, torch.Tensor) or got.shape != right.shape:
            return f"forward returns a tensor of shape {tuple(right.shape)}: base(x) + scale * x A^T B^T"
        wrong = {
            "scale the update by self.scale (alpha / r)": right + update,
            "add the base layer's output: base(x) + scale * x A^T B^T": 2 * update,
        }
        if not torch.allclose(got, right + 2 * update, atol=1e-5):
            return next(
                (
                    msg
                    for msg, value in wrong.items()
                    if value.shape == got.shape and torch.allclose(got, value, atol=1e-5)
                ),
                "forward(x) = base(x) + scale * (x @ A.T @ B.T)",
            )
    return None


def _small_classifier():
    """A 2-layer random GPTJForSequenceClassification (n_embd 32, 2 labels) and a batch of ids."""
    from ...api import GPTJForSequenceClassification

    config = GPTJConfig(
        n_embd=32,
        n_head=4,
        rotary_dim=4,
        n_layer=2,
        n_positions=64,
        vocab_size=97,
        num_labels=2,
        pad_token_id=0,
        bos_token_id=0,
        eos_token_id=0,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return GPTJForSequenceClassification(config).eval(), torch.randint(1, 97, (2, 6))


def check_add_lora(fn) -> bool:
    """Notebook 12: fn(model, r, alpha) puts a LoRA layer on q_proj and v_proj of every block, freezes every other
    weight but the new score head, and returns the model."""
    model, x = _small_classifier()
    with torch.no_grad():
        before = model(x).logits  # (2, 2)
    got, hint = _build(
        fn,
        (model, 4, 8.0),
        "pass your function itself, e.g. check(add_lora), not add_lora()",
        "your function returned None: `return model` once the adapters are in",
    )
    hint = hint or _add_lora_hint(got, x, before)
    return _verdict(
        hint is None,
        "peft's get_peft_model does just this: find the modules by name, wrap them, freeze the rest.",
        hint,
    )


def _add_lora_hint(model, x, before) -> str | None:
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    adapted = [f"transformer.h.{i}.attn.{t}." for i in range(model.config.n_layer) for t in ("q_proj", "v_proj")]
    if not any(n.startswith(p) for n in trainable for p in adapted):
        return "no adapter trains: freeze the model first, then wrap (new A and B are created trainable)"
    if "score.weight" not in trainable:
        return "the score head is new (random): leave it trainable"
    for prefix in adapted:
        if not any(n.startswith(prefix) for n in trainable):
            return (
                f"{prefix[:-1]} has nothing to train: wrap q_proj and v_proj of every block "
                "(for block in model.transformer.h)"
            )
    if any(n != "score.weight" and not any(n.startswith(p) for p in adapted) for n in trainable):
        return "freeze everything else first (p.requires_grad_(False) for every parameter), then add the adapters"
    per_block = 2 * (4 * 32 + 32 * 4)
    count = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if count != model.config.n_layer * per_block + 2 * 32:
        return "only the adapters' A and B train in q_proj and v_proj: their base weights stay frozen"
    with torch.no_grad():
        got, hint = _call(model, (x,))
    if hint is None and not torch.allclose(got.logits, before, atol=1e-5):
        return "before training, the model with adapters must give the logits it gave without them (B starts at 0)"
    return hint
