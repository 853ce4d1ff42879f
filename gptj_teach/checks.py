"""Clear errors for bad input, raised before the input reaches torch: the one place public inputs are checked.

A wrong token id deep inside ``nn.Embedding`` is an ``IndexError`` on the CPU and a device-side assert on a
GPU; a bool where a number belongs, or a temperature of 1e-39, gives a silently wrong answer or a NaN three
calls later. Every public entry point (each head's forward, ``generate``, ``stream``, ``load``,
``save_pretrained``, the CLI, the sampler widget) sends its arguments through these checks. Each returns the
value in the form the code uses (a ``long`` tensor, an ``int``, a ``torch.device``) or raises one of
``errors.py``'s exceptions, with the argument's name, what was received, and what to do.
"""

import math
import numbers
import os
from pathlib import Path

import torch

from .errors import InputError, InputTypeError
from .gptj.cache import DynamicCache, KVCache, StaticCache
from .gptj.model import GPTJForCausalLM
from .gptj.sizes import head_dim, rotary_dim

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}
INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
CONFIG_SIZES = ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head")


def describe(value) -> str:
    """A short account of a value for an error message: its type and, for small values, the value itself."""
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def check_flag(value, name: str) -> bool:
    """True or False (numpy bools too); not 1, "yes" or a tensor."""
    if isinstance(value, bool) or type(value).__name__ in ("bool_", "bool"):  # numpy 1 / numpy 2 name it so
        return bool(value)
    raise InputTypeError(f"{name} must be True or False, got {describe(value)}")


def bounds(low, high) -> str:
    """How an error message says the allowed range: ">= 0", "in [1, 12]"."""
    return f">= {low}" if high is None else f"<= {high}" if low is None else f"in [{low}, {high}]"


