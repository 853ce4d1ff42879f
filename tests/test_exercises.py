"""The notebook exercises: each check accepts the solution in notebooks/solutions, rejects the plausible wrong
answers with the right hint, and says "Not yet" (without raising) to the placeholders the notebooks ship."""

import importlib.util
import math
from pathlib import Path

import pytest
import torch
import transformers
from helpers import make_config, notebook_function

import gptj_teach as gt

ex = gt.classroom.exercises
from gptj_teach.train import corpus  # noqa: E402

SOLUTIONS_PATH = Path(__file__).parents[1] / "notebooks" / "solutions" / "solutions.py"
spec = importlib.util.spec_from_file_location("solutions", SOLUTIONS_PATH)
sol = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sol)

CONFIG_6B = transformers.GPTJConfig()
FUNCTION_CHECKS = {  # check -> the solution function
    ex.check_merge_pair: sol.merge_pair,
    ex.check_rotate_every_two: sol.rotate_every_two,
    ex.check_causal_mask: sol.causal_mask,
    ex.check_parallel_block: sol.parallel_block,
    ex.check_last_token_index: sol.last_token_index,
    ex.check_top_p: sol.top_p,
    ex.check_truncate_at_stop: sol.truncate_at_stop,
    ex.check_bpe: sol.bpe,
    ex.check_decode: sol.decode,
    ex.check_inv_frequencies: sol.inv_frequencies,
    ex.check_apply_rotary_pos_emb: sol.apply_rotary_pos_emb,
    ex.check_attention_scores: sol.attention_scores,
    ex.check_softmax_attention: sol.softmax_attention,
    ex.check_layer_norm: sol.layer_norm,
    ex.check_mlp: sol.mlp,
    ex.check_forward: sol.forward,
    ex.check_lm_loss: sol.lm_loss,
    ex.check_top_k: sol.top_k,
    ex.check_logits_to_probs: sol.logits_to_probs,
    ex.check_head_scores: sol.head_scores,
    ex.check_best_head: sol.best_head,
    ex.check_parameter_count: sol.parameter_count,
    ex.check_first_divergent_layer: sol.first_divergent_layer,
    ex.check_logit_lens: sol.logit_lens,
}


def verdict(check, answer, capsys):
    """(returned value, printed text) of one check."""
    ok = check(answer)
    return ok, capsys.readouterr().out


def rejected(check, answer, capsys, *hint_words):
    """The check says Not yet, with every word of hint_words in its hint."""
    ok, out = verdict(check, answer, capsys)
    assert ok is False and out.startswith("❌ Not yet: "), out
    for word in hint_words:
        assert word in out, f"{word!r} missing from hint: {out}"
    return out


@pytest.mark.parametrize("check", list(FUNCTION_CHECKS), ids=lambda c: c.__name__)
def test_function_checks_accept_the_solution_and_reject_placeholders(check, capsys):
    ok, out = verdict(check, FUNCTION_CHECKS[check], capsys)
    assert ok is True and out.startswith("✅ Right! "), out

    def placeholder(*args): ...  # your code here

    rejected(check, placeholder, capsys, "returned None")
    rejected(check, None, capsys, "pass your function itself")

    def crashes(*args):
        return 1 / 0

    rejected(check, crashes, capsys, "your function raised ZeroDivisionError: division by zero")

    def student_stub(*args):  # what the student edition's cleared solution does when it is called
        raise NotImplementedError("Your turn: replace these two lines with your code")

    out = rejected(check, student_stub, capsys, "not written yet", "Your turn")
    assert "raised" not in out, out


def test_numeric_checks_accept_the_solutions(tiny, capsys):
    model, tok = tiny
    assert verdict(ex.check_memory_fp16_gb, sol.memory_fp16_gb(), capsys)[0] is True
    assert verdict(ex.check_kv_cache_bytes_per_token, sol.kv_cache_bytes_per_token(), capsys)[0] is True
    head = sol.previous_token_head(model, tok, ex.attention_views.PREVIOUS_TOKEN_TEXT)
    assert verdict(ex.check_previous_token_head, head, capsys)[0] is True


@pytest.mark.parametrize(
    "check",
    [ex.check_memory_fp16_gb, ex.check_kv_cache_bytes_per_token, ex.check_previous_token_head],
    ids=lambda c: c.__name__,
)
@pytest.mark.parametrize("placeholder", [None, "12", [1], float("nan")], ids=repr)
def test_answer_checks_reject_placeholders_without_raising(check, placeholder, capsys):
    rejected(check, placeholder, capsys)


# ---- wrong answers, one or more per exercise, each with the hint it should get ------------------------------
def fp16_gb(params):
    return params * 2 / 1e9


def test_memory_wrong_answers_get_their_hint_and_never_the_answer(capsys):
    with torch.device("meta"):
        params = sum(p.numel() for p in transformers.GPTJForCausalLM(CONFIG_6B).parameters())
    right = fp16_gb(params)
    assert verdict(ex.check_memory_fp16_gb, 12.0, capsys)[0] is True  # "6B x 2 bytes" is close enough
    lm_head = CONFIG_6B.n_embd * CONFIG_6B.vocab_size + CONFIG_6B.vocab_size
    outs = [
        rejected(ex.check_memory_fp16_gb, params * 4 / 1e9, capsys, "4 bytes"),
        rejected(ex.check_memory_fp16_gb, params * 2 / 2**30, capsys, "GiB"),
        rejected(ex.check_memory_fp16_gb, fp16_gb(params - lm_head), capsys, "lm_head"),
        rejected(ex.check_memory_fp16_gb, params * 2, capsys, "bytes"),
        rejected(ex.check_memory_fp16_gb, 30.0, capsys, "too high"),
        rejected(ex.check_memory_fp16_gb, 9.0, capsys, "too low"),
    ]
    for out in outs:
        assert not any(f"{right:{fmt}}" in out for fmt in (".1f", ".2f", ".3g", ".0f")), out


