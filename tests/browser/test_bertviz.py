"""bertviz views as a learner sees them in Chromium: in notebook 07 in JupyterLab with the CDN served locally,
and with offline=True while every request that leaves 127.0.0.1 is blocked."""

import functools
import http.server
import threading

import nbformat
import pytest
import torch

import gptj_teach as gt

from .conftest import Network, require_chromium, screenshot
from .jupyterlab import bertviz_views, notebook_prompt, open_notebook, run_all_cells

require_chromium()

NOTEBOOK = "07_attention_visualization.ipynb"
DRAWN = """([n, views]) => {
  const divs = Array.from(document.querySelectorAll("div[id^='bertviz-']"));
  const heads = divs.filter(d => d.querySelector("select#layer"));
  return divs.length >= views && heads.every(d => d.querySelectorAll("svg text").length >= 2 * n);
}"""


@functools.cache
def labels(prompt: str) -> list[str]:
    """The token labels a view of `prompt` must show (computed here, not read from the page)."""
    tok = gt.load_tokenizer()
    return gt.show.viz.token_labels(tok, tok(prompt).input_ids)


def wait_until_drawn(page, tokens, views: int) -> list[dict]:
    """Wait until `views` bertviz views are on the page and every head view shows its tokens; return the views."""
    try:
        page.wait_for_function(DRAWN, arg=[len(tokens), views], timeout=30_000)
    except Exception as error:  # say what the page shows instead
        raise AssertionError(f"views not drawn: {bertviz_views(page)}; JavaScript errors: {page.errors}") from error
    return bertviz_views(page)


def check_head_views(views, tokens, expected: int) -> None:
    heads = [v for v in views if v["kind"] == "head"]
    assert len(heads) == expected, views
    for view in heads:  # the tokens down the left (queries) and down the right (keys)
        assert view["texts"][: 2 * len(tokens)] == tokens + tokens, view["texts"]


def open_model_view_detail(page, view_id: str, tokens) -> None:
    """Click the first thumbnail of a model view, as a learner would, and check the enlarged head's tokens."""
    view = page.locator(f"#{view_id}")
    view.scroll_into_view_if_needed()
    view.locator("svg rect[style*='opacity: 0']").first.click()
    page.wait_for_function(
        "([id, n]) => document.querySelectorAll(`#${id} svg text`).length >= 2 * n",
        arg=[view_id, len(tokens)],
        timeout=10_000,
    )
    texts = [t for t in view.locator("svg text").all_text_contents() if t in tokens]
    assert texts[-2 * len(tokens) :] == tokens + tokens


def test_notebook_07_draws_its_views_with_the_cdn_served_locally(lab, new_page, cdn_files):
    network = Network(cdn_files)
    page = new_page(network)
    page.set_viewport_size({"width": 1280, "height": 900})  # a laptop: bertviz's 970 px model view used to be cut
    open_notebook(page, lab, NOTEBOOK)
    run_all_cells(page)
    tokens = labels(notebook_prompt(lab["root"] / NOTEBOOK))
    views = wait_until_drawn(page, tokens, 3)
    check_head_views(views, tokens, expected=2)
    first = page.locator(f"#{views[0]['id']}")
    first.scroll_into_view_if_needed()
    screenshot(page, "07_head_view", first)
    model = next(v for v in views if v["kind"] == "model")
    fit = page.evaluate(
        """id => {
      const svg = document.querySelector(`#${id} svg`).getBoundingClientRect();
      const area = document.querySelector(`#${id}`).closest(".jp-OutputArea-output").getBoundingClientRect();
      return {svg_left: svg.left, svg_right: svg.right, area_left: area.left, area_right: area.right};
    }""",
        model["id"],
    )
    assert fit["area_left"] - 1 <= fit["svg_left"] and fit["svg_right"] <= fit["area_right"] + 1, (
        fit
    )  # no clipped column
    assert fit["svg_right"] - fit["svg_left"] > 500, fit  # and still large enough to read
    open_model_view_detail(page, model["id"], tokens)
    screenshot(page, "07_model_view")
    assert {url.rsplit("/", 1)[-1] for url in network.served} == {"require.min.js", "d3.min.js", "jquery.min.js"}
    assert not page.errors, page.errors


