"""From logits to text: sampling (temperature, top-k, top-p as pure functions), loop (the decode loop with a KV
cache: generate, stream), fast (the same loop on a static cache with the forward compiled)."""

import importlib

from .loop import decode_steps, generate, stream

__all__ = ["decode_steps", "generate", "stream"]

MODULES = {'fast', 'loop', 'sampling'}


def __getattr__(name):
    """``gt.generation.fast`` and the like: the module, imported on first use."""
    if name in MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
