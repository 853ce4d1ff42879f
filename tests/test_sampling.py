"""Sampling: the pure functions obey their laws (hypothesis), and generate picks transformers' tokens."""

import math

import pytest
import torch
import transformers
from helpers import left_padded_batch, make_config, make_pair
from hypothesis import given, settings
from hypothesis import strategies as st

import gptj_teach as gt
from gptj_teach.errors import InputError, InputTypeError
from gptj_teach.generation.fast_top_p import MARGIN, top_p_among_best
from gptj_teach.generation.sampling import (
    SamplingSettings,
    logits_to_probs,
    next_token,
    temperature_scale,
    top_k_filter,
    top_p_filter,
)

logit_rows = st.builds(
    lambda seed, n, scale: torch.randn(n, generator=torch.Generator().manual_seed(seed)) * scale,
    st.integers(0, 2**31 - 1),
    st.integers(1, 300),
    st.floats(0.1, 20),
)


@settings(max_examples=200, deadline=None)
@given(logit_rows, st.floats(0.01, 1.0))
def test_top_p_keeps_the_minimal_most_likely_prefix_reaching_p(logits, p):
    probs = logits.softmax(-1)
    kept = torch.isfinite(top_p_filter(logits, p))
    order = probs.argsort(descending=True)
    kept_sorted = kept[order]
    n = int(kept_sorted.sum())
    assert n >= 1 and kept_sorted[:n].all()  # a prefix of the most likely tokens
    mass = probs[order].cumsum(0)
    assert mass[n - 1] >= p - 1e-6 or n == len(logits)  # reaches p ...
    if n > 1:  # ... and is minimal: without its least likely member it would not (ties aside)
        assert mass[n - 2] < p + 1e-6 or probs[order][n - 1] == probs[order][n - 2]


@settings(max_examples=100, deadline=None)
@given(logit_rows)
def test_top_p_one_and_top_k_zero_change_nothing(logits):
    assert torch.equal(top_p_filter(logits, 1.0), logits)
    assert torch.equal(top_k_filter(logits, 0), logits)


@settings(max_examples=150, deadline=None)
@given(logit_rows, st.floats(0.05, 5.0), st.integers(0, 50), st.floats(0.01, 1.0))
def test_the_result_is_a_distribution(logits, temperature, k, p):
    probs = logits_to_probs(logits, temperature, k, p)
    assert (probs >= 0).all() and math.isclose(probs.sum().item(), 1.0, rel_tol=1e-5)
    assert (probs > 0).sum() <= (k or len(logits)) or k == 0


@settings(max_examples=150, deadline=None)
@given(logit_rows, st.floats(0.05, 5.0))
def test_temperature_keeps_the_argmax(logits, temperature):
    assert temperature_scale(logits, temperature).argmax() == logits.argmax()


@settings(max_examples=100, deadline=None)
@given(logit_rows, st.integers(1, 60))
def test_top_k_keeps_k_tokens_unless_tied(logits, k):
    kept = torch.isfinite(top_k_filter(logits, k))
    assert kept.sum() == min(k, len(logits)) or len(torch.unique(logits)) < len(logits)


@settings(max_examples=100, deadline=None)
@given(logit_rows, st.floats(0.05, 5.0), st.integers(0, 50), st.floats(0.01, 1.0))
def test_pipeline_equals_transformers_warpers(logits, temperature, k, p):
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    scores = TemperatureLogitsWarper(temperature)(None, logits[None])
    scores = TopKLogitsWarper(k)(None, scores) if k else scores
    scores = TopPLogitsWarper(p)(None, scores) if p < 1 else scores
    # bit-equal by construction: the same division, masks of copied logits (top-p's from the warper's own ops, or from
    # the candidates, which decide only outside MARGIN of p) and the same softmax on the same (1, n) row
    assert torch.equal(logits_to_probs(logits[None], temperature, k, p), scores.softmax(-1))


