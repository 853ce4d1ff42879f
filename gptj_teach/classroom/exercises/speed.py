"""Notebook 09, Speed and precision: the checks of its "your turn" cells."""

import torch
from transformers import GPTJConfig

from ...show import memory
from .grading import _check_number


def check_kv_cache_bytes_per_token(answer) -> bool:
    """Notebook 09: bytes of K and V cache per token, all layers, GPT-J 6B in fp16."""
    config = GPTJConfig()  # the 6B shape
    right = memory.kv_cache_bytes_per_token(config, torch.float16)
    mistakes = [
        (right / 2, "half of it: does your count include both K *and* V, at 2 bytes per fp16 number?"),
        (right * 2, "twice too much: 4 bytes per number is fp32; fp16 takes 2"),
        (right / config.n_layer, "that is one layer: each of the n_layer layers keeps its own K and V"),
        (right / config.n_layer / 2, "that is one of K and V in one layer: count both, in every layer"),
        (right / config.n_head, "that is one head: each layer caches all heads (n_head x head_dim = n_embd)"),
        (right * 8, "that is bits: give bytes"),
        (right / 1e6, "that is MB: give bytes"),
        (right * config.n_positions, "that is a whole context: give the bytes per token"),
    ]
    return _check_number(
        answer,
        right,
        "bytes",
        mistakes,
        "too high: per token, each layer stores one key and one value vector of n_embd numbers",
        "too low: count the key AND the value vector (n_embd numbers each) in every layer, x bytes per fp16 number",
        "The cache grows with every token and every sequence in the "
        "batch: it is what limits long contexts and large batches.",
    )
