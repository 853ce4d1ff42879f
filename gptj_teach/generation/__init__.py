"""From logits to text: sampling (temperature, top-k, top-p as pure functions), loop (the decode loop with a KV
cache: generate, stream), fast (the same loop on a static cache with the forward compiled)."""

from .loop import decode_steps, generate, stream

__all__ = ["decode_steps", "generate", "stream"]
