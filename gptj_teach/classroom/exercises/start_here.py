"""Notebook 00, Start here: the checks of its "your turn" cells."""

import torch
from transformers import GPTJConfig

from ...show import memory
from .grading import _check_number


def check_memory_fp16_gb(answer) -> bool:
    """Notebook 00: how many GB (1e9 bytes) do the weights of GPT-J 6B take in fp16?"""
    config = GPTJConfig()  # the 6B shape
    params, head = memory.parameter_count(config), config.n_embd * config.vocab_size + config.vocab_size
    right = memory.weights_bytes(config, torch.float16) / memory.GB
    mistakes = [
        (right * 2, "that is 4 bytes per number (fp32); fp16 numbers take 2 bytes"),
        (right / 2, "that is 1 byte per parameter (or the parameter count in billions); fp16 takes 2"),
        (right * memory.GB / 2**30, "that looks like GiB (2**30 bytes); here GB means 1e9 bytes"),
        ((params - head) * 2 / memory.GB, "close, but too low: did you count the lm_head (with its bias)?"),
        (right * memory.GB, "that is bytes: give GB (divide by 1e9)"),
        (right * 1e3, "that is MB: give GB"),
    ]
    return _check_number(
        answer,
        right,
        "GB",
        mistakes,
        "too high: parameters x bytes per fp16 number, divided by 1e9",
        "too low: count every part: wte, each block (ln_1, q/k/v/out, fc_in and fc_out with "
        "biases), ln_f and lm_head (with its bias), then x bytes per fp16 number / 1e9",
        "The 6B in fp16 fits a 16 GB T4 GPU, in fp32 it does not.",
    )
