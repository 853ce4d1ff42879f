"""The KV cache objects: what attention stores, how it reads, and the last-position logits of a prefill."""

import pytest
import torch
from helpers import make_config

import gptj_teach as gt

MODEL_CONFIG = make_config("odd")  # conftest's `model` fixture builds ours


@torch.no_grad()
def test_dynamic_cache_reads_like_a_tuple_of_pairs(model):
    ids = torch.randint(1, 97, (2, 6))
    out = model(ids, use_cache=True)
    assert isinstance(out.cache, gt.gptj.cache.DynamicCache) and out.past_key_values is out.cache
    assert len(out.cache) == model.config.n_layer and out.cache.length == 6
    keys, values = out.cache[0]
    assert keys.shape == values.shape == (2, 5, 6, 8)  # (batch, heads, seq, head_dim)
    assert [k.shape for k, _ in out.cache] == [keys.shape] * model.config.n_layer


@torch.no_grad()
def test_a_tuple_of_pairs_is_taken_as_a_cache_and_left_unchanged(model):
    ids = torch.randint(1, 97, (2, 8))
    full = model(ids).logits
    pairs = tuple((k.clone(), v.clone()) for k, v in model(ids[:, :5], use_cache=True).cache)
    rest = model(ids[:, 5:], cache=pairs).logits
    assert (rest - full[:, 5:]).abs().max() <= 1e-5
    assert pairs[0][0].shape[2] == 5  # the caller's tensors were read, not grown


@torch.no_grad()
def test_the_cache_grows_in_place_across_calls(model):
    ids = torch.randint(1, 97, (1, 7))
    cache = gt.gptj.cache.DynamicCache()
    model(ids[:, :4], cache=cache)
    model(ids[:, 4:], cache=cache)
    assert cache.length == 7 and cache.slots_for(2, "cpu").tolist() == [7, 8]


def test_advance_makes_room_for_one_more_token(model):
    dynamic = gt.gptj.cache.DynamicCache()
    assert dynamic.advance(torch.ones(2, 3, dtype=torch.long)).tolist() == [[1, 1, 1, 1]] * 2  # one more column
    static = gt.generation.fast.static_cache(model, 2, 10)
    static.seek(torch.arange(4))  # a 4-token prompt
    mask = torch.ones(2, 10, dtype=torch.long)
    assert static.advance(mask) is mask and static.slots.tolist() == [4]  # the mask covers every slot already
    static.advance(mask)
    assert static.slots.tolist() == [5]


@torch.no_grad()
def test_logits_to_keep_computes_only_the_last_rows(model):
    ids = torch.randint(1, 97, (2, 9))
    full = model(ids).logits
    last = model(ids, logits_to_keep=1).logits
    assert last.shape == (2, 1, model.config.vocab_size)
    # Not bit-equal: a 1-row and a 9-row matmul may take different BLAS kernels (another summation order), so the
    # last row differs from the full pass's by a few fp32 ulps on some CPUs (seen on AMD EPYC with MKL)
    torch.testing.assert_close(last[:, 0], full[:, -1])
    with pytest.raises(gt.InputError, match="logits_to_keep"):
        model(ids, labels=ids, logits_to_keep=1)


def test_a_cache_of_another_shape_is_refused(model):
    with pytest.raises(gt.InputTypeError, match="DynamicCache"):
        model(torch.tensor([[1, 2]]), cache="not a cache")
    with pytest.raises(gt.InputError, match=r"cache\[0\] must hold"):
        model(torch.tensor([[1, 2]]), cache=[(torch.zeros(1, 5, 3, 7), torch.zeros(1, 5, 3, 7))] * model.config.n_layer)
