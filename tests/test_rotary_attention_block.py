"""Each component against its transformers counterpart, and the laws rotary must obey (hypothesis)."""

import math

import torch
from helpers import make_config, make_pair
from hypothesis import given, settings
from hypothesis import strategies as st

import gptj_teach as gt
from gptj_teach import reference as ref
from gptj_teach.gptj.rotary import apply_rotary_pos_emb, fixed_pos_embedding, rotate_every_two

ATOL = 1e-5


def test_sinusoid_table_equals_transformers():
    positions = torch.arange(50)[None]  # (1, 50)
    sin, cos = fixed_pos_embedding(positions, 16)
    table = ref.create_sinusoidal_positions(50, 16)  # (50, 16): sin | cos
    # bit-equal by construction: the same elementwise ops (frequencies, position * frequency, sin, cos), same shapes
    assert torch.equal(torch.cat([sin[0], cos[0]], dim=-1), table)


def test_rotate_every_two_equals_transformers():
    x = torch.randn(2, 5, 3, 8)
    assert torch.equal(rotate_every_two(x), ref.rotate_every_two(x))  # exact: copies and a negation, no rounding


def rotary(x, positions, rotary_dim):
    """The table for the positions, then the rotation: what attention does with q and k."""
    return apply_rotary_pos_emb(x, *fixed_pos_embedding(positions, rotary_dim, x.dtype))


def test_apply_rotary_pos_emb_equals_transformers_and_passes_the_rest_through():
    x = torch.randn(2, 7, 3, 16)  # (batch, seq, heads, head_dim); rotary on the first 6 dims
    positions = torch.arange(7).repeat(2, 1) + 3
    table = ref.create_sinusoidal_positions(20, 6)
    sin, cos = table[positions].split(3, dim=-1)
    expected = torch.cat([ref.apply_rotary_pos_emb(x[..., :6], sin, cos), x[..., 6:]], dim=-1)
    # bit-equal by construction: x * cos + rotate_every_two(x) * sin on the same shapes; the angles are the same fp32
    # products, and sin, cos are elementwise (ATen computes every element with one routine, whatever the length)
    assert torch.equal(rotary(x, positions, 6), expected)
    assert torch.equal(apply_rotary_pos_emb(x, sin, cos), expected)  # the table's width says how many dims turn
    assert torch.equal(rotary(x, positions, 6)[..., 6:], x[..., 6:])
    # a whole head rotated (head_dim == rotary_dim): transformers' function itself, on the same arguments
    assert torch.equal(apply_rotary_pos_emb(x[..., :6], sin, cos), ref.apply_rotary_pos_emb(x[..., :6], sin, cos))


def test_the_table_is_computed_in_fp32_then_rounded_like_transformers():
    positions = torch.arange(1500, 1520)[None]  # large angles: an fp16 product would be far off
    table = ref.create_sinusoidal_positions(2048, 64)  # (2048, 64) fp32, as transformers keeps it
    for dtype in (torch.float16, torch.bfloat16):
        sin, cos = fixed_pos_embedding(positions, 64, dtype)
        # transformers' GPTJRotaryEmbedding: rows of the fp32 table, cast to the model's dtype; bit-equal, since
        # both round the same fp32 numbers once
        assert sin.dtype == cos.dtype == dtype
        assert torch.equal(torch.cat([sin, cos], dim=-1), table[positions].to(dtype))


vectors = st.integers(0, 2**31 - 1).map(lambda seed: torch.randn(16, generator=torch.Generator().manual_seed(seed)))


@settings(max_examples=60, deadline=None)
@given(vectors, st.integers(0, 2000))
def test_rotary_keeps_vector_norms(x, position):
    rotated = rotary(x.view(1, 1, 1, 16), torch.tensor([[position]]), 16)
    assert math.isclose(rotated.norm().item(), x.norm().item(), rel_tol=1e-5)


@settings(max_examples=60, deadline=None)
@given(vectors, vectors, st.integers(0, 500), st.integers(0, 500), st.integers(0, 500))
def test_rotated_dot_product_depends_only_on_distance(q, k, m, n, shift):
    def score(i, j):
        qi = rotary(q.view(1, 1, 1, 16).double(), torch.tensor([[i]]), 16)
        kj = rotary(k.view(1, 1, 1, 16).double(), torch.tensor([[j]]), 16)
        return (qi * kj).sum().item()

    # the angles come from an fp32 table (like transformers'), so allow fp32 rounding of position * frequency
    assert abs(score(m, n) - score(m + shift, n + shift)) <= 1e-3 * (q.norm() * k.norm()).item()


@torch.no_grad()
def test_attention_layer_equals_transformers():
    hf, ours = make_pair(make_config("odd"))
    x = torch.randn(2, 6, 40)
    positions = torch.arange(6)[None].expand(2, -1)
    mask = gt.gptj.model.make_mask(None, torch.arange(6), 6, torch.float32)
    theirs, their_weights = ref.attention_outputs(hf, 0, x, position_ids=positions)  # layer 0's attention, on x
    cache = gt.gptj.cache.DynamicCache()
    mine, weights = ours.transformer.h[0].attn(x, positions, mask, cache, output_attentions=True)
    assert (mine - theirs).abs().max() <= ATOL
    assert (weights - their_weights).abs().max() <= ATOL
    k, v = cache[0]  # attention stored its keys and values under its layer index
    assert k.shape == v.shape == (2, 5, 6, 8)  # (batch, heads, seq, head_dim)


