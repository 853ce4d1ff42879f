"""The sampler (notebook 06) and the bertviz views (notebook 07) in the classic Notebook 6.5 with ipywidgets 7.7.1,
the frontend and widget versions of Colab (issue 30). JupyterLab with ipywidgets 8: test_sampler.py, test_bertviz.py.

These run in `make test-colab`'s venv, which has Colab's versions; elsewhere (the gate's JupyterLab venv) they skip.
"""

import ipywidgets
import nbformat
import notebook
import pytest
import torch

import gptj_teach as gt

from .classic import classic_server, open_notebook, run_all_cells
from .conftest import Network, require_chromium, screenshot
from .jupyterlab import bertviz_views, notebook_prompt
from .test_bertviz import check_head_views, labels, wait_until_drawn
from .test_sampler import SHOWS_ENTROPY, check_controls, entropy, slider

require_chromium()
if not (notebook.__version__.startswith("6.") and ipywidgets.__version__.startswith("7.")):
    pytest.skip(
        "the classic Notebook 6 + ipywidgets 7 tests run in make test-colab's venv (Colab's versions)",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def classic(chromium, tmp_path_factory):
    with classic_server(tmp_path_factory.mktemp("classic")) as server:
        yield server


def test_sampler_in_the_classic_notebook(classic, new_page):
    model, tok = gt.load("tiny")
    prompt = notebook_prompt(classic["root"] / "06_sampling.ipynb", "PROMPT")
    with torch.no_grad():
        logits = model(tok(prompt, return_tensors="pt").input_ids).logits[0, -1]  # (vocab,)

    page = new_page(Network())  # the widget needs no internet
    open_notebook(page, classic, "06_sampling.ipynb")
    run_all_cells(page)
    widget = page.locator(".output_area").filter(has=page.locator(".gptj-sampler-chart"))
    widget.wait_for(timeout=30_000)  # the cells have run; the view draws once its widget models arrive
    widget.scroll_into_view_if_needed()
    check_controls(widget)
    top_k_label = slider(widget, "top-k").locator(".widget-label")
    assert top_k_label.get_attribute("title") == "0 = off: keep all tokens"  # ipywidgets 7's description_tooltip
    assert "Sampler(" not in widget.inner_text()
    screenshot(page, "classic_sampler_after_run_all", widget)

    # The temperature slider to its minimum (Home), by keyboard on jQuery UI's handle: the chart and numbers follow
    stats = widget.locator(".gptj-sampler-stats")
    page.wait_for_function(SHOWS_ENTROPY, arg=[stats.element_handle(), entropy(logits, 1.0)], timeout=20_000)
    chart = widget.locator(".gptj-sampler-chart").inner_html()
    handle = slider(widget, "temperature").locator(".ui-slider-handle")
    handle.focus()
    handle.press("Home")
    page.wait_for_function(SHOWS_ENTROPY, arg=[stats.element_handle(), entropy(logits, 0.05)], timeout=20_000)
    assert widget.locator(".gptj-sampler-chart").inner_html() != chart
    assert slider(widget, "temperature").locator(".widget-readout").inner_text().strip() == "0.05"

    widget.get_by_text("Generate", exact=True).click()
    text = widget.locator(".gptj-sampler-text b")
    text.wait_for(timeout=60_000)
    page.wait_for_function("el => el.textContent.length > 0", arg=text.element_handle(), timeout=60_000)
    screenshot(page, "classic_sampler_generated", widget)
    assert not page.errors, page.errors


def notebook_07(classic, offline: bool) -> str:
    """Notebook 07 as the server's copy, with OFFLINE set as a teacher would; returns its file name."""
    nb = nbformat.read(classic["root"] / "07_attention_visualization.ipynb", as_version=4)
    switch = [c for c in nb.cells if c.source.startswith("OFFLINE = False")]
    assert len(switch) == 1, "notebook 07 should have one `OFFLINE = False` cell"
    switch[0].source = switch[0].source.replace("OFFLINE = False", f"OFFLINE = {offline}", 1)
    name = f"07_offline_{offline}.ipynb"
    nbformat.write(nb, classic["root"] / name)
    return name


def test_bertviz_in_the_classic_notebook(classic, new_page):
    tokens = labels(notebook_prompt(classic["root"] / "07_attention_visualization.ipynb"))

    # OFFLINE = True with every external request blocked: the views draw from the copies they carry
    network = Network()
    page = new_page(network)
    open_notebook(page, classic, notebook_07(classic, offline=True))
    run_all_cells(page)
    check_head_views(wait_until_drawn(page, tokens, 3), tokens, expected=2)
    screenshot(page, "classic_bertviz_offline")
    assert not any(("cdnjs" in url or "jsdelivr" in url) for url in network.blocked), network.blocked

    # OFFLINE = False and no internet: the page's own require.js runs the view, d3 and jQuery never come; each view
    # says so in its cell instead of staying blank
    network = Network()
    page = new_page(network)
    open_notebook(page, classic, notebook_07(classic, offline=False))
    run_all_cells(page)
    notices = page.locator("div[id^='bertviz-'] #vis").filter(has_text="could not load its scripts")
    notices.nth(2).wait_for(timeout=30_000)  # one in each of the three views
    assert "OFFLINE = True" in notices.first.inner_text()
    assert all(not view["texts"] for view in bertviz_views(page))
    assert any(("d3" in url or "jquery" in url) for url in network.blocked), network.blocked
    screenshot(page, "classic_bertviz_blocked")
