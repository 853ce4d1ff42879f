"""The fast decode path: the model's own forward, compiled, on a static cache, picks the eager loop's tokens."""

import warnings

import pytest
import torch
from helpers import left_padded_batch, make_config

import gptj_teach as gt
from gptj_teach.generation import fast

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])  # CUDA graphs where a GPU is present
# The loops' tokens are compared, not their logits, which differ: inductor's fused kernels (and, uncompiled, the static
# cache's longer masked key rows) add in another order, ~1e-7 apart on these logits (|logit| < 0.5). A pick flips only
# on a near-tie that close. The closest here: greedy, padded batch row 2, step 4, top two 3.6e-6 apart (~20x that);
# logits perturbed by 2e-6 at every step still pick these loops' tokens; by 5e-6, that step's can flip.


MODEL_CONFIG = make_config("odd", eos_token_id=3, bos_token_id=3)  # conftest's `model` fixture builds ours


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kwargs", [dict(do_sample=False), dict(do_sample=True, temperature=0.8, top_p=0.9)])
def test_compiled_static_path_picks_the_eager_tokens(model, device, kwargs):
    """Compiled for real (AOTInductor on the CPU, torch.compile with CUDA graphs on a GPU): a compile failure
    would warn and fall back, so warnings are errors here and the step must report no failure."""
    model = model.to(device)
    ids, mask, _ = (t.to(device) for t in left_padded_batch())
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        for seed in range(3):
            torch.manual_seed(seed)
            eager = gt.generate(model, ids, attention_mask=mask, max_new_tokens=30, **kwargs)
            torch.manual_seed(seed)
            compiled = gt.generate(model, ids, attention_mask=mask, max_new_tokens=30, fast=True, **kwargs)
            assert torch.equal(compiled, eager)
    assert all(step.failed is None for step in model._compiled_steps.values())
    model.to("cpu")


@pytest.mark.parametrize("kwargs", [dict(do_sample=False), dict(do_sample=True, temperature=0.8, top_p=0.9)])
def test_the_same_step_through_torch_compile_picks_the_eager_tokens(model, monkeypatch, kwargs):
    """On a GPU the step goes through torch.compile (dynamo, one full graph) instead of torch.export: the same
    tracing, with inductor, checked here on the CPU."""
    cpu = torch.device("cpu")
    monkeypatch.setattr(
        model,
        "_compiled_steps",
        {
            (step, cpu): fast.CompiledStep(step, cpu, ahead_of_time=False)
            for step in (gt.generation.loop.one_token, gt.generation.loop.greedy_token)
        },
        raising=False,
    )
    ids, mask, _ = left_padded_batch()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # "compiling the decode step failed ..." would be one
        for seed in range(2):
            torch.manual_seed(seed)
            eager = gt.generate(model, ids, attention_mask=mask, max_new_tokens=30, **kwargs)
            torch.manual_seed(seed)
            assert torch.equal(
                gt.generate(model, ids, attention_mask=mask, max_new_tokens=30, fast=True, **kwargs), eager
            )
    assert all(not step.ahead and step.failed is None for step in model._compiled_steps.values())


@torch.no_grad()
def test_static_cache_forward_equals_one_full_pass(model):
    ids = torch.randint(4, 97, (2, 12))
    full = model(ids).logits  # (2, 12, vocab)
    cache = fast.static_cache(model, 2, 12)
    cache.seek(torch.arange(5))
    steps = [model(ids[:, :5], cache=cache, use_cache=True).logits]  # the prompt, written at slots 0..4
    for t in range(5, 12):
        cache.seek(torch.tensor([t]))
        steps.append(model(ids[:, t : t + 1], cache=cache, use_cache=True).logits)
    assert (torch.cat(steps, dim=1) - full).abs().max() <= 1e-5
    assert cache[0][0].shape == (2, 5, 12, 8)  # (batch, heads, max_len, head_dim): allocated once


