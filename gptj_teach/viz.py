"""Pictures of what GPT-J reads and where it looks: tokens, attention maps, next-token bars, rotary tables.

* ``tokens_html`` colours each token of a text, so you see where byte-level BPE cuts (a space shows as ``·``);
* ``attention_heatmap`` / ``attention_grid`` draw the weights ``softmax(q k^T / sqrt(d))``: row = the query
  token, column = the key token it looks at; causal masking leaves the upper triangle empty;
* ``head_view`` / ``model_view`` wrap bertviz's interactive views for ``out.attentions`` of our model or of
  ``transformers``, with small pages and an ``offline=True`` mode that needs no CDN;
* ``plot_distribution`` shows the most likely next tokens; ``plot_sinusoids`` the rotary sin / cos table.

References: Vig, "A Multiscale Visualization of Attention in the Transformer Model" (ACL 2019, bertviz);
Olsson et al., "In-context Learning and Induction Heads" (2022) for previous-token heads.
"""

import html
import re
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from .rotary import fixed_pos_embedding
from .tokenizer import bytes_to_unicode

PASTELS = ["#ffd6a5", "#caffbf", "#9bf6ff", "#bdb2ff", "#ffc6ff", "#fdffb6", "#a0c4ff", "#ffadad"]
VISIBLE = {" ": "·", "\n": "↵", "\t": "→"}
VENDOR = Path(__file__).parent / "vendor"
MAX_LAYERS = 8  # GPT-J 6B has 28: a view of every layer would weigh megabytes, so there the caller picks


# ---- tokens -------------------------------------------------------------------------------------------
def token_text(tok, token_id: int) -> str:
    """The text of one token. A token holding part of a multi-byte character shows its bytes (``\\xf0\\x9f``).

    GPT-2's BPE works on UTF-8 *bytes*, so an emoji (4 bytes) may be cut across tokens; ``tok.decode([id])``
    would print ``�`` for each piece, and we would lose what the model really sees.
    """
    symbols = tok.convert_ids_to_tokens(int(token_id))  # printable stand-ins, one per byte: ' ' is 'Ġ'
    to_byte = {char: byte for byte, char in bytes_to_unicode().items()}
    if not all(char in to_byte for char in symbols):
        return tok.decode([int(token_id)])  # an added token spelt outside the 256-symbol byte alphabet
    return bytes(to_byte[char] for char in symbols).decode("utf-8", errors="backslashreplace")


def visible(text: str) -> str:
    """Make whitespace visible: space -> ``·``, newline -> ``↵``, tab -> ``→``."""
    return "".join(VISIBLE.get(char, char) for char in text)


def token_labels(tok, ids) -> list[str]:
    """One readable label per token id (visible whitespace), for plot axes and bertviz views."""
    return [visible(token_text(tok, i)) for i in torch.as_tensor(ids).flatten().tolist()]


def tokens_html(tok, text: str) -> str:
    """HTML showing each token of ``text`` as a coloured span; hover a token to see its id."""
    spans = []
    for n, token_id in enumerate(tok(text).input_ids):
        label = html.escape(visible(token_text(tok, token_id)))
        label = label.replace("↵", "↵\n")  # show the arrow, then really break the line
        spans.append(f'<span style="background:{PASTELS[n % len(PASTELS)]};border-radius:3px" '
                     f'title="{token_id}">{label}</span>')
    return '<div style="font-family:monospace;white-space:pre-wrap;line-height:1.8">' + "".join(spans) + "</div>"


def show_tokens(tok, text: str):
    """``tokens_html`` as an object that a notebook displays."""
    from IPython.display import HTML
    return HTML(tokens_html(tok, text))


# ---- attention with matplotlib ------------------------------------------------------------------------
def as_layers(attentions) -> torch.Tensor:
    """Any of our attention formats -> one tensor (layers, heads, query, key) for the first sequence.

    Accepts a model output (``out.attentions`` is used), a tuple / list with one (batch, heads, q, k) tensor
    per layer (ours and ``transformers`` alike), or an already stacked (layers, heads, q, k) tensor.
    """
    attentions = getattr(attentions, "attentions", attentions)
    if isinstance(attentions, torch.Tensor) and attentions.dim() == 4:
        return attentions.detach().float().cpu()
    return torch.stack([layer[0] for layer in attentions]).detach().float().cpu()  # (layers, heads, q, k)


def attention_heatmap(attn, tokens, ax=None, title=None):
    """Draw one attention map: row i = query token i, column j = how much it looks at token j."""
    attn = torch.as_tensor(attn).detach().float().cpu()  # (query, key)
    ax = ax or plt.subplots(figsize=(5, 5))[1]
    ax.imshow(attn.numpy(), cmap="viridis", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(attn.shape[1]), tokens[-attn.shape[1]:], rotation=90, fontsize=8)
    ax.set_yticks(range(attn.shape[0]), tokens[-attn.shape[0]:], fontsize=8)
    ax.set(xlabel="key (looked at)", ylabel="query (looking)")
    ax.set_title(title or "", fontsize=9)
    return ax


def attention_grid(attentions, tokens, layer=None):
    """All heads of one ``layer`` in a row, or (layer=None) a grid of layers x heads. Returns the figure."""
    maps = as_layers(attentions)  # (layers, heads, q, k)
    layers = range(len(maps)) if layer is None else [layer]
    n_heads = maps.shape[1]
    fig, axes = plt.subplots(len(layers), n_heads, figsize=(2.2 * n_heads, 2.2 * len(layers)), squeeze=False)
    for row, l in enumerate(layers):
        for h in range(n_heads):
            ax = attention_heatmap(maps[l, h], tokens, ax=axes[row, h], title=f"layer {l}, head {h}")
            ax.set(xlabel="", ylabel="")
            ax.tick_params(labelsize=6)
            if h:
                ax.set_yticks([])  # token labels on the left column and the bottom row only
            if row < len(layers) - 1:
                ax.set_xticks([])
    fig.tight_layout()
    return fig


