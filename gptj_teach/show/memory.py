"""How much memory a GPT-J needs to load, run and train, in each dtype: arithmetic you can check by hand.

Memory is counted in **GB = 1e9 bytes** everywhere here (what GPU vendors print on the box; a "16 GB" T4
shows about 15 GiB = 15 x 2**30 bytes in ``nvidia-smi``). The rules of thumb, for GPT-J 6B (6.05e9 parameters):

* **weights** = parameters x bytes per number: fp32 4 bytes (24.2 GB), fp16 / bf16 2 (12.1 GB: fits a 16 GB
  T4), int8 1 (6.1 GB);
* **loading fp32 naively** needs about 2 x the weights in CPU RAM (48 GB): ``GPTJForCausalLM(config)`` first
  builds a randomly initialised model, then ``torch.load`` reads a whole second copy (the state dict) before
  it is copied in. Loading shard by shard, or onto the ``meta`` device first, avoids the second copy;
* **running** needs the weights plus the **KV cache**: every layer keeps a key *and* a value vector of
  ``n_embd`` numbers for every token seen, ``2 x n_layer x n_embd x bytes`` per token (0.94 GB in fp16 for
  a full 2048-token context). The activations of one forward pass are small next to that;
* **training with Adam in fp32** needs about 4 x the fp32 weights (97 GB): the weights, their gradients and
  Adam's two moving averages (``exp_avg``, ``exp_avg_sq``), 16 bytes per parameter. Left out: the
  activations saved for the backward pass, which grow with batch x sequence length and often cost as much
  again (gradient checkpointing trades them for recomputation).

References: the GPT-J 6B model card (EleutherAI); Kingma & Ba (2015) Adam; Rajbhandari et al. (2020) ZeRO
("16 bytes per parameter" for mixed-precision Adam); ``transformers``' "model memory anatomy" guide.
"""

from dataclasses import dataclass

import torch
from transformers import GPTJConfig

from ..checks import check_config, check_whole, describe
from ..errors import InputError, InputTypeError
from ..gptj import sizes

GB = 1e9  # bytes in a GB (decimal, like the GPU sizes below), not a GiB (2**30)
BYTES_PER_NUMBER = {torch.float32: 4, torch.float16: 2, torch.bfloat16: 2, torch.int8: 1}
GPUS_GB = {"T4": 16, "A100 40GB": 40, "A100 80GB / H100": 80}  # GPU memory on the box
COLAB_FREE_RAM_GB = 12.7  # the CPU RAM of a free Colab session


def bytes_per_number(dtype: torch.dtype) -> int:
    """How many bytes one number takes: fp32 4, fp16 / bf16 2, int8 1 (a dtype or its name, as ``gt.load`` takes)."""
    return BYTES_PER_NUMBER[check_memory_dtype(dtype)]


def check_memory_dtype(dtype) -> torch.dtype:
    """The dtypes counted here, as a torch dtype or its name ("float16", "torch.float16"): fp32, fp16, bf16 and
    int8 (the weights of 8-bit loaders)."""
    names = {str(d).removeprefix("torch."): d for d in BYTES_PER_NUMBER}
    if isinstance(dtype, (str, torch.dtype)) and str(dtype).removeprefix("torch.") in names:
        return names[str(dtype).removeprefix("torch.")]
    raise InputError(f"dtype must be one of {', '.join(names)} (a torch dtype or its name), got {describe(dtype)}")


def gptj_config(config) -> GPTJConfig:
    """config, or GPT-J 6B's for None; refused when it is not a GPT-J config with sizes that fit together."""
    if config is None:
        return GPTJConfig()
    if not isinstance(config, GPTJConfig):
        raise InputTypeError(
            f"config must be a transformers.GPTJConfig (or None for GPT-J 6B), got {describe(config)}"
            ": for the 6B leave it out; for a loaded model pass model.config"
        )
    check_config(config)
    return config


def parameter_count(config: GPTJConfig | None = None) -> int:
    """The exact number of parameters of ``GPTJForCausalLM(config)``, from the shapes (default: GPT-J 6B).

    ``gptj/sizes.py`` spells the formula: wte + n_layer x (ln_1, q, k, v, out_proj without biases, fc_in, fc_out)
    + ln_f + lm_head (with a bias, not tied to wte). For GPT-J 6B: 6,050,882,784.
    """
    return sizes.parameter_count(gptj_config(config))


