"""A decode as fast as the memory allows: the same model and loop on a static KV cache, compiled.

Generating one token reads every weight once (11.7 GB for GPT-J 6B in fp16), so a GPU that copies 3 TB/s
cannot do better than ~257 tokens/s. The eager loop spends most of its time elsewhere: hundreds of small
kernel launches per token from Python, a KV cache that grows by concatenation (a new allocation and copy per
layer per token), a mask rebuilt every step. ``generate(fast=True)`` keeps the model and the loop
(``loop.py``) and changes three things, all set up here:

* a ``StaticCache``: one (batch, heads, max_len, head_dim) buffer per layer, allocated once and written in
  place, so that every step has the same shapes;
* one attention mask for all steps (``key_mask``): the prompt's padding, and every later slot open (the
  causal rule hides the slots not written yet);
* the model's own forward for one token, **compiled** by inductor, which fuses the small operations into a
  few kernels. On a GPU, ``torch.compile(mode="reduce-overhead")`` also records the step once as a CUDA graph
  and replays it: one launch per token instead of hundreds. On the CPU the step is compiled **ahead of
  time** (``torch.export``, then AOTInductor): the result is a C++ library that takes the step's tensors and
  runs the kernels, so a call skips ``torch.compile``'s Python frame and checks. It reads the model's own
  weights (no copy), and a new one is compiled for every new set of shapes, dtype or thread count.
  Inductor's settings (``CPU``): the step's ~40 intermediate buffers come from one allocation
  (``memory_planning``); the one-row matmuls become loops fused with their neighbours
  (``decompose_mm_pass``); attention is traced from its plain maths (``sdpa_kernel(SDPBackend.MATH)``),
  which fuses better than calling the fused CPU kernel for one query.

Greedy decoding compiles ``greedy_token``, whose argmax joins the step. On a CPU what remains of a token's time
is mostly ``lm_head``: the tiny model's 50400 x 192 fp32 weights, 39 MB read for every token. How long a token
takes on which machine, against ``transformers``, is measured by ``benchmarks/cpu_decode.py`` and recorded in
``benchmarks/RESULTS.md``.

If compiling fails (no C++ compiler, an old GPU), ``CompiledStep`` warns once and runs the step uncompiled.

References: gpt-fast (PyTorch team, 2023) ``loop.py``; ``transformers`` ``StaticCache``; PyTorch's
AOTInductor tutorial (``torch._inductor.aoti_compile_and_package``).
"""

import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..gptj.cache import StaticCache

CPU = {
    "memory_planning": True,
    "post_grad_fusion_options": {"decompose_mm_pass": {}},  # inductor's settings
    "aot_inductor.package_constants_in_so": False,
}  # the weights stay the model's: none copied into the library


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
    """``step(model, token, attention_mask, position_ids, cache)`` compiled: ahead of time on the CPU, with
    ``torch.compile`` (and CUDA graphs) on a GPU; ``ahead_of_time=False`` takes ``torch.compile`` on the CPU
    too. If compiling fails, warn once and call ``step`` itself from then on.

    ``last``: the compiled function the latest call ran, for the later steps of a loop (the same shapes, dtype,
    weights and thread count: no lookup).
    """

    def __init__(self, step, device: torch.device, ahead_of_time: bool | None = None):
        self.step, self.device, self.failed, self.compiled, self.last = step, device, None, {}, step
        self.ahead = device.type == "cpu" if ahead_of_time is None else ahead_of_time
        if not self.ahead:
            mode = "reduce-overhead" if device.type == "cuda" else None  # CUDA graphs
            self.traced = torch.compile(step, mode=mode, fullgraph=True, dynamic=False)

    def __call__(self, model, *inputs):
        if self.failed is None:
            try:
                self.last = self.ahead_of_time(model, *inputs) if self.ahead else self.traced
                return self.last(model, *inputs)
            except Exception as error:  # a missing compiler toolchain, an unsupported GPU, ... or a bug
                result = self.step(model, *inputs)  # a bug in the step itself raises here, with its own message
                self.failed, self.last = f"{type(error).__name__}: {error}", self.step
                warnings.warn(
                    f"compiling the decode step failed ({self.failed}): generate(fast=True) runs "
                    "uncompiled (same tokens, slower)",
                    stacklevel=2,
                )
                return result
        return self.step(model, *inputs)

    def ahead_of_time(self, model, token, attention_mask, position_ids, cache):
        """The library for these inputs' shapes and dtypes (compiled on first use), bound to the model's weights."""
        module = OneTokenStep(model, self.step)
        tensors = OneTokenStep.inputs(token, attention_mask, position_ids, cache)
        key = tuple((t.shape, t.dtype) for t in tensors) + (torch.get_num_threads(),)
        if key not in self.compiled:
            self.compiled[key] = compile_ahead_of_time(module, tensors)
        library = self.compiled[key]
        weights = dict(module.state_dict(keep_vars=True))
        library.load_constants(weights, check_full_update=True, user_managed=True)  # the current ones, no copy
        run = library.loader.boxed_run  # the call behind library(*tensors), without re-reading its input spec

        def compiled(model, token, attention_mask, position_ids, cache):
            return run(OneTokenStep.inputs(token, attention_mask, position_ids, cache))[0]

        return compiled


class OneTokenStep(nn.Module):
    """A decode step as a module of plain tensors, which ``torch.export`` needs: the cache comes in as its
    slots, keys and values (one per layer), rebuilt into a ``StaticCache`` that writes into them."""

    def __init__(self, model, step):
        super().__init__()
        self.model, self.step = model, step

    @staticmethod
    def inputs(token, attention_mask, position_ids, cache) -> list:
        """The step's arguments as ``forward`` takes them: a flat list of tensors."""
        return [token, attention_mask, position_ids, cache.slots, *cache.keys, *cache.values]

    def forward(self, token, attention_mask, position_ids, slots, *keys_and_values):
        layers = len(keys_and_values) // 2
        cache = StaticCache.of(list(keys_and_values[:layers]), list(keys_and_values[layers:]), slots)
        return self.step(self.model, token, attention_mask, position_ids, cache)


def compile_ahead_of_time(module: nn.Module, tensors: tuple):
    """``module`` traced for these inputs (``torch.export``, attention from its plain maths) and compiled by
    AOTInductor into a library loaded into this process; its weights are bound separately (``load_constants``)."""
    with warnings.catch_warnings(), tempfile.TemporaryDirectory() as folder:
        # torch 2.13's export copies its pytree specs through a path that torch itself deprecated: not ours to fix
        warnings.filterwarnings("ignore", r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning)
        with torch.inference_mode(False), torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
            examples = tuple(t.clone() for t in tensors)  # ordinary tensors, not inference-mode ones
            program = torch.export.export(module, examples, strict=False)
        path = torch._inductor.aoti_compile_and_package(
            program, package_path=str(Path(folder) / "step.pt2"), inductor_configs=CPU
        )
        return torch._inductor.aoti_load_package(path)


def compiled_step(model, step) -> CompiledStep:
    """``step`` compiled for ``model``, kept on the model (compiling takes seconds), one per step and device."""
    steps = model.__dict__.setdefault("_compiled_steps", {})
    if (step, model.device) not in steps:
        steps[step, model.device] = CompiledStep(step, model.device)
    return steps[step, model.device]