def check_whole(value, name: str, low: int | None = None, high: int | None = None) -> int:
    """A whole number (int, numpy integer or a one-element integer tensor such as ``ids[0, 3]``; not bool) in
    [low, high]."""
    if isinstance(value, torch.Tensor) and value.dim() == 0 and value.dtype in INTEGER_DTYPES:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputTypeError(f"{name} must be a whole number, got {describe(value)}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise InputError(f"{name} must be {bounds(low, high)}, got {value}")
    return value


def check_number(value, name: str, low: float | None = None, high: float | None = None) -> float:
    """A finite real number (int, float or numpy scalar, not bool) in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputTypeError(f"{name} must be a number, got {describe(value)}")
    if not math.isfinite(float(value)):
        raise InputError(f"{name} must be a finite number, got {value}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise InputError(f"{name} must be {bounds(low, high)}, got {value}")
    return float(value)


def check_positive(value, name: str) -> float:
    """A finite number above 0: a duration, a size, a learning rate that must move."""
    if check_number(value, name) <= 0:
        raise InputError(f"{name} must be > 0, got {value}")
    return float(value)


def check_token_ids(ids, name: str, vocab_size: int, min_length: int = 1, dims: int | None = 1) -> torch.Tensor:
    """An integer tensor of ``dims`` dimensions (a corpus, a held-out set: 1) with at least ``min_length`` token
    ids, each in [0, vocab_size). Returns it as int64, the type the loss takes its targets in."""
    ids = check_tensor(ids, name, dims).long()
    if ids.numel() < min_length:
        raise InputError(f"{name} holds {ids.numel()} tokens; at least {min_length} are needed")
    if ids.numel() and (ids.min() < 0 or ids.max() >= vocab_size):
        raise InputError(
            f"{name} holds ids from {ids.min().item()} to {ids.max().item()}, outside [0, {vocab_size}): "
            "were they encoded with the vocabulary this model was built for (CompactVocabulary.encode)?"
        )
    return ids


def check_tensor(value, name: str, dims: int | None, kinds: str = "integer") -> torch.Tensor:
    """A torch.Tensor with ``dims`` dimensions (None: any) whose dtype is of ``kinds``: "integer", "mask" (bool,
    integer or float), "float" or "labels" (integer or float)."""
    if not isinstance(value, torch.Tensor):
        hint = "; for text use tok(text, return_tensors='pt').input_ids" if name == "input_ids" else ""
        raise InputTypeError(
            f"{name} must be a torch.Tensor, got {describe(value)}: wrap it with torch.tensor(...){hint}"
        )
    floating, integer = (
        value.dtype.is_floating_point,
        not (value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool),
    )
    allowed = {
        "integer": integer,
        "mask": not value.dtype.is_complex,
        "float": floating,
        "labels": integer or floating,
    }[kinds]
    if not allowed:
        wanted = {
            "integer": "integer ids",
            "mask": "0/1 entries",
            "float": "floating-point numbers",
            "labels": "integer classes or float targets",
        }[kinds]
        raise InputTypeError(
            f"{name} must hold {wanted}, got dtype {value.dtype}; convert with "
            f"{'.long()' if kinds != 'float' else '.float()'}"
        )
    if dims is not None and value.dim() != dims:
        shape = {1: "(batch,)", 2: "(batch, seq)", 4: "(batch, heads, seq, head_dim)"}[dims]
        hint = f"; for a single sequence use {name}[None]" if dims == 2 and value.dim() == 1 else ""
        raise InputError(f"{name} must have shape {shape}, got {tuple(value.shape)}{hint}")
    return value


def check_input_ids(input_ids, vocab_size: int, n_positions: int, past_length: int = 0) -> torch.Tensor:
    """input_ids: a (batch, seq) integer tensor of ids in [0, vocab_size), with past + seq <= n_positions.
    Returns it as int64 (the range check is done there, so small integer types cannot overflow)."""
    input_ids = check_tensor(input_ids, "input_ids", 2).long()
    if input_ids.shape[0] == 0 or input_ids.shape[1] == 0:
        raise InputError(f"input_ids is empty (shape {tuple(input_ids.shape)}): give the model at least one token")
    bad = (input_ids < 0) | (input_ids >= vocab_size)
    if bad.any():
        raise InputError(
            f"input_ids holds token id {input_ids[bad][0].item()}, outside the vocabulary [0, "
            f"{vocab_size}): was this text encoded with the GPT-J tokenizer (gt.load_tokenizer())?"
        )
    if past_length + input_ids.shape[1] > n_positions:
        raise InputError(
            f"{past_length} cached + {input_ids.shape[1]} new tokens exceed n_positions "
            f"({n_positions}), the longest context this model supports: shorten the prompt"
        )
    return input_ids


def check_attention_mask(attention_mask, batch: int, total_length: int) -> torch.Tensor | None:
    """attention_mask: (batch, past + seq) of 0 (padding) and 1 (real token). Returns it as int64."""
    if attention_mask is None:
        return None
    attention_mask = check_tensor(attention_mask, "attention_mask", 2, "mask")
    if tuple(attention_mask.shape) != (batch, total_length):
        raise InputError(
            f"attention_mask must have shape (batch, past + seq) = {(batch, total_length)}, "
            f"got {tuple(attention_mask.shape)}: one 0/1 entry per token, cached ones included"
        )
    if ((attention_mask != 0) & (attention_mask != 1)).any():
        raise InputError("attention_mask must hold only 0 (padding) and 1 (real token)")
    return attention_mask.long()


def check_position_ids(position_ids, batch: int, seq: int, n_positions: int) -> torch.Tensor | None:
    """position_ids: (batch or 1, seq) integers in [0, n_positions). Returns them as int64."""
    if position_ids is None:
        return None
    position_ids = check_tensor(position_ids, "position_ids", 2).long()
    if position_ids.shape[1] != seq or position_ids.shape[0] not in (1, batch):
        raise InputError(
            f"position_ids must have shape ({'1' if batch == 1 else f'{batch} or 1'}, {seq}), "
            "one position per new token, "
            f"got {tuple(position_ids.shape)}"
        )
    if ((position_ids < 0) | (position_ids >= n_positions)).any():
        raise InputError(f"position_ids must be in [0, n_positions) = [0, {n_positions})")
    return position_ids


def check_token_labels(labels, shape: tuple, vocab_size: int) -> torch.Tensor:
    """Causal LM labels: the shape of input_ids, ids in [0, vocab_size) or -100 (ignored). Returns int64."""
    labels = check_tensor(labels, "labels", 2).long()
    if tuple(labels.shape) != tuple(shape):
        raise InputError(f"labels must have the shape of input_ids {tuple(shape)}, got {tuple(labels.shape)}")
    if (((labels < 0) | (labels >= vocab_size)) & (labels != -100)).any():
        raise InputError(f"labels must be token ids in [0, {vocab_size}) or -100 (ignored)")
    return labels


def check_cache(cache, config, batch: int, new: int, dtype, device) -> KVCache:
    """A KV cache: a ``DynamicCache`` / ``StaticCache`` (e.g. the ``.cache`` of an earlier output), or one
    (keys, values) pair per layer, each (batch, heads, length, head_dim) in the model's dtype and device.
    new: how many tokens the call adds. Returns a cache object (pairs become a ``DynamicCache``)."""
    if (
        isinstance(cache, (tuple, list))
        and len(cache) == config.n_layer
        and all(isinstance(pair, (tuple, list)) and len(pair) == 2 for pair in cache)
    ):
        cache = DynamicCache.from_pairs(cache)
    if not isinstance(cache, KVCache) or len(cache) not in (0, config.n_layer):
        raise InputTypeError(
            f"cache must be a gt.gptj.cache.DynamicCache or StaticCache, e.g. the .cache of an earlier "
            f"output, or one (keys, values) pair per layer ({config.n_layer}), got {describe(cache)}"
        )
    if len(cache):  # every tensor must have the shape of layer 0's keys, with this call's batch
        want = (batch, config.n_head, check_tensor(cache[0][0], "cache[0]", 4, "float").shape[2], head_dim(config))
    for layer, pair in enumerate(cache):  # runs at every decode step: the usual case is one comparison a tensor
        for tensor in pair:
            if not (
                isinstance(tensor, torch.Tensor)
                and tensor.shape == want
                and tensor.dtype == dtype
                and tensor.device == device
            ):
                check_tensor(tensor, f"cache[{layer}]", 4, "float")  # not a float tensor: say so first
                raise InputError(
                    f"cache[{layer}] must hold {dtype} tensors of shape {want} on {device}, got "
                    f"{describe(tensor)} on {tensor.device}: pass the cache this model returned"
                )
    if isinstance(cache, StaticCache):
        slots = cache.slots
        if (
            slots.dtype != torch.long
            or tuple(slots.shape) != (new,)
            or slots.device != device
            or ((slots < 0) | (slots >= cache.max_len)).any()
        ):
            raise InputError(
                f"a StaticCache writes {new} new tokens at cache.slots: call cache.seek(slots) first "
                f"with {new} int64 slots in [0, {cache.max_len}) on {device}, got {describe(slots)}"
            )
    return cache


# ---- what the interpretability and picture functions take -------------------------------------------------
def check_maps(maps, name: str, dims: int) -> torch.Tensor:
    """A non-empty float tensor of ``dims`` dimensions: attention weights (query, key), (layers or batch, heads,
    query, key), or per-head outputs (batch, seq, heads, head_dim)."""
    maps = check_tensor(maps, name, None, "float")
    if maps.dim() != dims or 0 in maps.shape:
        raise InputError(f"{name} must be a non-empty tensor of {dims} dimensions, got {tuple(maps.shape)}")
    return maps


def check_labels(tokens, maps: torch.Tensor, exact: bool = False) -> list:
    """One str label per key position of ``maps`` (more are allowed unless ``exact``: the last ones are used)."""
    if not isinstance(tokens, (list, tuple)) or not all(isinstance(t, str) for t in tokens):
        raise InputTypeError(
            f"tokens must be a list of str labels (viz.token_labels(tok, ids)), got {describe(tokens)}"
        )
    needed = max(maps.shape[-2:])
    if len(tokens) < needed or (exact and len(tokens) != needed):
        raise InputError(
            f"{len(tokens)} token labels for attention over {needed} positions: give one label per "
            "position (token_labels(tok, ids[0]) of the ids the model read)"
        )
    return list(tokens)


def check_indices(values, name: str, n: int) -> list[int]:
    """A non-empty list of indices in [0, n): which layers or heads to show."""
    if not isinstance(values, (list, tuple, range)) or not values:
        raise InputTypeError(f"{name} must be a non-empty list of indices in [0, {n}), got {describe(values)}")
    return [check_whole(value, f"{name}[{i}]", 0, n - 1) for i, value in enumerate(values)]


def check_logits(logits) -> None:
    """Logits as a model returns them: a (batch, seq, vocab) float tensor."""
    logits = check_tensor(logits, "logits", None, "float")
    if logits.dim() != 3 or 0 in logits.shape:
        raise InputError(f"logits must have shape (batch, seq, vocab), got {tuple(logits.shape)}")


def check_token(token, name: str, vocab_size: int) -> int:
    """A token id in [0, vocab_size): negative ids are refused, not read from the end of the vocabulary."""
    return check_whole(token, name, 0, vocab_size - 1)


def check_position(pos, seq: int) -> int:
    """A position in a sequence of ``seq`` tokens; negative counts from the end, as in Python (-1: the last)."""
    return check_whole(pos, "pos", -seq, seq - 1)


def check_path(path, name: str = "path") -> Path:
    """A file or directory name: a str or an os.PathLike. Returns a Path."""
    if not isinstance(path, (str, os.PathLike)):
        raise InputTypeError(f"{name} must be a directory name (a str or a Path), got {describe(path)}")
    return Path(path)


def check_device(device) -> torch.device:
    """A device that exists here: "cpu", "cuda", "cuda:1", "mps" or a torch.device."""
    if not isinstance(device, (str, torch.device)):
        raise InputTypeError(f"device must be a str such as 'cpu' or 'cuda', got {describe(device)}")
    try:
        device = torch.device(device)
    except RuntimeError as error:
        raise InputError(f"device {device!r} is not a device name: use 'cpu', 'cuda' or 'cuda:0'") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(
            "device='cuda' but no CUDA GPU is available: use device='cpu', or on Colab choose "
            "Runtime > Change runtime type > GPU"
        )
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise InputError(
            f"device {str(device)!r}: this machine has {torch.cuda.device_count()} GPU(s), numbered from 0"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise InputError("device='mps' but this machine has no Apple GPU: use device='cpu'")
    if device.type not in ("cpu", "cuda", "mps"):
        raise InputError(f"device {str(device)!r} is not supported here: use 'cpu', 'cuda' or 'mps'")
    return device


def check_dtype(dtype, name: str = "dtype") -> torch.dtype:
    """A floating-point dtype the model can compute in: torch.float32 / float16 / bfloat16 / float64 or its name."""
    if isinstance(dtype, str) and dtype.removeprefix("torch.") in DTYPES:
        return DTYPES[dtype.removeprefix("torch.")]
    if isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    raise InputError(
        f"{name} must be one of torch.float32, torch.float16, torch.bfloat16, torch.float64, got "
        f"{describe(dtype)}: weights in another type (int8, ...) would be destroyed by the cast"
    )


def check_text(text, name: str = "prompt") -> str:
    """A non-empty str that is valid Unicode (no lone surrogates, which is how undecodable bytes arrive)."""
    if not isinstance(text, str):
        raise InputTypeError(f"{name} must be a str, got {describe(text)}; for token ids use gt.generate")
    if not text:
        raise InputError(f"{name} is empty: give the model at least one character to continue")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise InputError(
            f"{name} is not valid text: character {error.start} ({text[error.start]!r}) is half of "
            "a character or a byte that is not UTF-8"
        ) from error
    return text


def check_tokenizer(tok) -> None:
    """Something that encodes like a transformers tokenizer (``tok(text, return_tensors="pt")``) and decodes."""
    if not (callable(tok) and callable(getattr(tok, "decode", None))):
        raise InputTypeError(
            f"tok must be a tokenizer (the second value of gt.load, or gt.load_tokenizer()), got {describe(tok)}"
        )


def check_config(config) -> None:
    """Refuse configs that are not GPT-J or whose sizes do not fit together."""
    if getattr(config, "model_type", None) != "gptj":
        raise InputError(
            f"expected a GPT-J config (model_type 'gptj'), got model_type {getattr(config, 'model_type', None)!r}: "
            "gptj_teach implements GPT-J only; build one with transformers.GPTJConfig(...)"
        )
    for name in CONFIG_SIZES:
        check_whole(getattr(config, name), f"config.{name}", 1)
    if config.n_embd % config.n_head:
        raise InputError(f"n_embd ({config.n_embd}) must be divisible by n_head ({config.n_head})")
    width = head_dim(config)
    if check_whole(rotary_dim(config), "config.rotary_dim", 1, width) % 2:
        raise InputError(f"rotary_dim ({config.rotary_dim!r}) must be even and at most head_dim ({width})")
    if config.n_inner is not None:
        check_whole(config.n_inner, "config.n_inner", 1)
    check_number(config.layer_norm_epsilon, "config.layer_norm_epsilon")


def check_causal_lm(model) -> None:
    """One of our causal LMs: what generation, the activation hooks, training and the circuits read."""
    if not isinstance(model, GPTJForCausalLM):
        raise InputTypeError(
            f"model must be a gptj_teach GPTJForCausalLM, got {type(model).__name__}: load one "
            "with gt.load(...) or wrap a transformers model with gt.GPTJForCausalLM.from_transformers"
        )