def test_kv_cache_wrong_answers_get_their_hint_and_never_the_answer(capsys):
    n_layer, n_embd = CONFIG_6B.n_layer, CONFIG_6B.n_embd
    right = 2 * n_layer * n_embd * 2
    outs = [
        rejected(ex.check_kv_cache_bytes_per_token, n_layer * n_embd * 2, capsys, "K *and* V"),
        rejected(ex.check_kv_cache_bytes_per_token, 2 * n_layer * n_embd * 4, capsys, "fp32"),
        rejected(ex.check_kv_cache_bytes_per_token, 2 * n_embd * 2, capsys, "one layer"),
        rejected(ex.check_kv_cache_bytes_per_token, 10**7, capsys, "too high"),
        rejected(ex.check_kv_cache_bytes_per_token, 1000, capsys, "too low"),
    ]
    for out in outs:
        assert str(right) not in out and f"{right:,}" not in out and f"{right / 1e6:.2f}" not in out, out


def test_merge_pair_wrong_answers(capsys):
    def first_only(symbols, pair):
        for i in range(len(symbols) - 1):
            if (symbols[i], symbols[i + 1]) == pair:
                return symbols[:i] + [symbols[i] + symbols[i + 1]] + symbols[i + 2 :]
        return list(symbols)

    def overlapping(symbols, pair):  # merges a|a and then a|a again in "aaa"
        return [a + b if (a, b) == pair else a for a, b in zip(symbols, symbols[1:] + [""])] if symbols else []

    def in_place(symbols, pair):
        symbols[:] = sol.merge_pair(symbols, pair)
        return symbols

    rejected(ex.check_merge_pair, first_only, capsys, "your function returned")
    rejected(ex.check_merge_pair, overlapping, capsys, "never overlap")
    rejected(ex.check_merge_pair, in_place, capsys, "in place")
    rejected(ex.check_merge_pair, lambda s, p: tuple(sol.merge_pair(s, p)), capsys, "list")


def test_rotate_every_two_wrong_answers(capsys):
    def rotate_half(x):  # Llama / GPT-NeoX
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat((-x2, x1), dim=-1)

    rejected(ex.check_rotate_every_two, rotate_half, capsys, "half-split")
    rejected(ex.check_rotate_every_two, lambda x: -sol.rotate_every_two(x), capsys, "signs")
    rejected(ex.check_rotate_every_two, lambda x: torch.cat((-x[..., 1::2], x[..., ::2]), -1), capsys, "interleave")
    rejected(ex.check_rotate_every_two, lambda x: sol.rotate_every_two(x).float(), capsys, "dtype")
    rejected(ex.check_rotate_every_two, lambda x: sol.rotate_every_two(x)[..., :-1], capsys, "shape")


def test_causal_mask_wrong_answers(capsys):
    rejected(ex.check_causal_mask, lambda q, kv: torch.ones(q, kv, dtype=torch.bool).tril(), capsys, "LAST q_len")
    rejected(ex.check_causal_mask, lambda q, kv: sol.causal_mask(q, kv).float(), capsys, "bool", "convert")
    additive = lambda q, kv: torch.zeros(q, kv).masked_fill(~sol.causal_mask(q, kv), -math.inf)  # noqa: E731
    rejected(ex.check_causal_mask, additive, capsys, "bool")
    rejected(ex.check_causal_mask, lambda q, kv: ~sol.causal_mask(q, kv), capsys, "later keys")
    rejected(
        ex.check_causal_mask, lambda q, kv: torch.ones(q, kv, dtype=torch.bool).tril(kv - q - 1), capsys, "themselves"
    )


def test_parallel_block_wrong_answers(capsys):
    def sequential(block, x, position_ids, mask):  # GPT-2 style
        x = x + block.attn(block.ln_1(x), position_ids, mask)[0]
        return x + block.mlp(block.ln_1(x))

    def no_residual(block, x, position_ids, mask):
        h = block.ln_1(x)
        return block.attn(h, position_ids, mask)[0] + block.mlp(h)

    def no_layernorm(block, x, position_ids, mask):
        return x + block.attn(x, position_ids, mask)[0] + block.mlp(x)

    def whole_tuple(block, x, position_ids, mask):
        return block(x, position_ids, mask)

    rejected(ex.check_parallel_block, sequential, capsys, "GPT-2's sequential")
    rejected(ex.check_parallel_block, no_residual, capsys, "residual")
    rejected(ex.check_parallel_block, no_layernorm, capsys, "ln_1(x)")
    rejected(ex.check_parallel_block, whole_tuple, capsys, "tuple")


def test_parallel_block_check_leaves_the_global_random_stream_alone(capsys):
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    ex.check_parallel_block(sol.parallel_block)
    assert torch.equal(torch.rand(3), expected)


def test_last_token_index_wrong_answers(capsys):
    rejected(
        ex.check_last_token_index,
        lambda ids, pad: torch.full((ids.shape[0],), ids.shape[1] - 1),
        capsys,
        "padding included",
    )
    rejected(ex.check_last_token_index, lambda ids, pad: (ids != pad).sum(-1) - 1, capsys, "right padding only")
    rejected(ex.check_last_token_index, lambda ids, pad: sol.last_token_index(ids, pad).float(), capsys, "integer")
    assert verdict(ex.check_last_token_index, lambda ids, pad: sol.last_token_index(ids, pad).int(), capsys)[0]


