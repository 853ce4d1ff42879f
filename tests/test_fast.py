"""The fast decode path: its static-cache step picks the eager path's tokens; without CUDA it falls back."""

import warnings

import pytest
import torch
from conftest import left_padded_batch, make_config, make_pair

import gptj_teach as gt
from gptj_teach import fast


@pytest.fixture(scope="module")
def model():
    return make_pair(make_config("odd", eos_token_id=3, bos_token_id=3))[1]


@pytest.mark.parametrize("kwargs", [dict(do_sample=False), dict(do_sample=True, temperature=0.8, top_p=0.9)])
def test_static_cache_step_picks_the_eager_tokens(model, kwargs):
    ids, mask, _ = left_padded_batch()
    for seed in range(3):
        torch.manual_seed(seed)
        eager = gt.generate(model, ids, attention_mask=mask, max_new_tokens=30, **kwargs)
        torch.manual_seed(seed)
        steps = fast.fast_decode_steps(model, ids, 30, attention_mask=mask, eos_token_id=3, compile=False, **kwargs)
        assert torch.equal(torch.cat([ids, torch.stack(steps, 1)], 1), eager)


@torch.no_grad()
def test_static_step_logits_equal_the_model(model):
    ids = torch.randint(4, 97, (2, 12))
    full = model(ids).logits  # (2, 12, vocab)
    logits, cache = fast.prefill(model, ids[:, :5], torch.ones(2, 5, dtype=torch.long), max_len=12)
    key_mask = torch.zeros(2, 12, dtype=torch.bool)
    key_mask[:, :5] = True
    for t in range(5, 12):
        key_mask[:, t] = True
        logits = fast.static_step(model, ids[:, t], torch.tensor(t), torch.full((2,), t), key_mask, cache)
        assert (logits - full[:, t]).abs().max() <= 1e-5


def test_fast_on_cpu_falls_back_with_one_warning(model, monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the fast path runs for real")  # pragma: no cover
    monkeypatch.setattr(fast, "_warned", False)
    ids = torch.tensor([[5, 9, 11]])
    with pytest.warns(UserWarning, match="falls back to the eager path"):
        first = gt.generate(model, ids, max_new_tokens=8, fast=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second call warns no more
        second = gt.generate(model, ids, max_new_tokens=8, fast=True)
    assert torch.equal(first, gt.generate(model, ids, max_new_tokens=8)) and torch.equal(first, second)
