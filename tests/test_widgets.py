"""The sampler widget on the tiny model, without a browser: what it draws, what it costs, what it generates."""

import html
import statistics
import time
import warnings
from pathlib import Path
from unittest import mock

import ipywidgets
import nbformat
import pytest
import torch
from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

import gptj_teach as gt

PROMPT = "import os\nimport"  # many modules can follow: a spread-out distribution


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread for this module: the tensors are small, and on a small shared CI machine torch's intra-op
    threads spin-wait against other processes (a 50400-element softmax then takes 10-90 ms instead of ~0.3 ms),
    so the timing would measure the machine, not the widget. The setting is restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def w(tiny):
    model, tok = tiny
    return gt.show.widgets.sampler(model, tok, prompt=PROMPT, max_new_tokens=8, seed=0)


def reference_probs(logits, temperature, top_k, top_p):
    """transformers' warpers, in generate's order, on (vocab,) logits."""
    scores = logits[None].float()  # (1, vocab)
    if temperature != 1.0:
        scores = TemperatureLogitsWarper(temperature)(None, scores)
    if top_k:
        scores = TopKLogitsWarper(top_k)(None, scores)
    if top_p < 1.0:
        scores = TopPLogitsWarper(top_p)(None, scores)
    return scores.softmax(-1)[0]


def test_names_the_browser_tests_rely_on(w):
    assert (w.temperature.description, w.top_p.description, w.button.description) == (
        "temperature",
        "top-p",
        "Generate",
    )
    assert "gptj-sampler-stats" in w.stats_html._dom_classes
    assert "gptj-sampler-text" in w.output._dom_classes
    assert isinstance(w, gt.show.widgets.Sampler) and w.prompt.value == PROMPT and w.max_new_tokens.value == 8


@torch.no_grad()
def test_cached_logits_are_transformers_logits_for_the_prompt(w, tiny, tiny_hf):
    (_, tok), hf = tiny, tiny_hf
    ids = tok(PROMPT, return_tensors="pt").input_ids
    torch.testing.assert_close(w.logits, hf(ids).logits[0, -1], atol=1e-4, rtol=0)
    assert w.probs.shape == (50400,)


def test_lower_temperature_sharpens(w):
    seen = []
    for temperature in (1.5, 1.0, 0.5):
        w.temperature.value = temperature
        seen.append(w.stats)
        torch.testing.assert_close(w.probs, gt.generation.sampling.logits_to_probs(w.logits, temperature, 0, 1.0))
        torch.testing.assert_close(w.probs, reference_probs(w.logits, temperature, 0, 1.0), atol=1e-6, rtol=0)
    tops, entropies = [s["top_prob"] for s in seen], [s["entropy_nats"] for s in seen]
    assert tops[0] < tops[1] < tops[2]
    assert entropies[0] > entropies[1] > entropies[2]
    log_p = torch.log_softmax(w.logits.double(), -1)  # entropy at T = 1: -sum p log p, in nats
    assert seen[1]["entropy_nats"] == pytest.approx(-(log_p.exp() * log_p).sum().item(), abs=1e-4)


@pytest.mark.parametrize("temperature, top_k, top_p", [(1.0, 0, 0.5), (1.0, 0, 0.9), (0.7, 0, 0.8), (1.3, 20, 0.95)])
def test_top_p_keeps_the_smallest_set_that_reaches_p(w, temperature, top_k, top_p):
    w.temperature.value, w.top_k.value, w.top_p.value = temperature, top_k, top_p
    torch.testing.assert_close(w.probs, reference_probs(w.logits, temperature, top_k, top_p), atol=1e-6, rtol=0)
    before = gt.generation.sampling.logits_to_probs(w.logits, temperature, top_k, 1.0)  # before the top-p cut
    order = before.argsort(descending=True)
    n = w.stats["nucleus_size"]
    assert n == int((w.probs > 0).sum()) >= 1
    assert set(order[:n].tolist()) == set(w.probs.nonzero().flatten().tolist())  # a prefix of the sorted probs
    mass = before[order].cumsum(0)
    assert mass[n - 1] >= top_p - 1e-6  # the kept tokens reach p ...
    assert n == 1 or mass[n - 2] < top_p + 1e-6  # ... and dropping the last one goes below p
    assert w.probs.sum().item() == pytest.approx(1.0, abs=1e-5)