@torch.no_grad()
def test_last_token_reference_is_where_the_sequence_classifier_reads():
    """The rule the check uses is the one GPTJForSequenceClassification (ours and transformers') applies."""
    config = make_config("small", pad_token_id=0, num_labels=3)
    torch.manual_seed(0)
    hf = transformers.GPTJForSequenceClassification(config).eval()
    ids = torch.tensor([[5, 6, 7, 0, 0], [5, 6, 7, 8, 9], [0, 0, 5, 6, 7], [5, 0, 6, 0, 0]])
    per_token = hf.score(hf.transformer(ids).last_hidden_state)  # (batch, seq, labels)
    index = ex.heads._reference_last_token_index(ids, 0)
    assert torch.equal(per_token[torch.arange(4), index], hf(ids).logits)  # by construction: the classifier's own ops
    ours = gt.GPTJForSequenceClassification.from_transformers(hf).eval()
    assert torch.allclose(per_token[torch.arange(4), index], ours(ids).logits, atol=1e-5)


def top_p_by_count(extra, most_likely=True):
    """A top-p that keeps `extra` more (or fewer) tokens than the right answer, the most (or least) likely ones."""

    def top_p(logits, p):
        right_kept = (~torch.isneginf(sol.top_p(logits, p))).sum(-1, keepdim=True)  # (..., 1)
        order = logits.argsort(-1, descending=most_likely).argsort(-1)  # rank of every token, 0 = kept first
        return logits.masked_fill(order >= (right_kept + extra).clamp(min=0), -math.inf)

    return top_p


def test_top_p_wrong_answers(capsys):
    def probabilities(logits, p):
        return sol.top_p(logits, p).softmax(-1)

    def zero_not_inf(logits, p):
        return torch.where(torch.isneginf(sol.top_p(logits, p)), 0.0, logits)

    assert verdict(ex.check_top_p, top_p_by_count(0), capsys)[0] is True  # the helper itself is right
    rejected(ex.check_top_p, top_p_by_count(+1), capsys, "too many")
    rejected(ex.check_top_p, top_p_by_count(-1), capsys, "too few")
    rejected(ex.check_top_p, probabilities, capsys, "not probabilities")
    rejected(ex.check_top_p, zero_not_inf, capsys, "-inf")
    rejected(ex.check_top_p, lambda logits, p: logits.clone(), capsys, "too many")  # forgot to filter at all
    rejected(ex.check_top_p, top_p_by_count(0, most_likely=False), capsys, "MOST likely")
    rejected(ex.check_top_p, lambda logits, p: sol.top_p(logits, p) * 2, capsys, "unchanged")


def test_truncate_at_stop_wrong_answers(capsys):
    rejected(ex.check_truncate_at_stop, lambda t, s: t[: t.find(s)], capsys, "does not occur")
    including = lambda t, s: t[: t.find(s) + len(s)] if s in t else t  # noqa: E731
    rejected(ex.check_truncate_at_stop, including, capsys, "stop string itself")
    rejected(ex.check_truncate_at_stop, lambda t, s: t.rpartition(s)[0] if s in t else t, capsys, "FIRST")
    rejected(ex.check_truncate_at_stop, lambda t, s: t.split(s), capsys, "str")


@torch.no_grad()
def previous_token_scores_from_transformers():
    """(layer, head) previous-token scores of the tiny checkpoint, computed with transformers' GPT-J."""
    hf = transformers.GPTJForCausalLM.from_pretrained(gt.checkpoint.TINY, attn_implementation="eager").eval()
    ids = gt.load_tokenizer()(ex.attention_views.PREVIOUS_TOKEN_TEXT, return_tensors="pt").input_ids
    attentions = hf(ids, output_attentions=True).attentions  # per layer (1, heads, seq, seq)
    return torch.stack(
        [a[0, :, torch.arange(1, ids.shape[1]), torch.arange(ids.shape[1] - 1)].float().mean(-1) for a in attentions]
    )  # (layer, head): weight of token i on token i - 1


def test_previous_token_head_agrees_with_transformers(capsys):
    scores = previous_token_scores_from_transformers()
    best = divmod(scores.argmax().item(), scores.shape[1])
    worst = divmod(scores.argmin().item(), scores.shape[1])
    assert verdict(ex.check_previous_token_head, best, capsys)[0] is True
    assert verdict(ex.check_previous_token_head, list(best), capsys)[0] is True
    assert verdict(ex.check_previous_token_head, tuple(torch.tensor(best)), capsys)[0] is True
    if scores[worst] < scores.max() - ex.attention_views.PREVIOUS_TOKEN_MARGIN:
        out = rejected(ex.check_previous_token_head, worst, capsys, "previous token")
        assert str(best) not in out  # the hint never names the answer
    if best[0] + 1 < scores.shape[0] and best[1] + 1 < scores.shape[1]:
        one_based = (best[0] + 1, best[1] + 1)
        if scores[one_based] < scores.max() - ex.attention_views.PREVIOUS_TOKEN_MARGIN:
            rejected(ex.check_previous_token_head, one_based, capsys, "counted from 0")
    rejected(ex.check_previous_token_head, (scores.shape[0], 0), capsys, "layers go")
    rejected(ex.check_previous_token_head, (1, 2, 3), capsys, "pair")


# ---- the "your turn" checks added with the student edition --------------------------------------------------
def test_bpe_and_decode_wrong_answers(capsys):
    ranks, byte_to_symbol = gt.gptj.tokenizer.merge_ranks(), gt.gptj.tokenizer.bytes_to_unicode()

    def leftmost(piece):
        symbols = [byte_to_symbol[b] for b in piece.encode()]
        while known := [pair for pair in zip(symbols, symbols[1:]) if pair in ranks]:
            symbols = sol.merge_pair(symbols, known[0])
        return symbols

    rejected(ex.check_bpe, leftmost, capsys, "LOWEST rank")
    rejected(ex.check_bpe, lambda piece: list(piece), capsys, "byte symbols")
    rejected(
        ex.check_bpe,
        lambda piece: gt.gptj.tokenizer.bpe_steps(piece)[1 if len(gt.gptj.tokenizer.bpe_steps(piece)) > 2 else -1],
        capsys,
        "too early",
    )
    tok = gt.load_tokenizer()
    rejected(ex.check_decode, lambda ids: "".join(tok.convert_ids_to_tokens(ids)), capsys, "byte symbols")
    rejected(ex.check_decode, lambda ids: "".join(tok.decode([i]) for i in ids), capsys, "ALL tokens")