@pytest.mark.parametrize("p", [0.3, 0.9, 0.95])
def test_top_p_from_the_best_candidates_equals_transformers_on_a_full_vocabulary(p):
    """Rows of 50400 logits, flat and peaked: where the candidates settle top-p (most rows), the answer is the
    full sort's of transformers' TopPLogitsWarper; where they do not, top_p_filter sorts, so it is equal too."""
    from transformers.generation.logits_process import TopPLogitsWarper

    settled = 0
    for seed in range(40):
        g = torch.Generator().manual_seed(seed)
        logits = torch.randn(2, 50400, generator=g) * (2 + seed % 5)
        logits[:, : 10 * (seed % 4)] += 6  # a few favourites on some rows
        assert torch.equal(top_p_filter(logits, p), TopPLogitsWarper(p)(None, logits)), f"seed {seed}"
        settled += top_p_among_best(logits, p) is not None
    assert settled >= 5  # the candidate path was exercised (the flat rows need the sort at p >= 0.9)


def test_top_p_decides_like_transformers_just_outside_the_margin():
    """The candidates add probabilities from the top, transformers' warper from the bottom; the two round
    differently, so within MARGIN of p the sort decides. Just outside it the candidates decide, and must agree:
    p is set 1.2 and 2 margins either side of where transformers' own sum puts a token's edge."""
    from transformers.generation.logits_process import TopPLogitsWarper

    settled = 0
    for seed in range(50):
        g = torch.Generator().manual_seed(seed)
        logits = torch.randn(1, 50400, generator=g) * (1 + seed % 4)
        logits[:, : 20 + 5 * seed] += 5 + seed % 3  # a nucleus of tens to a couple of hundred tokens
        mass_below = torch.sort(logits).values.softmax(dim=-1).cumsum(dim=-1)  # transformers' sum, ascending
        edge = 1 - mass_below[0, -2 - (seed * 7) % 150].item()  # p at which that token would leave
        for p in (edge + d * MARGIN for d in (-2, -1.2, 1.2, 2)):
            assert torch.equal(top_p_filter(logits, p), TopPLogitsWarper(p)(None, logits)), f"seed {seed}, p {p}"
            settled += top_p_among_best(logits, p) is not None
    assert settled >= 150  # of 200: the candidates decided nearly all of them


def test_top_p_leaves_a_tie_at_the_edge_to_the_sort():
    """Four equal favourites and p = 0.6: the nucleus edge falls between two of them; which one stays is the
    sort's choice, so the candidates give no answer and the sort's is transformers'."""
    from transformers.generation.logits_process import TopPLogitsWarper

    logits = torch.full((1, 50400), -30.0)
    logits[0, [7, 700, 7000, 40000]] = 5.0
    assert top_p_among_best(logits, 0.6) is None
    assert torch.equal(top_p_filter(logits, 0.6), TopPLogitsWarper(0.6)(None, logits))
    assert torch.isfinite(top_p_filter(logits, 0.6)).sum() == 3
    many = torch.full((1, 50400), -30.0)
    many[0, 1000:1300] = 5.0  # 300 equal favourites: p = 0.852 keeps 256 of them, exactly the candidates
    assert top_p_among_best(many, 0.852) is None  # the 257th is tied with the 256th: the sort decides
    assert torch.equal(top_p_filter(many, 0.852), TopPLogitsWarper(0.852)(None, many))


def test_greedy_takes_the_first_of_tied_best_like_argmax():
    """transformers' greedy step is torch.argmax; ours reads max(dim).indices, which must pick alike."""
    logits = torch.zeros(3, 50400)
    logits[0, [7, 9000, 40000]] = 2.0
    logits[1, [50399, 3]] = 1.0  # row 2 stays all tied
    assert next_token(logits).tolist() == logits.argmax(dim=-1).tolist() == [7, 3, 0]  # greedy: the default
    assert next_token(logits, SamplingSettings(do_sample=False)).tolist() == [7, 3, 0]


def test_a_temperature_so_small_that_the_logits_overflow_is_greedy():
    """1 / 1e-39 overflows fp32: the scaled logits would be +-inf and the softmax NaN. The limit is greedy:
    the tied best tokens share all the probability. Masked (-inf) logits stay masked on either path."""
    logits = torch.tensor([[1.0, 3.0, -2.0, 3.0, -math.inf]])
    # exact: the scaled logits are 0 (the two best) and -inf, whose softmax is exactly 1/2 and 0
    assert torch.equal(logits_to_probs(logits, temperature=1e-39), torch.tensor([[0.0, 0.5, 0.0, 0.5, 0.0]]))
    probs = logits_to_probs(logits, temperature=0.5)  # the masked -inf takes the shifted path; same softmax
    # bit-equal: 0.5 is a power of two, so (x - 3) / 0.5 and x / 0.5 - 6 (what softmax subtracts) are the same floats
    assert torch.equal(probs, torch.softmax(logits / 0.5, dim=-1)) and probs[0, 4] == 0


