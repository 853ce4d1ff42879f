"""gptj_teach.show.viz: token colouring, matplotlib attention maps, bertviz pages (small, offline), distributions.

What a browser shows is tested in tests/browser/; here we test the HTML and the figures themselves.
"""

import html
import json
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

import gptj_teach as gt  # noqa: E402
from gptj_teach.parity import report_parity  # noqa: E402
from gptj_teach.reference import create_sinusoidal_positions  # noqa: E402
from gptj_teach.show import bertviz_views, viz  # noqa: E402

CODE = '''def fibonacci(n):
    """Return the n-th Fibonacci number, counting from fibonacci(0) == 0."""
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


class Stack:
    def __init__(self):
        self.items = []
'''


@pytest.fixture(scope="module")
def run64(tiny):
    """A 64-token prompt through our tiny model and through transformers' (eager attention, fp32)."""
    model, tok = tiny
    ids = tok(CODE, return_tensors="pt").input_ids[:, :64]
    assert ids.shape == (1, 64)
    hf = transformers.GPTJForCausalLM.from_pretrained(
        gt.checkpoint.TINY, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    with torch.no_grad():
        ours = model(ids, output_attentions=True)
        theirs = hf(ids, output_attentions=True)
    return ids, viz.token_labels(tok, ids[0]), ours, theirs


def page_params(page: str) -> dict:
    """The JSON that a bertviz page hands to its script."""
    return json.loads(re.search(r"const params = (.*?); *$", page, re.MULTILINE)[1])


# ---- tokens -----------------------------------------------------------------------------------------------
def test_token_labels_round_trip_with_visible_whitespace(tiny):
    _, tok = tiny
    ids = tok(CODE).input_ids
    labels = viz.token_labels(tok, ids)
    assert len(labels) == len(ids)
    assert "".join(labels) == CODE.replace(" ", "·").replace("\n", "↵").replace("\t", "→")


def test_token_text_shows_the_bytes_of_a_split_character(tiny):
    _, tok = tiny
    ids = tok("😀").input_ids
    assert len(ids) > 1  # GPT-2's BPE cuts this emoji's 4 UTF-8 bytes over several tokens
    texts = [viz.token_text(tok, i) for i in ids]
    assert all("\\x" in t for t in texts)
    recovered = b"".join(bytes(int(h, 16) for h in re.findall(r"\\x([0-9a-f]{2})", t)) for t in texts)
    assert recovered.decode("utf-8") == "😀"
    assert viz.token_text(tok, tok("é").input_ids[0]) == "é"  # a whole character in one token


def test_tokens_html_has_every_token_its_id_and_cycling_colours(tiny):
    _, tok = tiny
    text = "if a < b:\n\treturn 'naïve' & \"😀\""
    ids = tok(text).input_ids
    page = viz.tokens_html(tok, text)
    spans = re.findall(r'<span style="background:(#[0-9a-f]{6});[^"]*" title="(\d+)">(.*?)</span>', page, re.DOTALL)
    assert [int(i) for _, i, _ in spans] == ids
    for (_, _, shown), token_id in zip(spans, ids, strict=True):
        assert html.unescape(shown).replace("↵\n", "↵") == viz.visible(viz.token_text(tok, token_id))
    colours = [c for c, _, _ in spans]
    assert all(a != b for a, b in zip(colours, colours[1:]))  # neighbours always differ
    assert "<" not in "".join(s for _, _, s in spans)  # '<' in the text is escaped
    assert viz.show_tokens(tok, text).data == page


# ---- matplotlib ---------------------------------------------------------------------------------------------
def test_attention_heatmap_draws_the_map_with_token_labels(run64):
    _, labels, ours, _ = run64
    attn = ours.attentions[2][0, 1, :10, :10]
    ax = viz.attention_heatmap(attn, labels[:10], title="layer 2, head 1")
    image = ax.get_images()[0].get_array()
    assert image.shape == (10, 10)
    torch.testing.assert_close(torch.as_tensor(image.data), attn)
    assert [t.get_text() for t in ax.get_xticklabels()] == labels[:10]
    assert [t.get_text() for t in ax.get_yticklabels()] == labels[:10]
    colorbars = [a for a in ax.figure.axes if a is not ax]
    assert len(colorbars) == 1 and colorbars[0].get_ylabel() == "attention weight"  # what the colours mean
    assert min(t.get_fontsize() for t in ax.get_xticklabels()) >= 9
    assert len(viz.attention_heatmap(attn, labels[:10], colorbar=False).figure.axes) == 1
    plt.close("all")


def test_attention_grid_has_layers_times_heads_panels(run64):
    _, labels, ours, _ = run64
    fig = viz.attention_grid(ours.attentions, labels)
    assert len(fig.axes) == 4 * 3 + 1  # the panels and one shared colour bar
    assert fig.axes[-1].get_ylabel() == "attention weight"
    assert fig.axes[5].get_title() == "layer 1, head 2"
    torch.testing.assert_close(torch.as_tensor(fig.axes[5].get_images()[0].get_array().data), ours.attentions[1][0, 2])
    assert len(viz.attention_grid(ours, labels, layer=3).axes) == 3 + 1
    plt.close("all")


# ---- bertviz --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("view", [bertviz_views.head_view, bertviz_views.model_view])
def test_views_carry_the_tokens_and_the_rounded_weights(run64, view):
    _, labels, ours, _ = run64
    page = view(ours.attentions, labels).data
    params = page_params(page)
    data = params["attention"][0]
    assert data["left_text"] == labels and data["right_text"] == labels
    weights = torch.tensor(data["attn"], dtype=torch.float64)  # (layers, heads, q, k)
    assert weights.shape == (4, 3, 64, 64)
    torch.testing.assert_close(weights, viz.as_layers(ours).double(), atol=5e-4 + 1e-9, rtol=0)
    assert page.count('"attn"') == 1  # bertviz alone sends every number twice


@pytest.mark.parametrize("view", [bertviz_views.head_view, bertviz_views.model_view])
def test_views_accept_transformers_outputs_and_agree_with_ours(run64, view):
    _, labels, ours, theirs = run64
    assert report_parity("attention maps", ours.attentions, theirs.attentions, atol=1e-5)
    from_ours = page_params(view(ours, labels).data)["attention"]
    from_theirs = page_params(view(theirs.attentions, labels).data)["attention"]
    stacked = page_params(view(torch.stack([a[0] for a in theirs.attentions]), labels).data)["attention"]
    assert from_ours == from_theirs == stacked


def test_payload_of_a_64_token_prompt_stays_small(run64):
    _, labels, ours, _ = run64
    from bertviz import head_view as bertviz_head_view

    plain = bertviz_head_view(ours.attentions, labels, html_action="return").data
    for view in (bertviz_views.head_view, bertviz_views.model_view):
        page = view(ours, labels).data
        assert len(page) < 250_000, len(page)  # 4 layers x 3 heads x 64 x 64 weights
        assert len(page) < len(plain) / 5
        assert len(view(ours, labels, offline=True).data) < len(page) + 400_000  # + the three inlined scripts


def test_offline_page_inlines_the_libraries_and_fetches_nothing(run64):
    _, labels, ours, _ = run64
    online = bertviz_views.head_view(ours, labels).data
    assert "cdnjs.cloudflare.com" in online  # the default page loads its scripts from a CDN
    for view in (bertviz_views.head_view, bertviz_views.model_view):
        page = view(ours, labels, offline=True).data
        assert not re.search(r"<script[^>]*\bsrc=", page)
        assert not re.search(r"cdnjs|jsdelivr|unpkg|googleapis|require\.config", page)
        assert not re.search(r"""["'](https?:)?//[^"']*\.js["']""", page)  # no script URL anywhere
        for name in ("require.min.js", "d3.min.js", "jquery.min.js"):
            assert (bertviz_views.VENDOR / name).read_text(encoding="utf-8") in page
        assert 'define("d3"' in page and 'define("jquery"' in page
        assert page_params(page)["attention"][0]["left_text"] == labels


def test_vendored_scripts_have_their_licences():
    for name, licence in [
        ("require.min.js", "LICENSE-requirejs.txt"),
        ("d3.min.js", "LICENSE-d3.txt"),
        ("jquery.min.js", "LICENSE-jquery.txt"),
    ]:
        assert (bertviz_views.VENDOR / name).stat().st_size > 10_000
        assert "Copyright" in (bertviz_views.VENDOR / licence).read_text(encoding="utf-8")


def test_big_models_show_one_layer_unless_asked(run64):
    assert bertviz_views.default_layers(4) == [0, 1, 2, 3]
    assert bertviz_views.default_layers(28) == [0] and bertviz_views.default_layers(28, layer=20) == [20]
    _, labels, ours, _ = run64
    page = bertviz_views.head_view(ours, labels, layer=2, include_layers=[2, 3]).data
    assert page_params(page)["include_layers"] == [2, 3]
    assert torch.tensor(page_params(page)["attention"][0]["attn"]).shape == (2, 3, 64, 64)


def test_a_changed_bertviz_page_is_an_error_not_a_silent_cdn_load():
    with pytest.raises(RuntimeError, match="changed shape"):
        bertviz_views.inline_scripts("<div>no bertviz here</div>")


# ---- distributions and rotary -----------------------------------------------------------------------------
def test_model_view_scales_to_its_cell_and_says_how_to_go_offline(run64):
    _, labels, ours, _ = run64
    page = bertviz_views.model_view(ours, labels).data
    assert 'attr("viewBox", `0 0 ${DIV_WIDTH} ${config.divHeight}`)' in page and '"width", "100%"' in page
    assert 'attr("width", DIV_WIDTH)' not in page  # bertviz's fixed 970 px is gone (the browser test measures it)
    assert "OFFLINE = True" in page  # the warning names the notebook's switch
    with pytest.raises(RuntimeError, match="changed shape"):
        bertviz_views.fit_width("<div>no bertviz here</div>")


def test_plot_distribution_shows_the_top_k_and_highlights_the_nucleus(tiny):
    model, tok = tiny
    ids = tok("import os\nimport", return_tensors="pt").input_ids
    with torch.no_grad():
        probs = torch.softmax(model(ids).logits[0, -1], dim=-1)
    top = torch.topk(probs, 10)
    p = top.values[:3].sum().item() - 1e-4  # a nucleus of 3 tokens
    kept = torch.isfinite(gt.generation.sampling.top_p_filter(torch.log(probs), p))
    ax = viz.plot_distribution(probs, tok, k=10, highlight=kept)
    bars = ax.patches
    assert [b.get_width() for b in bars] == pytest.approx(top.values.tolist())
    assert [t.get_text() for t in ax.get_yticklabels()] == viz.token_labels(tok, top.indices)
    strong = [b.get_facecolor() == matplotlib.colors.to_rgba("tab:blue") for b in bars]
    assert strong == kept[top.indices].tolist() == [True] * 3 + [False] * 7
    plt.close("all")


def test_plot_sinusoids_is_transformers_table(tiny):
    ax = viz.plot_sinusoids(32, 16)
    table = torch.as_tensor(ax.get_images()[0].get_array().data)
    torch.testing.assert_close(table, create_sinusoidal_positions(32, 16).float())
    plt.close("all")
