"""Each component against its transformers counterpart, and the laws rotary must obey (hypothesis)."""

import math

import torch
from conftest import make_config, make_pair
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers.models.gptj import modeling_gptj as ref

import gptj_teach as gt
from gptj_teach.rotary import apply_rotary, fixed_pos_embedding, rotate_every_two

ATOL = 1e-5


def test_sinusoid_table_equals_transformers():
    positions = torch.arange(50)[None]  # (1, 50)
    sin, cos = fixed_pos_embedding(positions, 16)
    table = ref.create_sinusoidal_positions(50, 16)  # (50, 16): sin | cos
    assert torch.equal(torch.cat([sin[0], cos[0]], dim=-1), table)


def test_rotate_every_two_equals_transformers():
    x = torch.randn(2, 5, 3, 8)
    assert torch.equal(rotate_every_two(x), ref.rotate_every_two(x))


def test_apply_rotary_equals_transformers_and_passes_the_rest_through():
    x = torch.randn(2, 7, 3, 16)  # (batch, seq, heads, head_dim); rotary on the first 6 dims
    positions = torch.arange(7).repeat(2, 1) + 3
    table = ref.create_sinusoidal_positions(20, 6)
    sin, cos = table[positions].split(3, dim=-1)
    expected = torch.cat([ref.apply_rotary_pos_emb(x[..., :6], sin, cos), x[..., 6:]], dim=-1)
    assert torch.equal(apply_rotary(x, positions, 6), expected)
    assert torch.equal(apply_rotary(x, positions, 6)[..., 6:], x[..., 6:])


vectors = st.integers(0, 2**31 - 1).map(lambda seed: torch.randn(16, generator=torch.Generator().manual_seed(seed)))


@settings(max_examples=60, deadline=None)
@given(vectors, st.integers(0, 2000))
def test_rotary_keeps_vector_norms(x, position):
    rotated = apply_rotary(x.view(1, 1, 1, 16), torch.tensor([[position]]), 16)
    assert math.isclose(rotated.norm().item(), x.norm().item(), rel_tol=1e-5)


@settings(max_examples=60, deadline=None)
@given(vectors, vectors, st.integers(0, 500), st.integers(0, 500), st.integers(0, 500))
def test_rotated_dot_product_depends_only_on_distance(q, k, m, n, shift):
    def score(i, j):
        qi = apply_rotary(q.view(1, 1, 1, 16).double(), torch.tensor([[i]]), 16)
        kj = apply_rotary(k.view(1, 1, 1, 16).double(), torch.tensor([[j]]), 16)
        return (qi * kj).sum().item()
    # the angles come from an fp32 table (like transformers'), so allow fp32 rounding of position * frequency
    assert abs(score(m, n) - score(m + shift, n + shift)) <= 1e-3 * (q.norm() * k.norm()).item()


@torch.no_grad()
def test_attention_layer_equals_transformers():
    hf, ours = make_pair(make_config("odd"))
    x = torch.randn(2, 6, 40)
    positions = torch.arange(6)[None].expand(2, -1)
    mask = gt.model.make_mask(None, 6, 6, torch.float32, "cpu")
    theirs, their_weights = hf.transformer.h[1].attn(x, attention_mask=mask, position_ids=positions)
    mine, (k, v), weights = ours.transformer.h[1].attn(x, positions, mask, output_attentions=True)
    assert (mine - theirs).abs().max() <= ATOL
    assert (weights - their_weights).abs().max() <= ATOL
    assert k.shape == v.shape == (2, 5, 6, 8)  # (batch, heads, seq, head_dim): the KV cache


def test_plain_and_fused_attention_agree_with_padding():
    q, k, v = torch.randn(3, 2, 5, 8), torch.randn(3, 2, 9, 8), torch.randn(3, 2, 9, 8)
    padding = torch.ones(3, 9, dtype=torch.long)
    padding[1, :2] = 0
    mask = gt.model.make_mask(padding, 5, 9, torch.float32, "cpu")
    plain, weights = gt.attention.plain_attention(q, k, v, mask)
    assert torch.allclose(weights.sum(-1), torch.ones(3, 2, 5))
    assert (plain - gt.attention.fused_attention(q, k, v, mask)).abs().max() <= ATOL


def test_causal_mask_with_cache_lets_new_queries_see_the_past():
    allowed = gt.model.make_mask(None, 2, 5, torch.float32, "cpu")[0, 0] == 0  # 2 new tokens after 3 cached
    assert allowed.tolist() == [[True, True, True, True, False], [True, True, True, True, True]]


@torch.no_grad()
def test_mlp_and_block_equal_transformers():
    hf, ours = make_pair(make_config("odd"))
    x = torch.randn(2, 6, 40)
    positions = torch.arange(6)[None].expand(2, -1)
    mask = gt.model.make_mask(None, 6, 6, torch.float32, "cpu")
    assert torch.equal(ours.transformer.h[0].mlp(x), hf.transformer.h[0].mlp(x))
    theirs = hf.transformer.h[0](x, attention_mask=mask, position_ids=positions)[0]
    mine = ours.transformer.h[0](x, positions, mask)[0]
    assert (mine - theirs).abs().max() <= ATOL


def test_gelu_new_equals_transformers():
    from transformers.activations import ACT2FN

    x = torch.linspace(-6, 6, 1001)
    assert torch.equal(gt.block.gelu_new(x), ACT2FN["gelu_new"](x))
