"""A decode as fast as the memory allows: the same model and loop on a static KV cache, compiled.

Generating one token reads every weight once (11.7 GB for GPT-J 6B in fp16), so a GPU that copies 3 TB/s
cannot do better than ~257 tokens/s. The eager loop spends most of its time elsewhere: hundreds of small
kernel launches per token from Python, a KV cache that grows by concatenation (a new allocation and copy per
layer per token), a mask rebuilt every step. ``generate(fast=True)`` keeps the model and the loop
(``generation.py``) and changes three things, all set up here:

* a ``StaticCache``: one (batch, heads, max_len, head_dim) buffer per layer, allocated once and written in
  place, so that every step has the same shapes;
* one attention mask for all steps (``key_mask``): the prompt's padding, and every later slot open (the
  causal rule hides the slots not written yet);
* the model's own forward for one token **compiled** with ``torch.compile``: inductor fuses the small
  operations into a few kernels; on a GPU, ``mode="reduce-overhead"`` also records the step once as a CUDA
  graph and replays it: one launch per token instead of hundreds. On the CPU four settings help (``CPU``):
  the code that calls the kernels is compiled to C++ as well (``cpp_wrapper``); the step's ~40 intermediate
  buffers are carved out of one allocation instead of ~40 (``memory_planning``); the small one-row matmuls of
  a decode step become loops that inductor fuses with their neighbours (``decompose_mm_pass``); and attention
  is traced from its plain maths (``sdpa_kernel(SDPBackend.MATH)``), which inductor fuses better than it can
  call the fused CPU kernel for one query.

Every step of one loop has the same shapes, dtypes and devices, so once the first step has passed
``torch.compile``'s guards (the checks that the compiled code fits its inputs), the later steps of that loop
skip them (``set_stance(skip_guard_eval_unsafe=True)``). Greedy decoding compiles ``greedy_token``, whose
argmax joins the graph. On the tiny model on a 2-core CPU, a step took 1.7 ms; the C++ wrapper saves about
0.2 ms of it, the fused matmuls and attention 0.09 ms, skipping the guards 0.07 ms, the argmax in the graph
0.04 ms, the planned memory 0.04 ms (``benchmarks/cpu_decode.py`` times the whole loop against
``transformers``). What is left is mostly ``lm_head``: 50400 x 192 fp32 weights, 39 MB read for every token,
0.75 ms at the 55 GB/s two cores get.

If compiling fails (no C++ compiler, an old GPU), ``CompiledStep`` warns once and runs the step uncompiled.

References: gpt-fast (PyTorch team, 2023) ``generation.py``; ``transformers`` ``StaticCache``.
"""

import warnings

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from .cache import StaticCache

CPU = {"cpp_wrapper": True, "memory_planning": True,  # inductor's settings on a CPU
       "post_grad_fusion_options": {"decompose_mm_pass": {}}}


def static_cache(model, batch: int, max_len: int) -> StaticCache:
    """A ``StaticCache`` for ``model`` (its dtype and device). On a GPU its buffers are marked as never moving,
    so a CUDA graph can write into them in place (``transformers``' StaticCache does the same)."""
    cache = StaticCache(model.config, batch, max_len, model.dtype, model.device)
    if model.device.type == "cuda":
        for buffer in cache.keys + cache.values:
            torch._dynamo.mark_static_address(buffer)
    return cache


def key_mask(attention_mask: torch.Tensor, max_len: int) -> torch.Tensor:
    """The prompt's 0/1 mask (batch, prompt), then 1 for every slot generation will write: (batch, max_len)."""
    batch, prompt = attention_mask.shape
    return torch.cat([attention_mask, attention_mask.new_ones(batch, max_len - prompt)], dim=1)


class CompiledStep:
    """``step`` compiled with ``torch.compile`` (fullgraph: the whole forward in one graph, or an error);
    on a GPU with CUDA graphs, on the CPU with a C++ wrapper. If compiling fails, warn once and call ``step``
    itself from then on.

    ``checked``: the same step for the later calls of a loop, whose inputs have exactly the shapes, dtypes and
    devices of a call that passed the guards: it skips them.
    """

    def __init__(self, step, device: torch.device):
        self.step, self.device, self.failed = step, device, None
        if device.type == "cuda":
            self.compiled = torch.compile(step, mode="reduce-overhead", fullgraph=True, dynamic=False)
        else:
            self.compiled = torch.compile(with_math_attention(step), fullgraph=True, dynamic=False, options=CPU)

    def checked(self, *args):
        if self.failed is None:
            try:
                with torch.compiler.set_stance(skip_guard_eval_unsafe=True):
                    return self.compiled(*args)
            except Exception:  # something changed since the first step (torch.set_num_threads, ...): the guards
                pass  # decide, and a real failure is handled below
        return self(*args)

    def __call__(self, *args):
        if self.failed is None:
            try:
                return self.compiled(*args)
            except Exception as error:  # a missing compiler toolchain, an unsupported GPU, ... or a bug
                result = self.step(*args)  # a bug in the step itself raises here, with its own message
                self.failed = f"{type(error).__name__}: {error}"
                warnings.warn(f"torch.compile failed ({self.failed}): generate(fast=True) runs uncompiled "
                              "(same tokens, slower)", stacklevel=2)
                return result
        return self.step(*args)


def with_math_attention(step):
    """``step`` with ``scaled_dot_product_attention`` computed from its plain maths (matmul, softmax, matmul)."""
    def step_with_math_attention(*args):
        with sdpa_kernel(SDPBackend.MATH):
            return step(*args)
    return step_with_math_attention


def compiled_step(model, step) -> CompiledStep:
    """``step`` compiled once per model and device (kept on the model: compiling takes seconds)."""
    cached = getattr(model, "_compiled_step", None)
    if cached is None or cached.step is not step or cached.device != model.device:
        cached = model._compiled_step = CompiledStep(step, model.device)
    return cached
