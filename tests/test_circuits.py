"""Direct logit attribution against TransformerLens's own, and the laws of the other experiments: the terms sum to
the logit difference, a zero-ablated head changes only what it feeds, patching everything brings everything
back, a pattern built to be an induction pattern scores 1."""

import pytest
import torch
from conftest import make_config
from test_activations import HOOKED_DEPRECATION, hooked_transformer, random_pair

import gptj_teach as gt
from gptj_teach.interpret import circuits
from gptj_teach.interpret.activations import run_with_cache

CLEAN, CORRUPT = "for line in lines:\n    print(", "for path in paths:\n    print("
DLA_TOLERANCE = 1e-4  # |sum of the terms - logit difference| in fp32; measured about 1e-6


@pytest.fixture(scope="module")
def tiny():
    model, tok = gt.load("tiny")
    right, wrong = tok.encode("line")[0], tok.encode("path")[0]
    return model, tok, tok([CLEAN], return_tensors="pt").input_ids, right, wrong


def test_attribution_terms_sum_to_the_logit_difference(tiny):
    model, _, ids, right, wrong = tiny
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
def test_attribution_equals_transformer_lens_logit_attrs(tiny):
    """TransformerLens folds ln_f's weight into W_U and reads ln_f's frozen scale from its cache (``logit_attrs``);
    ours keeps the weight in the formula. Heads, MLPs and the embedding must get the same shares."""
    model, _, ids, right, wrong = tiny
    tl = hooked_transformer(gt.reference.from_pretrained(gt.checkpoint.TINY), fold_ln=True)
    with torch.no_grad():
        _, theirs = tl.run_with_cache(ids)
        heads = theirs.stack_head_results(layer=-1, pos_slice=-1)  # (layers * heads, batch, d_model)
        parts, part_labels = theirs.decompose_resid(layer=-1, mode="all", pos_slice=-1, return_labels=True)
        their_values = torch.cat([theirs.logit_attrs(stack, tokens=right, incorrect_tokens=wrong, pos_slice=-1)
                                  for stack in (heads, parts)])
        _, cache = run_with_cache(model, ids)
    labels, values = circuits.direct_logit_attribution(model, cache, right, wrong)
    names = {"embed": "embed", **{f"{i}_mlp_out": f"L{i} MLP" for i in range(model.config.n_layer)}}
    their_labels = [f"L{i}H{h}" for i in range(model.config.n_layer) for h in range(model.config.n_head)]
    their_labels += [names.get(label) for label in part_labels]  # attn_out rows: per head above already
    ours = torch.stack([values[labels.index(label)] for label in their_labels if label])
    theirs = torch.stack([v for v, label in zip(their_values, their_labels) if label])
    print("DLA vs TransformerLens: max |diff| =", (ours - theirs).abs().max().item())
    assert len(ours) == len(labels) - 1 and (ours - theirs).abs().max() <= 1e-4


def test_zero_ablating_a_head_changes_only_what_it_feeds(tiny):
    model, _, ids, _, _ = tiny
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


def test_patching_everything_brings_everything_back(tiny):
    model, tok, clean, right, wrong = tiny
    corrupt = tok([CORRUPT], return_tensors="pt").input_ids
    recovered = circuits.patch_residual(model, clean, corrupt,
                                        lambda logits: circuits.logit_difference(logits, right, wrong))
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
    assert ids.shape == (4, seq) and torch.equal(ids[:, 1:n + 1], ids[:, n + 1:]) and (ids[:, 0] == 0).all()


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


@pytest.mark.parametrize("check, right, wrong, hint", [
    ("check_induction_score", circuits.induction_score, duplicate_token_score, "n - 1 back"),
    ("check_dla_term", circuits.dla_term, lambda t, s, w, d: (t / s * w) @ d, "subtract the term's mean"),
    ("check_zero_ablate", circuits.zero_ablate, zero_a_position, "z[:, :, head]"),
])
def test_notebook_10_exercises_accept_the_answer_and_name_the_usual_mistake(check, right, wrong, hint, capsys):
    check = getattr(gt.classroom.exercises, check)
    assert check(right) is True and capsys.readouterr().out.startswith("✅ Right! ")
    assert check(wrong) is False and hint in capsys.readouterr().out
    assert check(lambda *args: None) is False and "replace the `...`" in capsys.readouterr().out  # the placeholder
    assert check(lambda *args: 1 / 0) is False and "raised ZeroDivisionError" in capsys.readouterr().out