def test_plain_and_fused_attention_agree_with_padding():
    q, k, v = torch.randn(3, 2, 5, 8), torch.randn(3, 2, 9, 8), torch.randn(3, 2, 9, 8)
    padding = torch.ones(3, 9, dtype=torch.long)
    padding[1, :2] = 0
    mask = gt.gptj.model.make_mask(padding, torch.arange(4, 9), 9, torch.float32)
    plain, weights = gt.gptj.attention.plain_attention(q, k, v, mask)
    assert torch.allclose(weights.sum(-1), torch.ones(3, 2, 5))
    assert (plain - gt.gptj.attention.fused_attention(q, k, v, mask)).abs().max() <= ATOL


def test_causal_mask_with_cache_lets_new_queries_see_the_past():
    allowed = gt.gptj.model.make_mask(None, torch.arange(3, 5), 5, torch.float32)[0, 0] == 0  # 2 new after 3 cached
    assert allowed.tolist() == [[True, True, True, True, False], [True, True, True, True, True]]


def test_causal_mask_in_a_static_cache_hides_the_slots_not_written_yet():
    allowed = gt.gptj.model.make_mask(None, torch.tensor([2]), 6, torch.float32)[0, 0] == 0  # the token at slot 2
    assert allowed.tolist() == [[True, True, True, False, False, False]]


@torch.no_grad()
def test_mlp_and_block_equal_transformers():
    hf, ours = make_pair(make_config("odd"))
    x = torch.randn(2, 6, 40)
    positions = torch.arange(6)[None].expand(2, -1)
    mask = gt.gptj.model.make_mask(None, torch.arange(6), 6, torch.float32)
    theirs = ref.block_outputs(hf, 0, x, position_ids=positions)
    # MLP reads ln_1(x). Bit-equal by construction: LayerNorm, two Linears and gelu_new, the same ops on the same shapes
    assert torch.equal(ours.transformer.h[0].mlp(ours.transformer.h[0].ln_1(x)), theirs["mlp"])
    mine = ours.transformer.h[0](x, positions, mask)[0]
    assert (mine - theirs["block"]).abs().max() <= ATOL


def test_the_model_computes_the_rotation_table_once_and_a_block_alone_gets_the_same_result(monkeypatch):
    _, ours = make_pair(make_config("odd"))
    calls = []
    for module in (gt.gptj.model, gt.gptj.attention):  # both build a table: the model for all layers, attention
        monkeypatch.setattr(
            module,
            "fixed_pos_embedding",  # for itself when called alone
            lambda *args: calls.append(args) or fixed_pos_embedding(*args),
        )
    ours(torch.randint(97, (2, 6)))
    assert len(calls) == 1 < ours.config.n_layer  # one table for every layer, not one per layer
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        block, x = ours.transformer.h[0].to(dtype), torch.randn(2, 6, 40, dtype=dtype)
        positions, mask = (
            torch.arange(3, 9)[None].expand(2, -1),
            gt.gptj.model.make_mask(None, torch.arange(6), 6, dtype),
        )
        handed_in = block(x, positions, mask, rotation=fixed_pos_embedding(positions, 4, dtype))[0]
        assert torch.equal(handed_in, block(x, positions, mask)[0])  # its own table: the same ops, so the same bits


def test_gelu_new_equals_transformers():
    from transformers.activations import ACT2FN

    x = torch.linspace(-6, 6, 1001)
    assert torch.equal(gt.gptj.block.gelu_new(x), ACT2FN["gelu_new"](x))  # by construction: the same formula, op for op


def test_the_two_spellings_of_the_score_scaling_differ_at_most_in_the_last_bit():
    """transformers <= 5.23 divides the scores by sqrt(head_dim), like mesh-transformer-jax and like us; 5.24
    multiplies by head_dim ** -0.5. Where sqrt(head_dim) is exact (16, 64, 256: the tiny model and GPT-J 6B) the
    two give the same bits; elsewhere (head_dim 8 in the "odd" config) they differ by one rounding at most."""
    scores = torch.randn(100_000)
    for head_dim in (16, 64, 256):
        assert torch.equal(scores / math.sqrt(head_dim), scores * head_dim**-0.5)
    divided, multiplied = scores / math.sqrt(8), scores * 8**-0.5
    ulp = torch.finfo(torch.float32).eps * divided.abs()  # one unit in the last place, per element
    assert not torch.equal(divided, multiplied) and ((divided - multiplied).abs() <= ulp).all()


@torch.no_grad()
def test_token_by_token_with_the_reference_cache_equals_ours():
    hf, ours = make_pair(make_config("odd"))
    ids = torch.randint(1, 97, (2, 7))
    with ref.catch(hf, "transformer.h.2.attn") as caught:  # what transformers' last attention layer outputs
        cache = None
        for t in range(7):
            _, cache = ref.forward_with_cache(hf, ids[:, t : t + 1], cache)
    out = ours(ids, output_hidden_states=True)
    block = ours.transformer.h[2]
    mine = block.attn(
        block.ln_1(out.hidden_states[2]),
        torch.arange(7)[None].expand(2, -1),
        gt.gptj.model.make_mask(None, torch.arange(7), 7, torch.float32),
    )[0]
    assert len(caught["transformer.h.2.attn"]) == 7
    assert (torch.cat(caught["transformer.h.2.attn"], dim=1) - mine).abs().max() <= ATOL


@torch.no_grad()
def test_reference_sharing_our_tensors_is_the_reference():
    """gt.reference.sharing: transformers' model on our parameters (no copy), its sinusoid tables rebuilt."""
    hf, ours = make_pair(make_config("odd"))
    theirs = ref.sharing(ours)
    assert [t.data_ptr() for t in theirs.state_dict().values()] == [t.data_ptr() for t in ours.state_dict().values()]
    ids = torch.randint(1, 97, (2, 9))
    assert torch.equal(theirs(ids).logits, hf(ids).logits)  # by construction: the same code, tensors and shapes
