"""bertviz's interactive attention views for our model (or ``transformers``'), light and able to work offline.

``head_view`` draws lines from each token to the tokens it attends to, one colour per head; ``model_view`` a
thumbnail per layer and head. Both take ``out.attentions`` of either model. bertviz itself returns a page that
loads require.js, d3 and jQuery from a CDN and writes every number twice; ``finish`` sends each number once
and short, waits for require.js, and with ``offline=True`` inlines our vendored copies of the three scripts
(``gptj_teach/vendor``), so a view draws in a classroom without internet.

References: Vig, "A Multiscale Visualization of Attention in the Transformer Model" (ACL 2019, bertviz).
"""

import json
import re
from pathlib import Path

import torch

from ..checks import check_flag, check_indices, check_labels, check_whole
from .viz import as_layers

VENDOR = Path(__file__).parents[1] / "vendor"
MAX_LAYERS = 8  # GPT-J 6B has 28: a view of every layer would weigh megabytes, so there the caller picks


def head_view(attentions, tokens, layer=None, heads=None, offline=False, decimals=3, **kw):
    """bertviz's head view: lines from each token to the tokens it attends to, one colour per head.

    attentions: ``out.attentions`` of our model or of ``transformers`` (or the output itself); tokens: one
    label per position (``token_labels``). Returns an ``IPython.display.HTML``; a notebook cell shows it.
    ``offline=True`` needs no internet (see ``inline_scripts``). Other keywords go to bertviz.
    """
    from bertviz import head_view as bertviz_head_view

    maps, tokens, decimals = view_inputs(attentions, tokens, offline, decimals)
    layer = None if layer is None else check_whole(layer, "layer", 0, len(maps) - 1)
    heads = None if heads is None else check_indices(heads, "heads", maps.shape[1])
    kw.setdefault("include_layers", default_layers(len(maps), layer))
    check_indices(kw["include_layers"], "include_layers", len(maps))
    view = bertviz_head_view(
        rounded(maps, decimals),
        list(tokens),
        layer=layer,
        heads=heads,
        prettify_tokens=False,
        html_action="return",
        **kw,
    )
    return finish(view.data, offline)


def model_view(attentions, tokens, offline=False, decimals=3, **kw):
    """bertviz's model view: a thumbnail per layer and head; click one to see it large. Arguments as ``head_view``."""
    from bertviz import model_view as bertviz_model_view

    maps, tokens, decimals = view_inputs(attentions, tokens, offline, decimals)
    kw.setdefault("include_layers", default_layers(len(maps)))
    check_indices(kw["include_layers"], "include_layers", len(maps))
    view = bertviz_model_view(rounded(maps, decimals), list(tokens), prettify_tokens=False, html_action="return", **kw)
    return finish(fit_width(view.data), offline)


def view_inputs(attentions, tokens, offline, decimals):
    """The arguments both views share, checked: (maps (layers, heads, q, k), one label per position, decimals)."""
    maps = as_layers(attentions)
    check_flag(offline, "offline")
    return maps, check_labels(tokens, maps, exact=True), check_whole(decimals, "decimals", 1, 15)  # 0: all 0 or 1


FIXED_SVG = re.compile(
    r'(\.append\(\s*[\'"]svg[\'"]\s*\))\s*\.attr\("width", DIV_WIDTH\)\s*'
    r'\.attr\("height", config\.divHeight\)'
)
FITTED_SVG = (
    r'\1.attr("viewBox", `0 0 ${DIV_WIDTH} ${config.divHeight}`)'
    r'.style("width", "100%").style("max-width", `${DIV_WIDTH}px`).style("height", "auto")'
)


def fit_width(page: str) -> str:
    """The model view scaled down to fit its cell: bertviz draws it 970 px wide, wider than a notebook's output
    on a laptop (828 px in JupyterLab at 1280 px), which cut off the last heads without a scroll bar. A viewBox
    keeps bertviz's drawing and its clicks as they are and lets the browser shrink the picture to the cell."""
    fitted, n = FIXED_SVG.subn(FITTED_SVG, page, count=1)
    if n != 1:
        raise RuntimeError("bertviz's model view has changed shape: update gptj_teach.show.bertviz_views.fit_width")
    return fitted


def default_layers(n_layers: int, layer=None) -> list[int]:
    """Every layer of a small model; only the chosen one (or the first) of a big one, to keep the page light."""
    return list(range(n_layers)) if n_layers <= MAX_LAYERS else [layer or 0]


def rounded(maps: torch.Tensor, decimals: int) -> tuple[torch.Tensor, ...]:
    """bertviz's input, one (1, heads, q, k) tensor per layer, rounded so that its JSON stays short.

    bertviz writes ``tensor.tolist()`` as JSON. A float32 0.123 becomes the Python float 0.12300000339746475
    (20 characters); rounding in float64 gives the float nearest 0.123, which JSON writes as ``0.123``.
    """
    return tuple(torch.round(layer.double(), decimals=decimals)[None] for layer in maps)


