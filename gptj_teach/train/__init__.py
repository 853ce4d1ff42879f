"""Training your own: corpus (the Python standard library as token windows), loop (AdamW, the schedule, fit,
evaluate), fused_loss (the lm_head and the loss in chunks, so the full logits never exist at once), lora (a frozen
linear layer plus a trainable low-rank update, for fine-tuning)."""

import importlib

MODULES = {"corpus", "fused_loss", "lora", "loop"}


def __getattr__(name):
    """``gt.train.corpus`` and the like: the module, imported on first use."""
    if name in MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