def test_static_cache_needs_its_slots(model):
    cache = fast.static_cache(model, 1, 8)
    with pytest.raises(gt.InputError, match=r"cache.seek"):
        model(torch.tensor([[5, 6]]), cache=cache)  # no slots named yet
    cache.seek(torch.tensor([7, 8]))
    with pytest.raises(gt.InputError, match=r"cache.seek"):
        model(torch.tensor([[5, 6]]), cache=cache)  # slot 8 is past max_len


def test_a_failed_compile_warns_once_and_gives_the_same_tokens(model, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", broken)  # as if there were no C++ compiler
    monkeypatch.setattr(model, "_compiled_steps", {}, raising=False)
    ids = torch.tensor([[5, 9, 11]])
    with pytest.warns(UserWarning, match="runs uncompiled"):
        first = gt.generate(model, ids, max_new_tokens=8, fast=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same step warns no more
        second = gt.generate(model, ids, max_new_tokens=8, fast=True)
    assert torch.equal(first, gt.generate(model, ids, max_new_tokens=8)) and torch.equal(first, second)


def test_a_bug_in_the_step_raises_its_own_error_not_a_compile_warning(model):
    def step(model, token, attention_mask, position_ids, cache):
        raise ValueError("a bug in the step")

    calls = fast.CompiledStep(step, torch.device("cpu"))
    cache = fast.static_cache(model, 1, 4)
    cache.seek(torch.tensor([0]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "compiling ... failed" warning before the real error
        with pytest.raises(ValueError, match="a bug in the step"):
            calls(model, torch.tensor([5]), torch.ones(1, 4, dtype=torch.long), torch.tensor([[0]]), cache)
    assert calls.failed is None


def test_the_compiled_step_reads_the_current_weights(model):
    """The library compiled ahead of time uses the model's own weight tensors (no copy), bound again before
    every loop: after the weights change (in place, or replaced by new tensors) it picks the new model's tokens."""
    ids = torch.tensor([[5, 9, 11]])
    before = gt.generate(model, ids, max_new_tokens=10, fast=True)
    saved = {name: p.detach().clone() for name, p in model.named_parameters()}
    try:
        with torch.no_grad():
            model.lm_head.bias[before[0, 3:]] -= 100.0  # in place: the tokens picked so far become unlikely
            replaced = torch.randn_like(saved["transformer.h.0.mlp.fc_in.weight"])
            model.transformer.h[0].mlp.fc_in.weight = torch.nn.Parameter(replaced)  # a new tensor, not in place
        after = gt.generate(model, ids, max_new_tokens=10, fast=True)
        assert not torch.equal(after, before)
        assert torch.equal(after, gt.generate(model, ids, max_new_tokens=10))
    finally:
        model.load_state_dict(saved)


def test_a_change_between_two_steps_keeps_the_stream_going(model):
    """A loop keeps calling the library its first step ran, whatever changes in between (here the thread
    count, while a stream is paused): no warning, the same tokens."""
    ids = torch.tensor([[5, 9, 11]])
    expected = gt.generate(model, ids, max_new_tokens=6)
    threads = torch.get_num_threads()
    steps = gt.generation.decode_steps(model, ids, 6, fast=True)  # greedy: the default settings
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # "compiling the decode step failed ..." would be one
        tokens = [next(steps), next(steps)]
        torch.set_num_threads(1 if threads > 1 else 2)
        try:
            tokens += list(steps)
        finally:
            torch.set_num_threads(threads)
    assert torch.equal(torch.stack(tokens, dim=1), expected[:, 3:])
    assert all(step.failed is None for step in model._compiled_steps.values())


def test_fast_stops_at_eos_like_the_eager_loop(model):
    """The fast loop reads `finished` every 16 steps; generate trims what came after."""
    ids = torch.tensor([[5, 9, 11], [7, 7, 7]])
    for seed in range(5):
        torch.manual_seed(seed)
        eager = gt.generate(model, ids, max_new_tokens=40, do_sample=True, temperature=2.0)
        torch.manual_seed(seed)
        assert torch.equal(
            gt.generate(model, ids, max_new_tokens=40, do_sample=True, temperature=2.0, fast=True), eager
        )
