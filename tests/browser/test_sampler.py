"""The sampler widget of notebook 06 as a learner uses it in JupyterLab: move the temperature slider with the
keyboard, watch the chart and its numbers follow, press Generate and see text appear."""

import re

import torch
from playwright.sync_api import TimeoutError as PlaywrightTimeout

import gptj_teach as gt

from .conftest import Network, require_chromium, screenshot
from .jupyterlab import notebook_prompt, open_notebook, run_all_cells

require_chromium()

NOTEBOOK = "06_sampling.ipynb"
SHOWS_ENTROPY = """([el, value]) => {
  const match = el.textContent.match(/entropy ([0-9.]+) nats/);
  return match !== null && Math.abs(parseFloat(match[1]) - value) < 0.0015;
}"""


def entropy(logits: torch.Tensor, temperature: float) -> float:
    """Entropy in nats of softmax(logits / T), worked out here, independently of the widget's code."""
    log_probs = torch.log_softmax(logits.double() / temperature, dim=-1)
    return -(log_probs.exp() * log_probs).sum().item()


def read(widget) -> dict:
    """What the learner reads off the widget: the numbers line, the chart, the top bar's width, the slider."""
    stats = widget.locator(".gptj-sampler-stats").inner_text()
    match = re.search(r"entropy ([\d.]+) nats.*nucleus (\d+) of", stats, re.S)
    assert match, f"no entropy / nucleus numbers shown: {stats!r}"
    top_bar = re.search(r"width:\s*([\d.]+)px", widget.locator(".gptj-bar").first.get_attribute("style"))[1]
    return {
        "entropy": float(match[1]),
        "nucleus": int(match[2]),
        "top_bar": float(top_bar),
        "chart": widget.locator(".gptj-sampler-chart").inner_html(),
        "temperature": slider(widget, "temperature").locator(".widget-readout").inner_text(),
    }


def check_controls(widget) -> None:
    """Each control of the sampler is on the page once, under its label."""
    for label in ("temperature", "top-p", "top-k", "new tokens", "seed"):
        assert widget.get_by_text(label, exact=True).count() == 1, f"no control labelled {label!r}"


def slider(widget, label: str):
    """The ipywidgets slider whose label reads `label`."""
    return widget.locator(".widget-slider").filter(has=widget.page.get_by_text(label, exact=True))


def press(widget, label: str, key: str, times: int = 1) -> None:
    """Focus a slider's handle and press a key, as a person using the keyboard would."""
    handle = slider(widget, label).locator(".noUi-handle")
    handle.focus()
    for _ in range(times):
        handle.press(key)


def shows_entropy(widget, value: float) -> dict:
    """Wait until the numbers line shows `value` (the kernel answers each slider move), then read the widget."""
    stats = widget.locator(".gptj-sampler-stats").element_handle()
    try:
        widget.page.wait_for_function(SHOWS_ENTROPY, arg=[stats, value], timeout=20_000)
    except Exception as error:
        shown = {k: v for k, v in read(widget).items() if k != "chart"}
        sliders = widget.locator(".widget-readout").all_inner_texts()
        raise AssertionError(f"expected entropy {value:.3f}; the widget shows {shown}, sliders {sliders}") from error
    return read(widget)