def weights_bytes(config: GPTJConfig | None = None, dtype: torch.dtype = torch.float16) -> int:
    """Bytes to hold every parameter in ``dtype``: parameters x bytes per number."""
    return parameter_count(config) * bytes_per_number(dtype)


def kv_cache_bytes_per_token(config: GPTJConfig | None = None, dtype: torch.dtype = torch.float16) -> int:
    """Bytes the KV cache grows by per token: a key *and* a value (2) of n_embd numbers in each of n_layer layers."""
    config = gptj_config(config)
    return 2 * config.n_layer * config.n_embd * bytes_per_number(dtype)


def kv_cache_bytes(
    config: GPTJConfig | None = None, dtype: torch.dtype = torch.float16, context: int = 2048, batch: int = 1
) -> int:
    """Bytes of the KV cache holding ``context`` tokens for each of ``batch`` sequences."""
    context, batch = check_whole(context, "context", 0), check_whole(batch, "batch", 1)
    return batch * context * kv_cache_bytes_per_token(config, dtype)


@dataclass
class MemoryPlan:
    """What one GPT-J needs, in GB (1e9 bytes). ``run_gb`` is for ``dtype``; the others are dtype-independent."""

    parameters: int
    dtype: torch.dtype
    weights_gb: float  # the weights in dtype
    kv_cache_gb: float  # the KV cache for context x batch tokens (fp16 when dtype is int8)
    run_gb: float  # weights + KV cache (activations left out: small next to these when generating)
    load_fp32_naive_gb: float  # random init + a loaded state dict, both fp32, in CPU RAM
    train_adam_fp32_gb: float  # weights + grads + 2 Adam moments, fp32 (activations left out)


def plan(
    config: GPTJConfig | None = None, dtype: torch.dtype = torch.float16, context: int = 2048, batch: int = 1
) -> MemoryPlan:
    """The memory budget of a GPT-J (default: 6B) run in ``dtype`` with ``context`` tokens cached per sequence.

    int8 here means int8 *weights* (LLM.int8-style loaders); the KV cache then stays in fp16.
    """
    dtype = check_memory_dtype(dtype)
    kv_dtype = torch.float16 if dtype == torch.int8 else dtype
    weights, cache = weights_bytes(config, dtype) / GB, kv_cache_bytes(config, kv_dtype, context, batch) / GB
    fp32 = weights_bytes(config, torch.float32) / GB
    return MemoryPlan(
        parameters=parameter_count(config),
        dtype=dtype,
        weights_gb=weights,
        kv_cache_gb=cache,
        run_gb=weights + cache,
        load_fp32_naive_gb=2 * fp32,
        train_adam_fp32_gb=4 * fp32,
    )


def plot_plan(config: GPTJConfig | None = None, context: int = 2048, batch: int = 1, ax=None):
    """Bar chart: GB needed to load fp32, run fp32 / fp16 / int8 and train with Adam, against common GPU sizes
    and the free-Colab RAM (horizontal lines). Returns the matplotlib Axes."""
    import matplotlib.pyplot as plt

    plans = {dtype: plan(config, dtype, context, batch) for dtype in (torch.float32, torch.float16, torch.int8)}
    bars = {
        "load fp32\n(naive, RAM)": plans[torch.float32].load_fp32_naive_gb,
        "run fp32": plans[torch.float32].run_gb,
        "run fp16/bf16": plans[torch.float16].run_gb,
        "run int8": plans[torch.int8].run_gb,
        "train Adam fp32\n(no activations)": plans[torch.float32].train_adam_fp32_gb,
    }
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4))
    ax.bar(list(bars), list(bars.values()), color=["#999999", "#d62728", "#2ca02c", "#1f77b4", "#9467bd"])
    for i, value in enumerate(bars.values()):
        ax.text(i, value, f"{value:.1f}", ha="center", va="bottom")
    for (name, gb), style in zip(GPUS_GB.items(), ["--", "-.", ":"]):
        ax.axhline(gb, color="black", linestyle=style, linewidth=1, label=f"GPU {name}: {gb} GB")
    ax.axhline(COLAB_FREE_RAM_GB, color="tab:orange", linewidth=1.5, label=f"free Colab RAM: {COLAB_FREE_RAM_GB} GB")
    ax.set_ylabel("GB (1e9 bytes)")
    ax.set_title(
        f"GPT-J memory, {plans[torch.float16].parameters / 1e9:.2f}e9 parameters, "
        f"KV cache for {batch} x {context} tokens"
    )
    ax.legend(fontsize=8, loc="upper left")
    return ax