def test_rotary_pieces_wrong_answers(capsys):
    rejected(ex.check_inv_frequencies, lambda d: 10000 ** (torch.arange(0, d, 2) / d), capsys, "fall from 1")
    rejected(ex.check_inv_frequencies, lambda d: 1 / 10000 ** (torch.arange(d) / d), capsys, "PAIR")

    def half_split(x, sin, cos):
        return (
            x * torch.cat([cos, cos], -1)[:, :, None] + sol.rotate_every_two(x) * torch.cat([sin, sin], -1)[:, :, None]
        )

    rejected(ex.check_apply_rotary_pos_emb, half_split, capsys, "repeat_interleave")
    rejected(
        ex.check_apply_rotary_pos_emb,
        lambda x, s, c: 2 * x - sol.apply_rotary_pos_emb(x, s, c) * 0 - x + (sol.apply_rotary_pos_emb(x, -s, c) - x),
        capsys,
        "wrong way",
    )


def test_attention_pieces_wrong_answers(capsys):
    rejected(ex.check_attention_scores, lambda q, k: (q @ k.transpose(-1, -2)) / q.shape[-1] ** 0.5, capsys, "fp32")
    rejected(
        ex.check_attention_scores,
        lambda q, k: (q @ k.transpose(-1, -2)).float() / q.shape[-1] ** 0.5,
        capsys,
        "BEFORE the matmul",
    )
    rejected(ex.check_attention_scores, lambda q, k: q.float() @ k.float().transpose(-1, -2), capsys, "sqrt")
    rejected(
        ex.check_attention_scores,
        lambda q, k: q.float() @ k.float().transpose(-1, -2) / q.shape[-1],
        capsys,
        "SQUARE ROOT",
    )

    def no_mask(q, k, v, mask):
        weights = torch.softmax(sol.attention_scores(q, k), -1).to(q.dtype)
        return weights @ v, weights

    def fp32_weights(q, k, v, mask):
        weights = torch.softmax(sol.attention_scores(q, k) + mask, -1)
        return weights.to(v.dtype) @ v, weights

    def wrong_dim(q, k, v, mask):
        weights = torch.softmax(sol.attention_scores(q, k) + mask, -2).to(q.dtype)
        return weights @ v, weights

    rejected(ex.check_softmax_attention, no_mask, capsys, "masked keys")
    rejected(ex.check_softmax_attention, fp32_weights, capsys, "cast the fp32 weights back")
    rejected(ex.check_softmax_attention, wrong_dim, capsys, "dim=-1")
    rejected(
        ex.check_softmax_attention, lambda q, k, v, m: sol.softmax_attention(q, k, v, m)[0], capsys, "(output, weights)"
    )


def test_block_pieces_wrong_answers(capsys):
    def unbiased(x, ln):
        return (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, keepdim=True) + ln.eps) * ln.weight + ln.bias

    def eps_outside(x, ln):
        centred = x - x.mean(-1, keepdim=True)
        return centred / (x.var(-1, keepdim=True, unbiased=False).sqrt() + ln.eps) * ln.weight + ln.bias

    rejected(ex.check_layer_norm, unbiased, capsys, "biased variance")
    rejected(ex.check_layer_norm, eps_outside, capsys, "inside the square root")
    rejected(ex.check_layer_norm, lambda x, ln: (sol.layer_norm(x, ln) - ln.bias) / ln.weight, capsys, "ln.weight")
    rejected(ex.check_mlp, lambda h, m: m.fc_out(torch.nn.functional.gelu(m.fc_in(h))), capsys, "exact GELU")
    rejected(ex.check_mlp, lambda h, m: m.fc_out(m.fc_in(h).relu()), capsys, "ReLU")


