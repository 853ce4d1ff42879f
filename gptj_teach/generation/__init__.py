"""From logits to text: sampling (temperature, top-k, top-p as pure functions; ``SamplingSettings``, the four
settings as one checked value), loop (the decode loop with a KV cache: generate, stream, decode_steps), and the
speed paths: fast (the same loop on a static cache with the forward compiled), fast_top_p (top-p without a sort)."""

import importlib

from .loop import decode_steps, generate, stream
from .sampling import SamplingSettings

__all__ = ["SamplingSettings", "decode_steps", "generate", "stream"]

MODULES = {"fast", "fast_top_p", "loop", "sampling"}


def __getattr__(name):
    """``gt.generation.fast`` and the like: the module, imported on first use."""
    if name in MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