def test_sampler_follows_the_temperature_slider_and_generates(lab, new_page):
    model, tok = gt.load("tiny")
    prompt = notebook_prompt(lab["root"] / NOTEBOOK, "PROMPT")
    with torch.no_grad():
        logits = model(tok(prompt, return_tensors="pt").input_ids).logits[0, -1]  # (vocab,)

    page = new_page(Network())  # the widget needs no internet
    open_notebook(page, lab, NOTEBOOK)
    run_all_cells(page)
    widget = page.locator(".jp-OutputArea-output").filter(has=page.locator(".gptj-sampler-chart"))
    widget.wait_for(timeout=30_000)
    widget.scroll_into_view_if_needed()
    check_controls(widget)
    screenshot(page, "sampler_after_run_all", widget)
    # Start from known settings, with the keyboard: top-p 1 (End), top-k 0 = off (Home), temperature 1.00 (Home
    # goes to 0.05, then 19 steps of 0.05). The notebook sets the sliders from code while the widget is shown,
    # and the browser may hand some of those values back to the kernel, so we do not rely on where they stand.
    press(widget, "top-p", "End")
    press(widget, "top-k", "Home")
    press(widget, "temperature", "Home")
    press(widget, "temperature", "ArrowRight", times=19)
    start = shows_entropy(widget, entropy(logits, 1.0))
    assert start["temperature"] == "1.00" and start["nucleus"] == len(tok)  # top-p 1, top-k off: every token
    screenshot(page, "sampler_start", widget)

    press(widget, "temperature", "End")  # to the maximum, 2.00: the bars level out
    hotter = shows_entropy(widget, entropy(logits, 2.0))
    assert hotter["temperature"] == "2.00" and hotter["chart"] != start["chart"]
    assert hotter["entropy"] > start["entropy"] and hotter["top_bar"] < start["top_bar"]

    press(widget, "temperature", "ArrowLeft", times=30)  # 2.00 -> 0.50 in steps of 0.05
    colder = shows_entropy(widget, entropy(logits, 0.5))
    assert colder["temperature"] == "0.50" and colder["chart"] != start["chart"]
    assert colder["entropy"] < start["entropy"]  # a lower temperature sharpens the distribution
    assert colder["top_bar"] > start["top_bar"]  # and the most likely token's bar grows
    screenshot(page, "sampler_colder", widget)

    button = widget.get_by_role("button", name="Generate")
    button.click()
    continuation = widget.locator(".gptj-sampler-text pre b")
    continuation.wait_for(timeout=60_000)
    page.wait_for_function("el => el.textContent.trim().length > 0", arg=continuation.element_handle(), timeout=60_000)
    page.wait_for_function("el => !el.disabled", arg=button.element_handle(), timeout=60_000)  # streaming done
    assert widget.locator(".gptj-sampler-text").inner_text().startswith(prompt.split("\n")[0])
    assert len(continuation.inner_text().strip()) > 0
    screenshot(page, "sampler_generated", widget)
    assert not page.errors, page.errors


def test_a_notebook_opened_without_running_shows_a_sentence_not_the_widget_repr(lab, new_page):
    """On first open (no kernel has run the cell, the saved widget state is gone) the output shows its text/plain."""
    page = new_page(Network())
    page.set_viewport_size({"width": 1280, "height": 900})
    open_notebook(page, lab, NOTEBOOK)
    saved = page.locator(".jp-OutputArea-output").filter(has_text="the sampler: run this cell")
    saved.first.wait_for(timeout=30_000)
    saved.first.scroll_into_view_if_needed()
    try:  # in the DOM is not yet drawn: JupyterLab renders a cell's output when it scrolls into view
        page.wait_for_function(
            "([el, text]) => el.innerText.trim() === text",
            arg=[saved.first.element_handle(), gt.show.widgets.NOT_RUNNING],
            timeout=30_000,
        )
    except PlaywrightTimeout:
        pass  # the assertion below says what is shown instead
    assert saved.first.inner_text().strip() == gt.show.widgets.NOT_RUNNING
    page.wait_for_timeout(1000)  # let every output render before looking for the old text
    assert page.get_by_text("Sampler(children=").count() == 0
    screenshot(page, "sampler_on_first_open", saved.first)
    assert not page.errors, page.errors


def test_the_sampler_fits_a_laptop_screen_and_its_chart_stays_put(lab, new_page):
    page = new_page(Network())
    page.set_viewport_size({"width": 1280, "height": 900})
    open_notebook(page, lab, NOTEBOOK)
    run_all_cells(page)
    widget = page.locator(".jp-OutputArea-output").filter(has=page.locator(".gptj-sampler-chart"))
    widget.wait_for(timeout=30_000)
    widget.scroll_into_view_if_needed()
    box = page.evaluate(
        """el => {
      const area = el.getBoundingClientRect(), chart = el.querySelector(".gptj-sampler-chart").getBoundingClientRect();
      const stats = el.querySelector(".gptj-sampler-stats");
      return {right: area.right, chart_right: chart.right, chart_left: chart.left,
              stats_lines: Math.round(stats.getBoundingClientRect().height
                                      / parseFloat(getComputedStyle(stats).lineHeight || 18))};
    }""",
        widget.element_handle(),
    )
    assert box["chart_right"] <= box["right"] + 1, box  # nothing cut off at 1280 px
    lefts = {box["chart_left"]}
    for key in ("End", "Home"):  # temperature 2.00, then 0.05: the numbers change length, the chart stays
        press(widget, "temperature", key)
        page.wait_for_timeout(1500)
        lefts.add(
            page.evaluate(
                "el => el.querySelector('.gptj-sampler-chart').getBoundingClientRect().left", widget.element_handle()
            )
        )
    assert len(lefts) == 1, lefts
    screenshot(page, "sampler_1280", widget)