def test_sliders_make_no_model_calls_and_a_new_prompt_makes_one(w, tiny, monkeypatch):
    model = tiny[0]
    calls = []
    forward = model.forward
    monkeypatch.setattr(model, "forward", lambda *args, **kwargs: calls.append(1) or forward(*args, **kwargs))
    before = w.model_calls
    for value in (0.3, 0.8, 1.7):
        w.temperature.value = value
    w.top_p.value, w.top_k.value, w.max_new_tokens.value, w.seed.value = 0.6, 30, 5, 7
    assert calls == [] and w.model_calls == before
    w.prompt.value = "def fib(n):"
    assert len(calls) == 1 and w.model_calls == before + 1


def test_update_is_fast(w):
    """A slider move reshapes 50400 cached logits and rebuilds the chart: well under 100 ms."""
    times = []
    for i in range(15):
        w.temperature.value, w.top_p.value = 0.5 + 0.1 * (i % 10), 0.6 + 0.02 * i  # also triggers update
        start = time.perf_counter()
        w.update()
        times.append(time.perf_counter() - start)
    assert statistics.median(times) < 0.100, f"median update {statistics.median(times) * 1e3:.0f} ms"


def test_chart_and_numbers_change_with_temperature(w):
    w.temperature.value = 1.0
    stats, chart = w.stats_html.value, w.chart.value
    w.temperature.value = 0.4
    assert w.stats_html.value != stats and w.chart.value != chart
    assert f"{w.stats['top_prob']:.3f}" in w.stats_html.value
    assert all(html.escape(label) in w.chart.value for label in gt.show.viz.token_labels(w.tok, w.top_ids))


def test_generate_equals_gt_generate_and_transformers_generate(w, tiny, tiny_hf):
    (model, tok), hf = tiny, tiny_hf
    w.temperature.value, w.top_k.value, w.top_p.value, w.seed.value = 0.9, 40, 0.95, 3
    text = w.generate()
    ids = tok(PROMPT, return_tensors="pt").input_ids
    torch.manual_seed(3)
    ours = gt.generate(model, ids, 8, do_sample=True, temperature=0.9, top_k=40, top_p=0.95)
    torch.manual_seed(3)
    theirs = hf.generate(
        ids, max_new_tokens=8, do_sample=True, temperature=0.9, top_k=40, top_p=0.95, pad_token_id=tok.eos_token_id
    )
    assert text == w.text == tok.decode(ours[0, ids.shape[1] :]) == tok.decode(theirs[0, ids.shape[1] :])
    assert html.escape(PROMPT) in w.output.value and html.escape(text) in w.output.value
    assert not w.button.disabled


def test_empty_prompt_is_explained_not_a_crash(w):
    w.prompt.value = ""
    w.temperature.value = 0.5  # no scores to reshape: nothing to draw, and no crash
    assert "prompt" in w.stats_html.value and w.chart.value == ""
    assert w.generate() == "" and "empty" in w.output.value


def test_a_saved_sampler_shows_a_sentence_not_its_repr(tiny):
    """Opened without its kernel, a notebook shows an output's text/plain: a sentence, never Sampler(children=...)."""
    model, tok = tiny
    bundle = displayed(gt.show.widgets.sampler(model, tok))
    assert bundle["text/plain"] == gt.show.widgets.NOT_RUNNING
    assert "application/vnd.jupyter.widget-view+json" in bundle  # a live page still gets the widget
    notebook = nbformat.read(Path(__file__).parents[1] / "notebooks" / "06_sampling.ipynb", as_version=4)
    saved = [
        output.get("data", {}).get("text/plain", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    ]
    assert gt.show.widgets.NOT_RUNNING in saved, "notebook 06 has no saved sampler output: re-execute it"
    assert not any("Sampler(" in text for text in saved)


def displayed(widget) -> dict:
    """The bundle IPython publishes for ``widget``: ipywidgets 8 returns it from ``_repr_mimebundle_``; ipywidgets 7
    (Colab's 7.7.1) has no such method and publishes it from ``_ipython_display_``, caught here."""
    if hasattr(widget, "_repr_mimebundle_"):
        return widget._repr_mimebundle_()
    shown = []
    with mock.patch.object(ipywidgets.widgets.widget, "display", lambda data, raw: shown.append(data)):
        widget._ipython_display_()
    return shown[0]


def test_the_top_k_tooltip_is_an_option_of_this_ipywidgets(tiny):
    """``tooltip`` on ipywidgets 8, ``description_tooltip`` on 7: a name the slider does not know would be dropped
    with a warning, and the hover text lost."""
    model, tok = tiny
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        w = gt.show.widgets.sampler(model, tok)
    assert getattr(w.top_k, gt.show.widgets.TOOLTIP) == "0 = off: keep all tokens"
    assert gt.show.widgets.TOOLTIP in w.top_k.get_state()  # synced to the page, not a Python-side attribute only
    assert not [str(c.message) for c in caught if "argument" in str(c.message) or "tooltip" in str(c.message)]
