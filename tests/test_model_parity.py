"""The whole model and its three heads against transformers, in fp32: max |difference| <= 1e-5."""

import pytest
import torch
from helpers import left_padded_batch, make_config, make_pair

import gptj_teach as gt

ATOL = 1e-5


def max_diff(a, b):
    return max((x - y).abs().max().item() for x, y in zip(a, b, strict=True))


@torch.no_grad()
def test_logits_hidden_states_attentions_and_loss(pair):
    hf, ours = pair
    ids, mask, positions = left_padded_batch()
    labels = ids.masked_fill(mask == 0, -100)
    theirs = hf(
        ids,
        attention_mask=mask,
        position_ids=positions,
        labels=labels,
        output_attentions=True,
        output_hidden_states=True,
    )
    mine = ours(
        ids,
        attention_mask=mask,
        position_ids=positions,
        labels=labels,
        output_attentions=True,
        output_hidden_states=True,
    )
    # A padded position attends to no real token: what it outputs is filler that each library (and each release:
    # 5.24 builds its masks with new utilities) fills its own way. Compare only where both define a result:
    # outputs at real positions, attention rows of real queries. Nothing real ever reads a padded position.
    real = mask == 1  # (batch, seq)
    assert (mine.logits[real] - theirs.logits[real]).abs().max() <= ATOL
    assert len(mine.hidden_states) == hf.config.n_layer + 1
    assert max_diff([h[real] for h in mine.hidden_states], [h[real] for h in theirs.hidden_states]) <= ATOL
    rows = real[:, None, :, None].expand_as(mine.attentions[0])  # (batch, heads, query, key): real queries
    assert max_diff([a[rows] for a in mine.attentions], [a[rows] for a in theirs.attentions]) <= ATOL
    assert (mine.loss - theirs.loss).abs() <= ATOL  # the labels of padded positions are -100: not counted


@torch.no_grad()
def test_default_positions_match_transformers_without_padding(pair):
    hf, ours = pair
    ids = torch.randint(1, 97, (2, 11))
    assert (ours(ids).logits - hf(ids).logits).abs().max() <= ATOL


@torch.no_grad()
def test_forward_with_only_a_mask_equals_transformers_forward(pair):
    """No position_ids on either side: both count padding (positions are cache slots), so a left-padded row
    gets positions 3, 4, ... in both; generate passes positions_from_mask instead, in both libraries."""
    hf, ours = pair
    ids, mask, _ = left_padded_batch()
    real = mask == 1
    assert (ours(ids, attention_mask=mask).logits[real] - hf(ids, attention_mask=mask).logits[real]).abs().max() <= ATOL


@torch.no_grad()
def test_kv_cache_token_by_token_equals_one_full_pass(pair):
    _, ours = pair
    ids = torch.randint(1, 97, (2, 10))
    full = ours(ids).logits
    out = ours(ids[:, :4], use_cache=True)  # a prompt of 4, then one token at a time
    steps = [out.logits]
    for t in range(4, 10):
        out = ours(ids[:, t : t + 1], cache=out.cache, use_cache=True)
        steps.append(out.logits)
    assert (torch.cat(steps, dim=1) - full).abs().max() <= ATOL


@torch.no_grad()
def test_kv_cache_with_left_padding_equals_transformers(pair):
    hf, ours = pair
    ids, mask, positions = left_padded_batch()
    full = hf(ids, attention_mask=mask, position_ids=positions).logits
    out = ours(ids[:, :6], attention_mask=mask[:, :6], position_ids=positions[:, :6], use_cache=True)
    rest = ours(ids[:, 6:], attention_mask=mask, position_ids=positions[:, 6:], cache=out.cache).logits
    real = mask == 1  # padded positions attend to nothing real: their outputs are filler in both libraries
    assert (torch.cat([out.logits, rest], dim=1)[real] - full[real]).abs().max() <= ATOL


@torch.no_grad()
def test_plain_and_fused_attention_paths_agree(pair):
    _, ours = pair
    ids, mask, _ = left_padded_batch()
    fused = ours(ids, attention_mask=mask).logits  # no weights requested: scaled_dot_product_attention
    plain = ours(ids, attention_mask=mask, output_attentions=True).logits  # step by step
    assert (fused - plain).abs().max() <= ATOL