# ---- bertviz ----------------------------------------------------------------------------------------
def head_view(attentions, tokens, layer=None, heads=None, offline=False, decimals=3, **kw):
    """bertviz's head view: lines from each token to the tokens it attends to, one colour per head.

    attentions: ``out.attentions`` of our model or of ``transformers`` (or the output itself); tokens: one
    label per position (``token_labels``). Returns an ``IPython.display.HTML``; a notebook cell shows it.
    ``offline=True`` needs no internet (see ``inline_scripts``). Other keywords go to bertviz.
    """
    from bertviz import head_view as bertviz_head_view
    maps = as_layers(attentions)
    kw.setdefault("include_layers", default_layers(len(maps), layer))
    view = bertviz_head_view(rounded(maps, decimals), list(tokens), layer=layer, heads=heads,
                             prettify_tokens=False, html_action="return", **kw)
    return finish(view.data, offline)


def model_view(attentions, tokens, offline=False, decimals=3, **kw):
    """bertviz's model view: a thumbnail per layer and head; click one to see it large. Arguments as ``head_view``."""
    from bertviz import model_view as bertviz_model_view
    maps = as_layers(attentions)
    kw.setdefault("include_layers", default_layers(len(maps)))
    view = bertviz_model_view(rounded(maps, decimals), list(tokens), prettify_tokens=False,
                              html_action="return", **kw)
    return finish(view.data, offline)


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
WAIT = """<script type="text/javascript">
(function draw(tries) {
  if (typeof requirejs === "undefined") {
    if (tries < 100) { return setTimeout(draw, 100, tries + 1); }
    const vis = document.querySelector("#%(root)s #vis");
    return vis && (vis.textContent = "bertviz could not load require.js from the internet: try offline=True");
  }
%(view)s
})(0);
</script>"""


def wait_for_require(page: str) -> str:
    """Run bertviz's script once require.js is there, and say so in the cell if it never comes (after 10 s).

    JupyterLab inserts the ``<script src=...require.min.js>`` of the page, which loads in the background, and
    runs the inline script after it at once: bertviz alone then fails with "require is not defined".
    """
    root = re.search(r'<div id="(bertviz-[0-9a-f]+)"', page)[1]
    return VIEW_SCRIPT.sub(lambda m: WAIT % {"view": m[1], "root": root}, page, count=1)


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
        raise RuntimeError("bertviz's page has changed shape: update gptj_teach.viz.inline_scripts")
    require, d3, jquery = ((VENDOR / name).read_text(encoding="utf-8")
                           for name in ("require.min.js", "d3.min.js", "jquery.min.js"))
    modules = (  # `var define, module, exports` hides the loader, so each library builds a plain object
        'define("d3", [], function () {\nvar define, module, exports, root = {};\n'
        f'(function () {{\n{d3}\n}}).call(root);\nreturn root.d3;\n}});\n'
        f'define("jquery", [], function () {{\nvar define, module, exports;\n{jquery}\n'
        "return jQuery.noConflict(true);  // give the page back its own $ and jQuery, if any\n});\n")
    scripts = f"<script>\n{require}\n</script>\n<script>\n{modules}</script>"
    return CDN_PATHS.sub("", page, count=1).replace(CDN_REQUIRE, scripts)


# ---- next-token distribution and rotary -------------------------------------------------------------------
def plot_distribution(probs, tok, k=20, ax=None, highlight=None):
    """Horizontal bars of the ``k`` most likely next tokens, most likely on top.

    probs: (vocab,) probabilities. highlight: optional (vocab,) bool mask (e.g. the top-p nucleus); those bars
    are drawn in a strong colour, the others grey.
    """
    probs = torch.as_tensor(probs).detach().float().cpu().flatten()
    top = torch.topk(probs, k)
    marked = [True] * k if highlight is None else torch.as_tensor(highlight).flatten()[top.indices].tolist()
    ax = ax or plt.subplots(figsize=(6, 0.25 * k + 1))[1]
    ax.barh(range(k), top.values.numpy(), color=["tab:blue" if m else "lightgrey" for m in marked])
    ax.set_yticks(range(k), token_labels(tok, top.indices), fontsize=8, family="monospace")
    ax.invert_yaxis()  # the most likely token on top
    ax.set_xlabel("probability")
    return ax


def plot_sinusoids(n_positions: int, rotary_dim: int, ax=None):
    """The rotary table ``fixed_pos_embedding``: sin then cos of ``position * frequency`` for each pair.

    Left columns turn fast (pair 0 makes a full turn every ~6 positions), right columns slowly.
    """
    sin, cos = fixed_pos_embedding(torch.arange(n_positions)[None], rotary_dim)  # (1, n, rotary_dim // 2) each
    table = torch.cat([sin[0], cos[0]], dim=-1)  # (n, rotary_dim): sin of every pair, then cos
    ax = ax or plt.subplots(figsize=(6, 4))[1]
    image = ax.imshow(table.numpy(), cmap="RdBu", vmin=-1, vmax=1, aspect="auto", interpolation="nearest")
    ax.axvline(rotary_dim // 2 - 0.5, color="black", linewidth=1)
    ax.set_xlabel(f"pair i: sin (0..{rotary_dim // 2 - 1}) | cos (0..{rotary_dim // 2 - 1})")
    ax.set_ylabel("position")
    ax.figure.colorbar(image, ax=ax)
    return ax