def test_model_pieces_wrong_answers(capsys):
    def no_ln_f(model, ids):
        body, seq = model.transformer, ids.shape[1]
        x = body.wte(ids)
        for block in body.h:
            x = block(x, torch.arange(seq)[None], gt.gptj.model.make_mask(None, torch.arange(seq), seq, torch.float32))[
                0
            ]
        return model.lm_head(x)

    rejected(ex.check_forward, no_ln_f, capsys, "ln_f")
    rejected(ex.check_forward, lambda model, ids: model.transformer(ids)[0], capsys, "shape")
    ce = torch.nn.functional.cross_entropy
    rejected(ex.check_lm_loss, lambda logits, ids: ce(logits.flatten(0, 1), ids.flatten()), capsys, "t + 1")
    rejected(ex.check_lm_loss, lambda logits, ids: sol.lm_loss(logits, ids).exp(), capsys, "perplexity")
    rejected(
        ex.check_lm_loss,
        lambda logits, ids: ce(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none"),
        capsys,
        "one number",
    )


def test_parameter_count_reference_is_transformers_count():
    """The count the check compares with is that of transformers' own GPT-J (on the meta device)."""
    for config in ex.model._parameter_count_configs():
        with torch.device("meta"):
            theirs = sum(p.numel() for p in transformers.GPTJForCausalLM(config).parameters())
        assert gt.gptj.sizes.parameter_count(config) == theirs


def counted_with(**changes):
    """A parameter_count with one of the usual slips: each change adds its term to the right count."""

    def count(config):
        d, vocab, layers = config.n_embd, config.vocab_size, config.n_layer
        inner = 4 * d if changes.get("inner_4d") else config.n_inner or 4 * d
        terms = {
            "lm_head_bias": vocab,
            "ln_2": -2 * d * layers,
            "qkv_bias": -3 * d * layers,
            "mlp_bias": (inner + d) * layers,
            "ln_f": 2 * d,
            "lm_head": d * vocab + vocab,
        }
        right = (
            sol.parameter_count(config)
            if not changes.get("inner_4d")
            else sol.parameter_count(transformers.GPTJConfig(**{**config.to_dict(), "n_inner": inner}))
        )
        return right - sum(terms[name] for name in changes if name in terms)

    return count


def test_parameter_count_wrong_answers(capsys):
    assert verdict(ex.check_parameter_count, counted_with(), capsys)[0] is True  # the helper itself is right
    rejected(ex.check_parameter_count, counted_with(lm_head_bias=True), capsys, "lm_head has a bias")
    rejected(ex.check_parameter_count, counted_with(ln_2=True), capsys, "no ln_2")
    rejected(ex.check_parameter_count, counted_with(qkv_bias=True), capsys, "no biases")
    rejected(ex.check_parameter_count, counted_with(lm_head=True), capsys, "not tied")
    rejected(ex.check_parameter_count, counted_with(mlp_bias=True), capsys, "fc_in and fc_out have biases")
    rejected(ex.check_parameter_count, counted_with(ln_f=True), capsys, "ln_f")
    rejected(ex.check_parameter_count, counted_with(inner_4d=True), capsys, "n_inner")
    rejected(ex.check_parameter_count, lambda config: float(sol.parameter_count(config)), capsys, "an int")
    rejected(ex.check_parameter_count, lambda config: sol.parameter_count(config) + 1, capsys, "too high")


def test_first_divergent_layer_wrong_answers(capsys):
    def first(values, tol, strict=True):  # the index of the first value past tol, None if none is
        return next((i for i, v in enumerate(values) if (v > tol if strict else v >= tol)), None)

    def signed(ours, ref, tol):
        return first([(a - b).max() for a, b in zip(ours, ref)], tol)

    def mean(ours, ref, tol):
        return first([(a - b).abs().mean() for a, b in zip(ours, ref)], tol)

    def at_or_above(ours, ref, tol):
        return first([(a - b).abs().max() for a, b in zip(ours, ref)], tol, strict=False)

    def last(ours, ref, tol):
        past = [i for i, (a, b) in enumerate(zip(ours, ref)) if (a - b).abs().max() > tol]
        return past[-1] if past else None

    def worst(ours, ref, tol):
        largest = torch.stack([(a - b).abs().max() for a, b in zip(ours, ref)])
        return largest.argmax().item() if (largest > tol).any() else None

    def minus_one(ours, ref, tol):
        index = sol.first_divergent_layer(ours, ref, tol)
        return None if index is None else index - 1  # the block number: entry 0 is the embedding

    def from_one(ours, ref, tol):
        index = sol.first_divergent_layer(ours, ref, tol)
        return None if index is None else index + 1

    rejected(ex.check_first_divergent_layer, signed, capsys, "ABSOLUTE")
    rejected(ex.check_first_divergent_layer, mean, capsys, "not the mean")
    rejected(ex.check_first_divergent_layer, at_or_above, capsys, "MORE than tol")
    rejected(ex.check_first_divergent_layer, last, capsys, "not the last")
    rejected(ex.check_first_divergent_layer, worst, capsys, "differs most")
    rejected(ex.check_first_divergent_layer, minus_one, capsys, "entry 0 is the embedding")
    rejected(ex.check_first_divergent_layer, from_one, capsys, "count from 0")
    rejected(
        ex.check_first_divergent_layer, lambda *args: sol.first_divergent_layer(*args) or -1, capsys, "return None"
    )
    rejected(ex.check_first_divergent_layer, lambda *args: str(sol.first_divergent_layer(*args)), capsys, "an int")

    def as_tensor(ours, ref, tol):  # a one-number integer tensor is an index too
        index = sol.first_divergent_layer(ours, ref, tol)
        return None if index is None else torch.tensor(index)

    assert verdict(ex.check_first_divergent_layer, as_tensor, capsys)[0] is True


@torch.no_grad()
def test_logit_lens_reference_gives_the_models_own_logits():
    """On the last block's output (before ln_f) the read-out the check uses gives the logits of our model and of
    transformers' model on the same weights."""
    model, ids, _ = ex.grading._small_model()
    last = ex.heads._last_block_output(model, ids)
    assert torch.equal(
        ex.heads._reference_logit_lens(model, last), model(ids).logits
    )  # the forward's own ln_f, lm_head
    hf = gt.reference.build(model.config)
    hf.load_state_dict(model.state_dict())
    torch.testing.assert_close(ex.heads._reference_logit_lens(model, last), hf(ids).logits, atol=1e-4, rtol=0)


def test_logit_lens_wrong_answers(capsys):
    rejected(ex.check_logit_lens, lambda model, h: model.lm_head(h), capsys, "ln_f first")
    rejected(
        ex.check_logit_lens,
        lambda model, h: model.transformer.ln_f(h) @ model.lm_head.weight.T,
        capsys,
        "lm_head has a bias",
    )
    rejected(
        ex.check_logit_lens,
        lambda model, h: model.transformer.ln_f(h) @ model.transformer.wte.weight.T,
        capsys,
        "not the embedding matrix",
    )
    rejected(
        ex.check_logit_lens, lambda model, h: model.lm_head(model.transformer.h[-1].ln_1(h)), capsys, "FINAL LayerNorm"
    )
    rejected(ex.check_logit_lens, lambda model, h: sol.logit_lens(model, h).softmax(-1), capsys, "not probabilities")
    rejected(ex.check_logit_lens, lambda model, h: sol.logit_lens(model, h)[:, -1], capsys, "shape")


def test_sampling_pieces_wrong_answers(capsys):
    def first_row_kth(logits, k):  # the one-row version of the notebook, on a batch
        return logits.masked_fill(logits < torch.topk(logits, k).values.flatten()[k - 1], float("-inf"))

    rejected(ex.check_top_k, first_row_kth, capsys, "EVERY row")
    rejected(ex.check_top_k, lambda logits, k: sol.top_k(logits, k + 1), capsys, "keep exactly")
    rejected(ex.check_top_k, lambda logits, k: torch.softmax(sol.top_k(logits, k), -1), capsys, "not probabilities")

    def temperature_last(logits, t, k, p):
        return torch.softmax(
            gt.generation.sampling.top_p_filter(gt.generation.sampling.top_k_filter(logits, k), p) / t, -1
        )

    rejected(ex.check_logits_to_probs, temperature_last, capsys, "FIRST")
    rejected(
        ex.check_logits_to_probs,
        lambda logits, t, k, p: sol.logits_to_probs(logits, t, max(k, 1), p),
        capsys,
        "top_k = 0",
    )
    rejected(
        ex.check_logits_to_probs,
        lambda logits, t, k, p: gt.generation.sampling.top_p_filter(logits / t, p),
        capsys,
        "softmax",
    )


def test_head_pieces_wrong_answers(capsys):
    def own_diagonal(attentions):
        maps = torch.stack([a[0] for a in attentions])
        return maps.diagonal(dim1=-2, dim2=-1).mean(-1), maps[:, :, 1:, 0].mean(-1)

    def with_query_0(attentions):
        previous, _ = sol.head_scores(attentions)
        return previous, torch.stack([a[0] for a in attentions])[..., 0].mean(-1)

    rejected(ex.check_head_scores, own_diagonal, capsys, "ITSELF")
    rejected(ex.check_head_scores, with_query_0, capsys, "leave out query 0")
    rejected(ex.check_best_head, lambda s: sol.best_head(s)[::-1], capsys, "(layer, head), in that order")
    rejected(ex.check_best_head, lambda s: s.argmax().item(), capsys, "pair of ints")
    rejected(ex.check_best_head, lambda s: divmod(s.argmax().item(), s.shape[0]), capsys, "HEADS")


def test_previous_token_head_counted_from_1_hint_only_for_that_mistake(capsys):
    scores = ex.attention_views._previous_token_scores()
    layer, head = divmod(scores.argmax().item(), scores.shape[1])
    rejected(ex.check_previous_token_head, (layer + 1, head + 1), capsys, "counted from 0")
    neighbour = (layer, (head + 1) % scores.shape[1])
    if scores[neighbour] < scores.max() - ex.attention_views.PREVIOUS_TOKEN_MARGIN:
        out = rejected(ex.check_previous_token_head, neighbour, capsys)
        assert "counted from 0" not in out, out


INSIDE_CHECKS = {  # notebooks 11 and 11b: check -> the solution function
    ex.check_dla_term: sol.dla_term,
    ex.check_induction_score: sol.induction_score,
    ex.check_zero_ablate: sol.zero_ablate,
    ex.check_copying_score: sol.copying_score,
    ex.check_patch_head: sol.patch_head,
    ex.check_offset_score: sol.offset_score,
    ex.check_induction_score_at: sol.induction_score_at,
    ex.check_zero_heads: sol.zero_heads,
}


@pytest.mark.parametrize("check", list(INSIDE_CHECKS), ids=lambda c: c.__name__)
def test_inside_checks_accept_the_solution_and_say_not_yet_to_placeholders(check, capsys):
    ok, out = verdict(check, INSIDE_CHECKS[check], capsys)
    assert ok is True and out.startswith("✅ Right! "), out
    rejected(check, lambda *args: None, capsys, "replace the `...`")
    rejected(check, lambda *args: 1 / 0, capsys, "raised ZeroDivisionError")


def test_patch_head_wrong_answers(capsys):
    def every_position(z, clean, head, pos):
        z = z.clone()
        z[:, :, head] = clean[:, :, head]
        return z

    def every_head(z, clean, head, pos):
        z = z.clone()
        z[:, pos] = clean[:, pos]
        return z

    rejected(ex.check_patch_head, every_position, capsys, "every position")
    rejected(ex.check_patch_head, every_head, capsys, "every head")
    rejected(ex.check_patch_head, lambda z, clean, head, pos: clean, capsys, "whole clean activation")
    rejected(ex.check_patch_head, lambda z, clean, head, pos: z, capsys, "nothing changed")


def test_copying_score_wrong_answers(capsys):
    rejected(ex.check_copying_score, lambda ov, k: sol.copying_score(ov.T, k), capsys, "ROW", "dim=1")
    rejected(ex.check_copying_score, lambda ov, k: sol.copying_score(ov, k) * ov.shape[0], capsys, "a count")
    rejected(ex.check_copying_score, lambda ov, k: sol.copying_score(ov, 1), capsys, "not only the largest")
    rejected(ex.check_copying_score, lambda ov, k: [sol.copying_score(ov, k)], capsys, "one number")


def test_offset_and_induction_wrong_answers(capsys):
    def over_every_query(pattern, back):
        return pattern.diagonal(-back, -2, -1).sum(-1).mean(0) / pattern.shape[-1]

    rejected(ex.check_offset_score, over_every_query, capsys, "average over the seq - back queries")
    rejected(ex.check_offset_score, lambda p, back: sol.offset_score(p, back + 1), capsys, "off by one")
    rejected(
        ex.check_offset_score,
        lambda p, back: sol.offset_score(p, back)[None].expand(p.shape[0], -1),
        capsys,
        "average over the batch",
    )
    rejected(ex.check_induction_score_at, lambda p, start, n: sol.induction_score(p, n), capsys, "LAST 2n")
    rejected(ex.check_induction_score_at, _duplicate_at, capsys, "duplicate-token")


def _duplicate_at(pattern, start, n):  # the usual off-by-one: the earlier copy itself, n back
    queries = torch.arange(start + n, start + 2 * n)
    return pattern[:, :, queries, queries - n].mean(dim=(0, 2))


def test_zero_heads_wrong_answers(capsys):
    rejected(ex.check_zero_heads, lambda z, heads: sol.zero_heads(z, heads[:1]), capsys, "only the first head")
    rejected(
        ex.check_zero_heads,
        lambda z, heads: sol.zero_heads(z, [h for h in range(z.shape[2]) if h not in heads]),
        capsys,
        "OTHER heads",
    )

    def positions(z, heads):
        z = z.clone()
        z[:, heads] = 0
        return z

    rejected(ex.check_zero_heads, positions, capsys, "third axis")


# ---- notebooks 10 and 12: the pieces of the training loop, and LoRA ------------------------------------------
TRAINING_CHECKS = {  # check -> the solution
    ex.check_next_token_loss: sol.next_token_loss,
    ex.check_learning_rate: sol.learning_rate,
    ex.check_random_windows: sol.random_windows,
    ex.check_train_step: sol.train_step,
    ex.check_lora_merge: sol.lora_merge,
    ex.check_lora_linear: sol.LoRALinear,
    ex.check_add_lora: sol.add_lora,
}


@pytest.mark.parametrize("check", list(TRAINING_CHECKS), ids=lambda c: c.__name__)
def test_training_checks_accept_the_solution_and_reject_placeholders(check, capsys):
    ok, out = verdict(check, TRAINING_CHECKS[check], capsys)
    assert ok is True and out.startswith("✅ Right! "), out
    rejected(check, lambda *args: None, capsys, "returned None")
    rejected(check, None, capsys, "itself")
    rejected(check, lambda *args: 1 / 0, capsys, "raised ZeroDivisionError")

    def student_stub(*args):
        raise NotImplementedError("Your turn: replace these two lines with your code")

    assert "raised" not in rejected(check, student_stub, capsys, "not written yet")


def test_training_numeric_checks(capsys):
    assert verdict(ex.check_initial_loss, sol.initial_loss(), capsys)[0] is True
    assert verdict(ex.check_lora_parameter_count, sol.lora_parameter_count(), capsys)[0] is True
    assert verdict(ex.check_nf4_weights_gb, sol.nf4_weights_gb(), capsys)[0] is True
    params = gt.show.memory.parameter_count(CONFIG_6B)
    rejected(ex.check_nf4_weights_gb, params * 0.5 / 1e9, capsys, "absmax")
    rejected(ex.check_nf4_weights_gb, params / 1e9, capsys, "8 bits")
    rejected(ex.check_nf4_weights_gb, params * 4.5 / 1e9, capsys, "bits: give GB")


def windows_from(draw):
    """A batch sampler made of ``draw(ids, batch, length, generator) -> starts``."""
    return lambda ids, batch, length, g: torch.stack(
        [ids[s : s + length] for s in draw(ids, batch, length, g).tolist()]
    )


def test_random_windows_wrong_answers(capsys):
    check = ex.check_random_windows
    rejected(
        check,
        windows_from(lambda ids, b, n, g: torch.randint(0, len(ids) - n + 1, (b,))),
        capsys,
        "same seed",
        "generator=generator",
    )
    rejected(
        check,
        windows_from(lambda ids, b, n, g: torch.randint(0, len(ids), (b,), generator=g)),
        capsys,
        "too near the end",
    )
    rejected(check, lambda ids, b, n, g: ids[torch.randint(0, len(ids), (b, n), generator=g)], capsys, "contiguous")
    rejected(
        check,
        windows_from(lambda ids, b, n, g: torch.randint(0, len(ids) - n, (1,), generator=g).repeat(b)),
        capsys,
        "same place",
    )
    rejected(check, lambda ids, b, n, g: sol.random_windows(ids, b, n - 1, g), capsys, "seq + 1")
    rejected(
        check,
        windows_from(lambda ids, b, n, g: torch.randint(0, max(1, (len(ids) - n) // 4), (b,), generator=g)),
        capsys,
        "near the end",
    )
    assert verdict(check, corpus.random_windows, capsys)[0] is True  # the package's own, one start short


def step_with(zero=True, clip=True, set_lr=True, shift=True, zero_after=False):
    """A training step with one of the usual mistakes (or, all flags default, a right one)."""

    def step(model, optimizer, x, lr, clip_norm):
        if set_lr:
            for group in optimizer.param_groups:
                group["lr"] = lr
        if zero:
            optimizer.zero_grad()
        logits = model(x).logits
        loss = (
            sol.next_token_loss(logits, x)
            if shift
            else torch.nn.functional.cross_entropy(logits.flatten(0, 1), x.flatten())
        )
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        optimizer.step()
        if zero_after:
            optimizer.zero_grad()
        return loss.item()

    return step


def test_train_step_wrong_answers(capsys):
    check = ex.check_train_step
    assert verdict(check, step_with(zero=False, zero_after=True), capsys)[0] is True  # zeroing after step is fine
    rejected(check, step_with(zero=False), capsys, "zero_grad")
    rejected(check, step_with(clip=False), capsys, "clip_grad_norm_")
    rejected(check, step_with(set_lr=False), capsys, "group['lr'] = lr")
    rejected(check, step_with(shift=False), capsys, "my_next_token_loss")
    rejected(check, lambda *args: torch.tensor(step_with()(*args)) + 1, capsys, "loss.item()")


def lora_layer(scale=True, freeze=True, both_zero=False, with_base=True, parameters=True):
    """The solution's LoRA layer, with one of the usual mistakes."""

    class Layer(sol.LoRALinear):
        def __init__(self, base, r, alpha):
            super().__init__(base, r, alpha)
            base.requires_grad_(not freeze)
            if both_zero:
                self.A.data.zero_()
            if not parameters:
                A, B = self.A.data, self.B.data
                del self.A, self.B
                self.A, self.B = A, B

        def forward(self, x):
            update = (self.scale if scale else 1) * (x @ self.A.T @ self.B.T)
            return self.base(x) + update if with_base else update

    return Layer


def test_lora_linear_wrong_answers(capsys):
    check = ex.check_lora_linear
    rejected(check, lora_layer(scale=False), capsys, "alpha / r")
    rejected(check, lora_layer(freeze=False), capsys, "freeze the base")
    rejected(check, lora_layer(both_zero=True), capsys, "B starts at zero and A at random")
    rejected(check, lora_layer(with_base=False), capsys, "base layer's output")
    rejected(check, lora_layer(parameters=False), capsys, "nn.Parameter")


def test_add_lora_wrong_answers(capsys):
    check = ex.check_add_lora

    def wrap(model, r, alpha, blocks, targets=("q_proj", "v_proj")):
        for block in blocks(model):
            for name in targets:
                setattr(block.attn, name, sol.LoRALinear(getattr(block.attn, name), r, alpha))
        return model

    every = lambda m: m.transformer.h  # noqa: E731
    rejected(check, lambda m, r, a: wrap(m, r, a, every), capsys, "freeze everything else")
    rejected(check, lambda m, r, a: sol.add_lora(m, r, a).score.requires_grad_(False) and m, capsys, "score head")
    rejected(check, lambda m, r, a: sol.add_lora(m, r, a, ("q_proj",)), capsys, "v_proj has nothing to train")
    first_block = lambda m: m.transformer.h[:1]  # noqa: E731
    rejected(
        check,
        lambda m, r, a: wrap(m.requires_grad_(False), r, a, first_block).score.requires_grad_() and m,
        capsys,
        "h.1.attn.q_proj",
    )
    rejected(check, lambda m, r, a: wrap(m, r, a, every).requires_grad_(False), capsys, "no adapter trains")


OWN_ROTATE = (
    "def f(x):\n    even, odd = x[..., 0::2], x[..., 1::2]\n    return torch.stack((-odd, even), -1).flatten(-2)"
)


@pytest.mark.parametrize(
    "answer, refused",
    [
        (OWN_ROTATE, None),
        ("f = gt.gptj.rotary.rotate_every_two", "not a function of this notebook"),
        (
            "from gptj_teach.gptj.rotary import rotate_every_two as r\nf = lambda x: r(x)",
            "runs the package's own answer",
        ),
        ("def f(x):\n    return gt.gptj.rotary.rotate_every_two(x)", "runs the package's own answer"),
        ("def f(x):\n    return x", "Not yet"),
    ],
)
def test_the_hidden_test_refuses_the_package_answer_and_passes_an_own_one(answer, refused, capsys):
    ok = gt.classroom.honest.verify("check_rotate_every_two", notebook_function(answer, "f"))
    said = capsys.readouterr().out
    assert ok is (refused is None) and (refused is None and said == "" or refused in said), said


def test_the_hidden_test_refuses_a_replaced_check(monkeypatch, capsys):
    monkeypatch.setattr(gt.classroom.exercises, "check_rotate_every_two", lambda f: True)
    assert not gt.classroom.honest.verify("check_rotate_every_two", notebook_function(OWN_ROTATE, "f"))
    assert "not the package's check" in capsys.readouterr().out


def test_fallback_uses_the_package_until_the_learner_writes_theirs(capsys):
    stub = notebook_function('def f(x):\n    raise NotImplementedError("Your turn: write it")', "f")
    wrapped = gt.classroom.fallback(stub, gt.gptj.rotary.rotate_every_two)
    x = torch.randn(2, 4)
    assert torch.equal(wrapped(x), gt.gptj.rotary.rotate_every_two(x)) and torch.equal(wrapped(x), wrapped(x))
    assert capsys.readouterr().out.count("not written yet") == 1  # one note, however many calls
    assert not gt.classroom.exercises.check_rotate_every_two(wrapped)  # the learner's stub is what is graded
    assert "not written yet" in capsys.readouterr().out
    mine = gt.classroom.fallback(notebook_function(OWN_ROTATE, "f"), gt.gptj.rotary.rotate_every_two)
    assert gt.classroom.exercises.check_rotate_every_two(mine)
    assert gt.classroom.honest.verify("check_rotate_every_two", mine)


def test_the_hints_named_in_issue_28(capsys):
    """A LayerNorm that calls the module is refused; NaN probabilities are called NaN; an fp16 softmax that the grade
    refuses does not hear that its weights are right (one bound for both)."""
    assert not gt.classroom.exercises.check_layer_norm(lambda x, ln: ln(x))
    assert "calls the LayerNorm" in capsys.readouterr().out
    assert not gt.classroom.exercises.check_logits_to_probs(lambda logits, t, k, p: torch.full_like(logits, math.nan))
    assert "NaN" in capsys.readouterr().out

    def half_softmax(q, k, v, mask):  # the softmax in fp16: about 1e-3 off
        scores = q.float() @ k.float().transpose(-1, -2) / math.sqrt(q.shape[-1]) + mask
        weights = torch.softmax(scores.half(), -1).to(q.dtype)
        return weights.to(v.dtype) @ v, weights

    graded = gt.classroom.exercises.check_softmax_attention(half_softmax)
    assert graded or "the weights are right" not in capsys.readouterr().out


def test_grading_mode_reads_the_environment(monkeypatch):
    monkeypatch.setenv(gt.classroom.GRADING_ENV, "1")
    assert gt.classroom.grading_mode()
    monkeypatch.setenv(gt.classroom.GRADING_ENV, "0")
    assert not gt.classroom.grading_mode()
