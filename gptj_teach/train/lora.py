"""LoRA (Hu et al., 2021): fine-tune a big model by training, beside each chosen frozen linear layer, two thin
matrices whose product is a rank-r change of its weight.

    y = base(x) + (alpha / r) * x A^T B^T        A: (r, in_features), B: (out_features, r)

A starts random (as ``nn.Linear`` draws a weight: Kaiming-uniform with a = sqrt(5)) and B at zero, so before any
step the layer computes exactly what the frozen one did, and the first gradients still reach B (through A).
``merged()`` folds the trained change into the weight, W + (alpha / r) B A: a plain ``nn.Linear`` again, with no
cost at inference. This is what ``peft``'s ``LoraLayer`` computes for ``init_lora_weights=True`` and no dropout;
notebook 12 shows a model with these layers equal to ``peft``'s.

Notebook 12 asks the learner to write ``MyLoRALinear`` and ``add_lora``; this module is the package's answer, which
an unfilled notebook falls back to (``gt.classroom.fallback``) and which the graded cells refuse as a learner's own.
"""

import math

import torch
from torch import nn

from ..checks import check_whole
from ..errors import InputError, InputTypeError


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` (``base``) plus a trainable rank-``r`` update scaled by ``alpha / r``."""

    def __init__(self, base: nn.Linear, r: int, alpha: float):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise InputTypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}")
        r = check_whole(r, "r", 1, min(base.in_features, base.out_features))
        if not (isinstance(alpha, int | float) and alpha > 0):
            raise InputError(f"alpha must be a positive number (peft's lora_alpha, often 2 r), got {alpha!r}")
        self.r, self.alpha, self.scale = r, alpha, alpha / r
        self.base = base.requires_grad_(False)
        like = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.A = nn.Parameter(torch.empty(r, base.in_features, **like))  # (r, in)
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        self.B = nn.Parameter(torch.zeros(base.out_features, r, **like))  # (out, r)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scale * (x @ self.A.T @ self.B.T)  # (..., in) -> (..., r) -> (..., out)

    def merged(self) -> nn.Linear:
        """The plain ``nn.Linear`` with the update folded into its weight: W + (alpha / r) B A."""
        base = self.base
        linear = nn.Linear(base.in_features, base.out_features, bias=base.bias is not None)
        linear.to(base.weight.device, base.weight.dtype).load_state_dict(base.state_dict())
        with torch.no_grad():
            linear.weight.add_(self.scale * (self.B @ self.A))  # (out, r) @ (r, in) -> (out, in)
        return linear


def add_lora(model: nn.Module, r: int, alpha: float, layer: type = LoRALinear) -> nn.Module:
    """Freeze ``model`` (a ``GPTJForSequenceClassification``), put a ``layer(base, r, alpha)`` on ``q_proj`` and
    ``v_proj`` of every block (LoRA's usual choice, and ``peft``'s ``target_modules=["q_proj", "v_proj"]``), and
    leave the new ``score`` head trainable; returns the model."""
    if not hasattr(model, "score"):
        raise InputTypeError(f"add_lora needs a sequence classifier (with a `score` head), got {type(model).__name__}")
    model.requires_grad_(False)
    for block in model.transformer.h:
        for name in ("q_proj", "v_proj"):
            setattr(block.attn, name, layer(getattr(block.attn, name), r, alpha))
    model.score.requires_grad_(True)
    return model
