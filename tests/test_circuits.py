"""Direct logit attribution against TransformerLens's own, and the laws of the other experiments: the terms sum to
the logit difference, a zero-ablated head changes only what it feeds, patching everything brings everything
back, a pattern built to be an induction pattern scores 1."""

import pytest
import torch
from helpers import make_config
from test_activations import HOOKED_DEPRECATION, hooked_transformer, random_pair

import gptj_teach as gt
from gptj_teach.interpret import circuits
from gptj_teach.interpret.activations import run_with_cache

CLEAN, CORRUPT = "for line in lines:\n    print(", "for path in paths:\n    print("
DLA_TOLERANCE = 1e-4  # |sum of the terms - logit difference| in fp32; measured about 1e-6


@pytest.fixture(scope="module")
def clean_prompt(tiny):
    """(model, tok, the clean prompt's ids, the right and the wrong next token)."""
    model, tok = tiny
    right, wrong = tok.encode("line")[0], tok.encode("path")[0]
    return model, tok, tok([CLEAN], return_tensors="pt").input_ids, right, wrong


def test_attribution_terms_sum_to_the_logit_difference(clean_prompt):
    model, _, ids, right, wrong = clean_prompt
    with torch.no_grad():
        logits, cache = run_with_cache(model, ids)
    labels, values = circuits.direct_logit_attribution(model, cache, right, wrong)
    diff = logits[:, -1, right] - logits[:, -1, wrong]
    assert labels[:2] == ["embed", "L0H0"] and labels[-2:] == ["L3 MLP", "biases"] and len(labels) == values.shape[0]
    assert (values.sum(0) - diff).abs().max() <= DLA_TOLERANCE
    hf, ours = random_pair("odd")  # 5 heads of 8 dims, three layers; every position, a batch of three
    ids = torch.randint(0, 97, (3, 12), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        logits, cache = run_with_cache(ours, ids)
    for pos in (0, 5, -1):
        _, values = circuits.direct_logit_attribution(ours, cache, 3, 7, pos)
        assert (values.sum(0) - (logits[:, pos, 3] - logits[:, pos, 7])).abs().max() <= DLA_TOLERANCE


@pytest.mark.crosscheck
@pytest.mark.filterwarnings(HOOKED_DEPRECATION)
def test_attribution_equals_transformer_lens_logit_attrs(clean_prompt):
    """TransformerLens folds ln_f's weight into W_U and reads ln_f's frozen scale from its cache (``logit_attrs``);
    ours keeps the weight in the formula. Heads, MLPs and the embedding must get the same shares."""
    model, _, ids, right, wrong = clean_prompt
    tl = hooked_transformer(gt.reference.from_pretrained(gt.checkpoint.TINY), fold_ln=True)
    with torch.no_grad():
        _, theirs = tl.run_with_cache(ids)
        heads = theirs.stack_head_results(layer=-1, pos_slice=-1)  # (layers * heads, batch, d_model)
        parts, part_labels = theirs.decompose_resid(layer=-1, mode="all", pos_slice=-1, return_labels=True)
        their_values = torch.cat(
            [theirs.logit_attrs(stack, tokens=right, incorrect_tokens=wrong, pos_slice=-1) for stack in (heads, parts)]
        )
        _, cache = run_with_cache(model, ids)
    labels, values = circuits.direct_logit_attribution(model, cache, right, wrong)
    names = {"embed": "embed", **{f"{i}_mlp_out": f"L{i} MLP" for i in range(model.config.n_layer)}}
    their_labels = [f"L{i}H{h}" for i in range(model.config.n_layer) for h in range(model.config.n_head)]
    their_labels += [names.get(label) for label in part_labels]  # attn_out rows: per head above already
    ours = torch.stack([values[labels.index(label)] for label in their_labels if label])
    theirs = torch.stack([v for v, label in zip(their_values, their_labels) if label])
    print("DLA vs TransformerLens: max |diff| =", (ours - theirs).abs().max().item())
    assert len(ours) == len(labels) - 1 and (ours - theirs).abs().max() <= 1e-4


def test_zero_ablating_a_head_changes_only_what_it_feeds(clean_prompt):
    model, _, ids, _, _ = clean_prompt
    layer, head = 1, 2
    with torch.no_grad():
        _, clean = run_with_cache(model, ids)
        _, ablated = run_with_cache(model, ids, hooks={f"h.{layer}.attn.z": lambda z: circuits.zero_ablate(z, head)})
    for name, before in clean.items():
        i = int(name.split(".")[1]) if name.startswith("h.") else (-1 if name == "embed" else 99)
        after = ablated[name]
        if name == f"h.{layer}.attn.z":  # the other heads untouched, this one zero
            others = [h for h in range(model.config.n_head) if h != head]
            assert torch.equal(after[:, :, others], before[:, :, others]) and not after[:, :, head].any()
        elif name == f"h.{layer}.attn.out":  # exactly the head's own share is gone
            share = circuits.head_outputs(model, clean, layer)[:, :, head]
            torch.testing.assert_close(after, before - share, atol=1e-5, rtol=0)
        elif i < layer or (i == layer and not name.endswith(("resid_post",))):
            assert torch.equal(after, before), name  # upstream, and the MLP beside it (the block is parallel)
        else:
            assert not torch.equal(after, before), name  # everything downstream moves


def test_patching_everything_brings_everything_back(clean_prompt):
    model, tok, clean, right, wrong = clean_prompt
    corrupt = tok([CORRUPT], return_tensors="pt").input_ids
    recovered = circuits.patch_residual(
        model, clean, corrupt, lambda logits: circuits.logit_difference(logits, right, wrong)
    )
    n = model.config.n_layer
    assert recovered.shape == (n + 1, clean.shape[1])
    # exactly 0 where a patch leaves the scored row's inputs and ops alone: ln_f and lm_head's GEMM work row by row
    assert recovered[-1, -1] == pytest.approx(1.0, abs=1e-5) and not recovered[-1, :-1].any()  # the final residual
    same = (clean == corrupt)[0]  # where the two prompts have the same token, the embedding is the same
    assert same.sum() >= 8 and not recovered[0, same].any()


def test_induction_score_of_a_pattern_built_to_be_one():
    n, seq = 5, 11  # a BOS token, then 5 tokens twice
    perfect = torch.zeros(2, 3, seq, seq)
    perfect[:, :, torch.arange(seq), torch.arange(seq)] = 1.0  # heads 0, 2: look at yourself
    for q in range(seq - n, seq):
        perfect[:, 1, q] = 0
        perfect[:, 1, q, q - n + 1] = 1.0  # head 1: the token after the earlier copy of me
    assert circuits.induction_score(perfect, n).tolist() == [0.0, 1.0, 0.0]  # exact: means of 0s and 1s
    ids = circuits.repeated_tokens(n, batch=4, low=10, high=20, seed=3, bos=0)
    assert ids.shape == (4, seq) and torch.equal(ids[:, 1 : n + 1], ids[:, n + 1 :]) and (ids[:, 0] == 0).all()


def test_random_config_induction_scores_have_one_row_per_layer():
    config = make_config("odd")
    model = gt.GPTJForCausalLM(config).init_weights().eval()
    ids = circuits.repeated_tokens(6, batch=2, high=config.vocab_size)
    with torch.no_grad():
        _, cache = run_with_cache(model, ids)
    scores = circuits.induction_scores(cache, 6)
    assert scores.shape == (config.n_layer, config.n_head) and ((scores > 0) & (scores < 1)).all()


def duplicate_token_score(pattern, n):  # the usual off-by-one: the earlier copy itself, n back
    q = torch.arange(pattern.shape[-1] - n, pattern.shape[-1])
    return pattern[:, :, q, q - n].mean(dim=(0, 2))


def zero_a_position(z, head):  # the usual wrong axis
    z = z.clone()
    z[:, head] = 0
    return z


@pytest.mark.parametrize(
    "check, right, wrong, hint",
    [
        ("check_induction_score", circuits.induction_score, duplicate_token_score, "n - 1 back"),
        ("check_dla_term", circuits.dla_term, lambda t, s, w, d: (t / s * w) @ d, "subtract the term's mean"),
        ("check_zero_ablate", circuits.zero_ablate, zero_a_position, "z[:, :, head]"),
    ],
)
def test_notebook_11_exercises_accept_the_answer_and_name_the_usual_mistake(check, right, wrong, hint, capsys):
    check = getattr(gt.classroom.exercises, check)
    assert check(right) is True and capsys.readouterr().out.startswith("✅ Right! ")
    assert check(wrong) is False and hint in capsys.readouterr().out
    assert check(lambda *args: None) is False and "replace the `...`" in capsys.readouterr().out  # the placeholder
    assert check(lambda *args: 1 / 0) is False and "raised ZeroDivisionError" in capsys.readouterr().out


def test_offset_and_moved_induction_scores_follow_their_definitions():
    """A head built to look 3 back scores 1 at offset 3 and, on a repeat of n = 4, 1 as an induction head; moved
    behind a prefix (start) the same fixed-offset head no longer scores: the score follows the copy."""
    seq, n, start = 12, 4, 3
    fixed = torch.zeros(1, 1, seq, seq)
    for q in range(seq):
        fixed[0, 0, q, q - 3 if q >= 3 else q] = 1.0  # 3 back where it can; queries 0..2 look at themselves
    assert circuits.offset_score(fixed, 3).tolist() == [1.0] and circuits.offset_score(fixed, 1).tolist() == [0.0]
    assert circuits.induction_score(fixed, n).tolist() == [1.0]  # n - 1 = 3 back: indistinguishable here
    assert circuits.induction_score(fixed, 2, start=start).tolist() == [0.0]  # n = 2 wants 1 back: a fixed offset fails
    patterns = _random_pattern(2, 3, seq)
    q = torch.arange(start + n, start + 2 * n)
    torch.testing.assert_close(
        circuits.induction_score(patterns, n, start=start), patterns[:, :, q, q - n + 1].mean(dim=(0, 2))
    )
    default = circuits.induction_score(patterns, n)  # the last 2n positions
    torch.testing.assert_close(default, circuits.induction_score(patterns, n, seq - 2 * n))
    with pytest.raises(gt.errors.InputError, match="start"):
        circuits.induction_score(patterns, n, start=seq - 2 * n + 1)
    with pytest.raises(gt.errors.InputError, match="back"):
        circuits.offset_score(patterns, seq)


def _random_pattern(batch, heads, seq):
    scores = torch.randn(batch, heads, seq, seq, generator=torch.Generator().manual_seed(0))
    return scores.masked_fill(torch.ones(seq, seq, dtype=torch.bool).triu(1), float("-inf")).softmax(-1)


def test_zero_heads_and_patch_head_change_only_what_they_name():
    z, clean = torch.randn(2, 5, 4, 3), torch.randn(2, 5, 4, 3)
    zeroed = circuits.zero_heads(z, [1, 3])
    assert not zeroed[:, :, [1, 3]].any() and torch.equal(zeroed[:, :, [0, 2]], z[:, :, [0, 2]])
    assert torch.equal(circuits.zero_heads(z, [2]), circuits.zero_ablate(z, 2))
    patched = circuits.patch_head(z, clean, 2, -1)
    changed = (patched != z).any(-1)  # (batch, seq, heads)
    assert torch.equal(patched[:, 4, 2], clean[:, 4, 2]) and changed.sum() == 2 and changed[:, 4, 2].all()
    with pytest.raises(gt.errors.InputError, match="shape"):
        circuits.patch_head(z, clean[:, :4], 0, 0)


def test_ov_logits_is_the_heads_own_output_read_through_ln_f_and_copying_score_counts_the_diagonal(tiny):
    """Row i of ov_logits, up to ln_f's positive scale, is the logits the head alone adds when it attends only to
    token i: check against a real forward of layer 0 with all attention forced onto one position."""
    model, tok = tiny
    tokens = torch.tensor([tok.encode(" " + w)[0] for w in ("line", "path", "name", "key")])
    ov = circuits.ov_logits(model, 0, 0, tokens)
    assert ov.shape == (4, 4)
    block, size = model.transformer.h[0], model.config.n_embd // model.config.n_head
    for i, t in enumerate(tokens.tolist()):
        with torch.no_grad():  # the head's output when it attends to a lone token t: v then out_proj
            v = block.attn.v_proj(block.ln_1(model.transformer.wte.weight[t]))[:size]
            out = block.attn.out_proj.weight[:, :size] @ v
            centred = (out - out.mean()) * model.transformer.ln_f.weight
            torch.testing.assert_close(ov[i], model.lm_head.weight[tokens] @ centred, atol=1e-4, rtol=1e-4)
    assert circuits.copying_score(torch.eye(5)) == 1.0
    assert circuits.copying_score(torch.eye(5).flip(0)) == pytest.approx(0.2)  # only the middle row
    assert circuits.copying_score(torch.eye(5).flip(0), k=5) == 1.0