@pytest.fixture(scope="module")
def static_server(tmp_path_factory):
    """A plain HTTP server on 127.0.0.1 for the test pages: (base url, folder)."""
    folder = tmp_path_factory.mktemp("pages")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None  # quiet
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", folder
    server.shutdown()


def page_of(*views) -> str:
    return (
        '<!doctype html><html><head><meta charset="utf-8"></head><body>'
        + "\n".join(v.data for v in views)
        + "</body></html>"
    )


def test_offline_views_draw_with_every_external_request_blocked(new_page, static_server):
    base, folder = static_server
    model, tok = gt.load("tiny")
    prompt = "import os\nfor name in os.listdir('.'):\n    print(name)"
    tokens = labels(prompt)
    with torch.no_grad():
        out = model(tok(prompt, return_tensors="pt").input_ids, output_attentions=True)
    # two views in one page: the second finds require.js, d3 and jQuery already there, as in a notebook
    (folder / "offline.html").write_text(
        page_of(
            gt.show.bertviz_views.head_view(out, tokens, offline=True),
            gt.show.bertviz_views.model_view(out, tokens, offline=True),
        ),
        encoding="utf-8",
    )
    (folder / "online.html").write_text(page_of(gt.show.bertviz_views.head_view(out, tokens)), encoding="utf-8")

    network = Network()  # no CDN copies: every request that leaves 127.0.0.1 is aborted
    page = new_page(network)
    page.goto(f"{base}/offline.html")
    views = wait_until_drawn(page, tokens, 2)
    check_head_views(views, tokens, expected=1)
    screenshot(page, "offline_head_view", page.locator(f"#{views[0]['id']}"))
    open_model_view_detail(page, views[1]["id"], tokens)
    screenshot(page, "offline_model_view")
    assert network.blocked == [], "the offline page tried to reach the network"
    assert not page.errors, page.errors

    # Control: the default page does need the network. Blocked, it draws nothing and says why in the cell.
    page = new_page(network)
    page.goto(f"{base}/online.html")
    page.get_by_text("could not load its scripts").first.wait_for(timeout=20_000)
    assert "OFFLINE = True" in page.get_by_text("could not load its scripts").first.inner_text()
    assert all(not v["texts"] for v in bertviz_views(page))
    assert any("require" in url for url in network.blocked)
    screenshot(page, "online_view_blocked")

    # The classic Notebook and Colab have a require.js of their own: the view's script runs, and d3 and jQuery never
    # come from the blocked CDN. The same notice, once nothing is drawn in 10 s.
    require = (gt.show.bertviz_views.VENDOR / "require.min.js").read_text(encoding="utf-8")
    own_loader = page_of(gt.show.bertviz_views.head_view(out, tokens)).replace(
        "<body>", f"<body><script>{require}</script>", 1
    )
    (folder / "own_require.html").write_text(own_loader, encoding="utf-8")
    page = new_page(network)
    page.goto(f"{base}/own_require.html")
    page.get_by_text("could not load its scripts").first.wait_for(timeout=20_000)
    assert all(not v["texts"] for v in bertviz_views(page))
    assert any(("d3" in url or "jquery" in url) for url in network.blocked), network.blocked


def test_notebook_07_offline_in_jupyterlab_with_every_external_request_blocked(lab, new_page):
    source = lab["root"] / NOTEBOOK
    nb = nbformat.read(source, as_version=4)
    switch = [c for c in nb.cells if c.source.startswith("OFFLINE = False")]
    assert len(switch) == 1, "notebook 07 should have one `OFFLINE = False` cell"
    switch[0].source = switch[0].source.replace("OFFLINE = False", "OFFLINE = True", 1)  # what a teacher does
    nbformat.write(nb, lab["root"] / "07_offline.ipynb")

    network = Network()
    page = new_page(network)
    open_notebook(page, lab, "07_offline.ipynb")
    run_all_cells(page)
    tokens = labels(notebook_prompt(source))
    check_head_views(wait_until_drawn(page, tokens, 3), tokens, expected=2)
    assert not any(("cdnjs" in url or "jsdelivr" in url) for url in network.blocked), network.blocked
    assert not page.errors, page.errors