SETTINGS = [dict(do_sample=False)] + [
    dict(do_sample=True, temperature=t, top_k=k, top_p=p) for t in (0.7, 1.3) for k in (0, 40) for p in (0.5, 0.9, 1.0)
]


@pytest.fixture(scope="module")
def eos_pair():
    return make_pair(make_config("small", eos_token_id=3, bos_token_id=3))


@pytest.mark.parametrize("kwargs", SETTINGS, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
def test_generate_equals_transformers_token_for_token(eos_pair, kwargs):
    hf, ours = eos_pair
    ids, mask, _ = left_padded_batch()
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        theirs = hf.generate(ids, attention_mask=mask, max_new_tokens=24, pad_token_id=3, **kwargs)
        torch.manual_seed(seed)
        mine = gt.generate(ours, ids, attention_mask=mask, max_new_tokens=24, **kwargs)
        # token ids: our logits (fused attention) and transformers' (eager) are ~1e-7 apart, not bit-equal; a pick
        # flips only on a tie or a draw that close, and logits perturbed by 1e-5 at every step pick these same tokens
        assert torch.equal(mine, theirs), f"seed {seed}"


def test_generate_stops_at_eos_like_transformers(eos_pair):
    hf, ours = eos_pair
    ids = torch.tensor([[5, 9, 11]])
    hits = 0
    for seed in range(30):  # sample until some rows hit eos (id 3) before the end
        torch.manual_seed(seed)
        theirs = hf.generate(ids, max_new_tokens=40, do_sample=True, temperature=2.0, top_k=0, pad_token_id=3)
        torch.manual_seed(seed)
        mine = gt.generate(ours, ids, max_new_tokens=40, do_sample=True, temperature=2.0)
        assert torch.equal(mine, theirs)
        hits += theirs.shape[1] < 43
    assert hits > 0  # the eos path was exercised


def test_transformers_default_top_k_50_is_a_trap(eos_pair):
    hf, ours = eos_pair
    ids = torch.tensor([[5, 9, 11]])
    differ = 0
    for seed in range(3):  # only temperature given: transformers fills in its global default top_k = 50
        torch.manual_seed(seed)
        theirs = hf.generate(ids, max_new_tokens=30, do_sample=True, temperature=1.5, pad_token_id=3)
        torch.manual_seed(seed)
        assert torch.equal(gt.generate(ours, ids, max_new_tokens=30, do_sample=True, temperature=1.5, top_k=50), theirs)
        torch.manual_seed(seed)
        differ += not torch.equal(gt.generate(ours, ids, max_new_tokens=30, do_sample=True, temperature=1.5), theirs)
    assert differ > 0  # with our default top_k = 0 the tokens are not the same


def test_max_new_tokens_zero_returns_the_prompt(eos_pair):
    ids = torch.tensor([[5, 9, 11]])
    assert torch.equal(gt.generate(eos_pair[1], ids, max_new_tokens=0), ids)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(do_sample=True, temperature=0.0), "temperature"),
        (dict(do_sample=True, temperature=-1.0), "temperature"),
        (dict(do_sample=True, temperature=float("inf")), "temperature"),
        (dict(top_p=0.0), "top_p"),
        (dict(top_p=1.5), "top_p"),
        (dict(top_p=float("nan")), "top_p"),
        (dict(top_k=-1), "top_k"),
        (dict(max_new_tokens=-1), "max_new_tokens"),
        (dict(max_new_tokens=62), "n_positions"),
    ],
)
def test_bad_settings_are_refused_before_generating(eos_pair, kwargs, message):
    with pytest.raises(ValueError, match=message):
        gt.generate(eos_pair[1], torch.tensor([[5, 9, 11]]), **{"max_new_tokens": 5, **kwargs})