@pytest.mark.parametrize("name", ["small", "odd"])
@torch.no_grad()
def test_sequence_classification_reads_rightmost_non_pad_token(name):
    config = make_config(name, num_labels=3, pad_token_id=0)
    hf, ours = make_pair(config, "GPTJForSequenceClassification")
    ids, mask, positions = left_padded_batch()
    right = torch.stack([torch.cat([r[m == 1], r[m == 0]]) for r, m in zip(ids, mask)])  # right-padded copy
    labels = torch.tensor([0, 2, 1])
    for batch, batch_mask in ((ids, mask), (right, (right != 0).long())):
        theirs = hf(batch, attention_mask=batch_mask, labels=labels)
        mine = ours(batch, attention_mask=batch_mask, labels=labels)
        assert (mine.logits - theirs.logits).abs().max() <= ATOL
        assert (mine.loss - theirs.loss).abs() <= ATOL


@torch.no_grad()
def test_sequence_classification_regression_and_multilabel_losses():
    for num_labels, labels in (
        (1, torch.tensor([0.5, -1.0, 2.0])),
        (3, torch.tensor([[1.0, 0, 1], [0, 0, 1], [1, 1, 0]])),
    ):
        hf, ours = make_pair(make_config(num_labels=num_labels, pad_token_id=0), "GPTJForSequenceClassification")
        ids = torch.randint(1, 97, (3, 7))
        assert (ours(ids, labels=labels).loss - hf(ids, labels=labels).loss).abs() <= ATOL


def test_sequence_classification_refuses_batch_without_pad_token():
    _, ours = make_pair(make_config(num_labels=2), "GPTJForSequenceClassification")
    with pytest.raises(ValueError, match="pad_token_id"):
        ours(torch.randint(1, 97, (2, 5)))


@torch.no_grad()
def test_question_answering_logits_and_loss():
    hf, ours = make_pair(make_config("odd"), "GPTJForQuestionAnswering")
    ids = torch.randint(1, 97, (3, 8))
    start, end = torch.tensor([1, 4, 20]), torch.tensor([2, 7, 30])  # the third is outside: ignored
    theirs = hf(ids, start_positions=start, end_positions=end)
    mine = ours(ids, start_positions=start, end_positions=end)
    assert (mine.start_logits - theirs.start_logits).abs().max() <= ATOL
    assert (mine.end_logits - theirs.end_logits).abs().max() <= ATOL
    assert (mine.loss - theirs.loss).abs() <= ATOL


@torch.no_grad()
def test_base_model_hidden_state():
    hf, ours = make_pair(make_config("odd"), "GPTJModel")
    ids = torch.randint(1, 97, (2, 6))
    assert (ours(ids).last_hidden_state - hf(ids).last_hidden_state).abs().max() <= ATOL


def test_from_transformers_shares_storage_and_keys(pair):
    hf, ours = pair
    assert list(ours.state_dict()) == list(hf.state_dict())
    for (name, a), b in zip(ours.state_dict().items(), hf.state_dict().values()):
        assert a.data_ptr() == b.data_ptr(), name


def test_from_transformers_refuses_another_head():
    hf, _ = make_pair(make_config(), "GPTJModel")
    with pytest.raises(TypeError, match="GPTJForCausalLM"):
        gt.GPTJForCausalLM.from_transformers(hf)


def test_gradients_match_transformers():
    hf, ours = make_pair(make_config("odd"))
    hf.train(), ours.train()  # dropout is 0 in these configs: train mode is deterministic
    ids = torch.randint(1, 97, (2, 9))
    hf(ids, labels=ids).loss.backward()
    theirs = {n: p.grad.clone() for n, p in hf.named_parameters()}
    hf.zero_grad()
    ours(ids, labels=ids).loss.backward()  # ours shares the parameters' storage but not the Parameter objects
    for name, p in ours.named_parameters():
        assert (p.grad - theirs[name]).abs().max() <= ATOL, name


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@torch.no_grad()
def test_half_precision_matches_transformers(dtype):
    hf, ours = make_pair(make_config("small"))
    hf.to(dtype), ours.to(dtype)
    ids, mask, positions = left_padded_batch()
    # use_cache=False: transformers' cache would hand attention k and v as new contiguous tensors, ours are views, and
    # a matmul on another memory layout may take another BLAS kernel (a few ulps on some shapes). Without it eager
    # runs our plain path's ops on the same shapes and strides (head_dim 16: / 4 and * 0.25 are the same bits)
    theirs = hf(ids, attention_mask=mask, position_ids=positions, output_attentions=True, use_cache=False).logits
    mine = ours(ids, attention_mask=mask, position_ids=positions, output_attentions=True).logits  # as eager's ops
    real = mask == 1  # padded positions hold filler in both libraries (see the fp32 test above)
    assert torch.equal(mine[real], theirs[real])  # bit-equal by construction against transformers' eager attention