ATTENTION_JSON = re.compile(r'"attn": (\[[-0-9.e,\[\] ]*\])')  # only numbers: token strings never match
SECOND_COPY = re.compile(r"(const params = .*?;) // HACK: .*$", re.MULTILINE)


def finish(page: str, offline: bool):
    """Send each number once and short (``0.0, 0.25`` -> ``0,0.25``), wait for require.js, inline if offline.

    bertviz fills its template with ``.replace("PYTHON_PARAMS", json)``, which also fills the comment after
    it (``// HACK: PYTHON_PARAMS is a template marker``): every number is sent twice. We drop that comment.
    """
    from IPython.display import HTML

    page = SECOND_COPY.sub(r"\1", page, count=1)
    page = ATTENTION_JSON.sub(lambda m: '"attn": ' + re.sub(r"\.0\b", "", m[1].replace(" ", "")), page)
    page = wait_for_require(page)
    return HTML(inline_scripts(page) if offline else page)


VIEW_SCRIPT = re.compile(r'<script type="text/javascript">\n(.*)\n</script>', re.DOTALL)
NO_INTERNET = (
    '<div style="background:#fff3cd;color:#664d03;border:1px solid #ffe69c;border-radius:4px;'
    'padding:8px 12px;font-size:13px">⚠ bertviz could not load its scripts (require.js, d3, jQuery) from '
    "the internet. Offline? Set <code>OFFLINE = True</code> in the notebook (it passes "
    "<code>offline=True</code>) and run this cell again.</div>"
)
WAIT = """<script type="text/javascript">
(function draw(tries) {
  const NO_INTERNET = %(warning)s;  // inside the function: a page shows several views, each with this script
  const notice = function () {  // bertviz empties #vis and draws into it: still empty means it never ran
    const vis = document.querySelector("#%(root)s #vis");
    if (vis && !vis.childElementCount) { vis.innerHTML = NO_INTERNET; }
  };
  if (typeof requirejs === "undefined") {
    return tries < 100 ? setTimeout(draw, 100, tries + 1) : notice();
  }
  setTimeout(notice, 10000);  // the page's own require.js (classic Notebook, Colab) may never get d3 or jQuery
%(view)s
})(0);
</script>"""


def wait_for_require(page: str) -> str:
    """Run bertviz's script once require.js is there, and say so in the cell if the view is not drawn in 10 s.

    JupyterLab inserts the ``<script src=...require.min.js>`` of the page, which loads in the background, and
    runs the inline script after it at once: bertviz alone then fails with "require is not defined". The classic
    Notebook (and Colab) has a require.js of its own, so offline the view script runs and then waits forever for
    d3 and jQuery from the CDN: that case gets the same notice, once 10 s pass with nothing drawn.
    """
    root = re.search(r'<div id="(bertviz-[0-9a-f]+)"', page)[1]
    return VIEW_SCRIPT.sub(
        lambda m: WAIT % {"view": m[1], "root": root, "warning": json.dumps(NO_INTERNET)}, page, count=1
    )


CDN_REQUIRE = '<script src="https://cdnjs.cloudflare.com/ajax/libs/require.js/2.3.6/require.min.js"></script>'
CDN_PATHS = re.compile(r"require\.config\(\{.*?\}\);", re.DOTALL)  # bertviz points d3 and jquery at a CDN


def inline_scripts(page: str) -> str:
    """Make a bertviz page self-contained: no request leaves the machine, so it draws in an offline classroom.

    bertviz's script runs ``requirejs(['jquery', 'd3'], draw)`` after loading require.js from a CDN and
    pointing require.js at the CDN for d3 and jQuery. Instead we inline require.js (it does nothing when
    the page has an AMD loader already, as JupyterLab may after an earlier view), register our copies from
    gptj_teach/vendor under the names bertviz asks for with ``define(name, [], factory)``, and drop the CDN
    paths. require.js then finds both modules defined and fetches nothing. Adds about 345 kB.
    """
    if CDN_REQUIRE not in page or not CDN_PATHS.search(page):
        raise RuntimeError("bertviz's page has changed shape: update gptj_teach.show.bertviz_views.inline_scripts")
    require, d3, jquery = (
        (VENDOR / name).read_text(encoding="utf-8") for name in ("require.min.js", "d3.min.js", "jquery.min.js")
    )
    modules = (  # `var define, module, exports` hides the loader, so each library builds a plain object
        'define("d3", [], function () {\nvar define, module, exports, root = {};\n'
        f"(function () {{\n{d3}\n}}).call(root);\nreturn root.d3;\n}});\n"
        f'define("jquery", [], function () {{\nvar define, module, exports;\n{jquery}\n'
        "return jQuery.noConflict(true);  // give the page back its own $ and jQuery, if any\n});\n"
    )
    scripts = f"<script>\n{require}\n</script>\n<script>\n{modules}</script>"
    return CDN_PATHS.sub("", page, count=1).replace(CDN_REQUIRE, scripts)