def test_greedy_ignores_temperature_zero_and_says_so(eos_pair):
    ids = torch.tensor([[5, 9, 11]])
    with pytest.warns(UserWarning, match=r"temperature=0.0: no effect with do_sample=False .* do_sample=True"):
        greedy_at_zero = gt.generate(eos_pair[1], ids, max_new_tokens=5, temperature=0.0)
    assert torch.equal(greedy_at_zero, gt.generate(eos_pair[1], ids, max_new_tokens=5))


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(do_sample=True, temperature=0.0), InputError, "temperature must be > 0 when sampling, got 0.0; .*greedy"),
        (dict(do_sample=True, temperature=float("nan")), InputError, "temperature must be a finite number"),
        (dict(top_p=0.0), InputError, r"top_p must be in \(0, 1\] \(1 turns it off\), got 0.0"),
        (dict(top_p=2), InputError, "top_p must be in"),
        (dict(top_k=-3), InputError, "top_k must be >= 0, got -3"),
        (dict(top_k=2.5), InputTypeError, "top_k must be a whole number"),
        (dict(do_sample=1), InputTypeError, "do_sample"),
        (dict(temperature="hot"), InputTypeError, "temperature must be a number"),
    ],
)
def test_settings_built_with_a_bad_value_say_which_and_why(kwargs, error, message):
    with pytest.raises(error, match=message):
        SamplingSettings(**kwargs)


def test_settings_are_checked_once_converted_and_frozen():
    import dataclasses

    import numpy as np

    settings = SamplingSettings(do_sample=np.bool_(True), temperature=np.float32(0.5), top_k=torch.tensor(40), top_p=1)
    assert settings == SamplingSettings(True, 0.5, 40, 1.0)  # plain Python values, equal and hashable
    assert [type(v) for v in dataclasses.astuple(settings)] == [bool, float, int, float]
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.temperature = 2.0  # one value for the whole generation: it cannot change halfway
    assert SamplingSettings() == SamplingSettings(do_sample=False, temperature=1.0, top_k=0, top_p=1.0)  # greedy


def test_generate_and_stream_take_the_same_settings_with_the_same_defaults():
    import inspect

    def keywords(function):
        return {
            name: p.default
            for name, p in inspect.signature(function).parameters.items()
            if p.default is not inspect.Parameter.empty
        }

    shared = keywords(gt.generate).keys() & keywords(gt.stream).keys()
    assert shared >= {"max_new_tokens", "do_sample", "temperature", "top_k", "top_p", "seed", "eos_token_id", "fast"}
    assert keywords(gt.generate).keys() - shared == {"attention_mask"}  # a text prompt has no padding to mask
    assert {name: keywords(gt.generate)[name] for name in shared} == {
        name: keywords(gt.stream)[name] for name in shared
    }
    assert keywords(gt.generate)["do_sample"] is False  # greedy by default, as transformers' generate
    fields = {f.name: f.default for f in __import__("dataclasses").fields(SamplingSettings)}
    assert fields == {name: keywords(gt.generate)[name] for name in fields}  # and as the settings object


def test_decode_steps_carries_the_settings_to_every_pick(eos_pair, monkeypatch):
    seen = []
    real = gt.generation.loop.next_token
    monkeypatch.setattr(
        gt.generation.loop, "next_token", lambda logits, settings: seen.append(settings) or real(logits, settings)
    )
    settings = SamplingSettings(do_sample=True, temperature=0.7, top_k=5)
    list(gt.generation.decode_steps(eos_pair[1], torch.tensor([[5, 9, 11]]), 4, settings))
    assert len(seen) == 4 and all(s is settings for s in seen)


def test_the_seed_argument_is_manual_seed_first(eos_pair):
    ids, settings = torch.tensor([[5, 9, 11]]), dict(do_sample=True, temperature=1.3, top_p=0.9)
    torch.manual_seed(7)
    seeded_by_hand = gt.generate(eos_pair[1], ids, max_new_tokens=12, **settings)
    assert torch.equal(gt.generate(eos_pair[1], ids, max_new_tokens=12, seed=7, **settings), seeded_by_hand)


def test_empty_prompt_is_refused(eos_pair):
    with pytest.raises(ValueError, match="empty"):
        gt.generate(eos_pair[1], torch.zeros(1, 0, dtype=torch.long), max_new_tokens=3)


def test_transformers_model_can_be_wrapped_and_generated_from():
    hf = transformers.GPTJForCausalLM(make_config("odd")).eval()
    ours = gt.GPTJForCausalLM.from_transformers(hf)
    ids = torch.tensor([[1, 2, 3]])  # token ids: the two sides' logits differ by rounding, no pick here is that close
    assert torch.equal(gt.generate(ours, ids, max_new_tokens=6), hf.generate(ids, max_new_tokens=6, do_sample=False))
