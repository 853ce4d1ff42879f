"""Pictures of what GPT-J reads and where it looks: tokens, attention maps, next-token bars, rotary tables.

* ``tokens_html`` colours each token of a text, so you see where byte-level BPE cuts (a space shows as ``·``);
* ``attention_heatmap`` / ``attention_grid`` draw the weights ``softmax(q k^T / sqrt(d))``: row = the query
  token, column = the key token it looks at; causal masking leaves the upper triangle empty;
* ``plot_distribution`` shows the most likely next tokens; ``plot_sinusoids`` the rotary sin / cos table.

bertviz's interactive views live in ``bertviz_views.py``.

References: Olsson et al., "In-context Learning and Induction Heads" (2022) for previous-token heads.
"""

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from transformers import PreTrainedTokenizerBase

from ..checks import check_labels, check_maps, check_tensor, check_tokenizer, check_whole, describe
from ..errors import InputError, InputTypeError
from ..gptj.rotary import fixed_pos_embedding
from ..gptj.tokenizer import bytes_to_unicode

if TYPE_CHECKING:  # IPython is imported when a notebook displays something, not before
    from IPython.display import HTML

PASTELS = ["#ffd6a5", "#caffbf", "#9bf6ff", "#bdb2ff", "#ffc6ff", "#fdffb6", "#a0c4ff", "#ffadad"]
VISIBLE = {" ": "·", "\n": "↵", "\t": "→"}


# ---- tokens -------------------------------------------------------------------------------------------
def token_text(tok: PreTrainedTokenizerBase, token_id: int) -> str:
    """The text of one token. A token holding part of a multi-byte character shows its bytes (``\\xf0\\x9f``).

    GPT-2's BPE works on UTF-8 *bytes*, so an emoji (4 bytes) may be cut across tokens; ``tok.decode([id])``
    would print ``�`` for each piece, and we would lose what the model really sees.
    """
    check_tokenizer(tok)
    token_id = check_whole(token_id, "token id", 0, len(tok) - 1)
    symbols = tok.convert_ids_to_tokens(token_id)  # printable stand-ins, one per byte: ' ' is 'Ġ'
    to_byte = {char: byte for byte, char in bytes_to_unicode().items()}
    if not all(char in to_byte for char in symbols):
        return tok.decode([int(token_id)])  # an added token spelt outside the 256-symbol byte alphabet
    return bytes(to_byte[char] for char in symbols).decode("utf-8", errors="backslashreplace")


def visible(text: str) -> str:
    """Make whitespace visible: space -> ``·``, newline -> ``↵``, tab -> ``→``."""
    return "".join(VISIBLE.get(char, char) for char in text)


def token_labels(tok: PreTrainedTokenizerBase, ids: torch.Tensor | Sequence[int]) -> list[str]:
    """One readable label per token id (visible whitespace), for plot axes and bertviz views."""
    ids = ids.flatten().tolist() if isinstance(ids, torch.Tensor) else ids
    if not isinstance(ids, (list, tuple)):
        raise InputTypeError(f"ids must be a tensor or a list of token ids, got {describe(ids)}")
    return [visible(token_text(tok, i)) for i in ids]


def tokens_html(tok: PreTrainedTokenizerBase, text: str) -> str:
    """HTML showing each token of ``text`` as a coloured span; hover a token to see its id."""
    check_tokenizer(tok)
    if not isinstance(text, str):
        raise InputTypeError(f"text must be a str, got {describe(text)}")
    spans = []
    for n, token_id in enumerate(tok(text).input_ids):
        label = html.escape(visible(token_text(tok, token_id)))
        label = label.replace("↵", "↵\n")  # show the arrow, then really break the line
        spans.append(
            f'<span style="background:{PASTELS[n % len(PASTELS)]};border-radius:3px" title="{token_id}">{label}</span>'
        )
    return '<div style="font-family:monospace;white-space:pre-wrap;line-height:1.8">' + "".join(spans) + "</div>"


def show_tokens(tok: PreTrainedTokenizerBase, text: str) -> "HTML":
    """``tokens_html`` as an object that a notebook displays."""
    from IPython.display import HTML

    return HTML(tokens_html(tok, text))


# ---- attention with matplotlib ------------------------------------------------------------------------
def as_layers(attentions: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """Any of our attention formats -> one tensor (layers, heads, query, key) for the first sequence.

    Accepts a model output (``out.attentions`` is used), a tuple / list with one (batch, heads, q, k) tensor
    per layer (ours and ``transformers`` alike), or an already stacked (layers, heads, q, k) tensor.
    """
    attentions = getattr(attentions, "attentions", attentions)
    if attentions is None:
        raise InputError("there are no attention weights: run the model with output_attentions=True")
    if isinstance(attentions, torch.Tensor):
        maps = check_maps(attentions, "attentions", 4)  # (layers, heads, q, k) already
    elif isinstance(attentions, (list, tuple)) and attentions:
        layers = [check_maps(a, f"attentions[{i}]", 4) for i, a in enumerate(attentions)]
        if len({a.shape[1:] for a in layers}) > 1:
            raise InputError("every layer's attention must have the same shape (batch, heads, query, key)")
        maps = torch.stack([layer[0] for layer in layers])  # (layers, heads, q, k)
    else:
        raise InputTypeError(
            f"attentions must be out.attentions (one (batch, heads, query, key) tensor per layer) or "
            f"the output itself, got {describe(attentions)}"
        )
    return maps.detach().float().cpu()


def attention_heatmap(
    attn: torch.Tensor, tokens: Sequence[str], ax: Axes | None = None, title: str | None = None, colorbar: bool = True
) -> Axes:
    """Draw one attention map: row i = query token i, column j = how much it looks at token j (0 to 1, with a
    colour bar unless ``colorbar=False``). Returns the axes; ``ax.images[0]`` is the picture."""
    attn = check_maps(attn, "attn", 2).detach().float().cpu()  # (query, key)
    tokens = check_labels(tokens, attn)
    ax = ax or plt.subplots(figsize=(5.5, 5))[1]
    image = ax.imshow(attn.numpy(), cmap="viridis", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(attn.shape[1]), tokens[-attn.shape[1] :], rotation=90, fontsize=9, family="monospace")
    ax.set_yticks(range(attn.shape[0]), tokens[-attn.shape[0] :], fontsize=9, family="monospace")
    ax.set(xlabel="key (looked at)", ylabel="query (looking)")
    ax.set_title(title or "", fontsize=9)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.03, label="attention weight")
    return ax


def attention_grid(
    attentions: torch.Tensor | Sequence[torch.Tensor], tokens: Sequence[str], layer: int | None = None
) -> Figure:
    """All heads of one ``layer`` in a row, or (layer=None) a grid of layers x heads, with one colour bar.
    Returns the figure."""
    maps = as_layers(attentions)  # (layers, heads, q, k)
    tokens = check_labels(tokens, maps)
    layers = range(len(maps)) if layer is None else [check_whole(layer, "layer", 0, len(maps) - 1)]
    n_heads = maps.shape[1]
    fig, axes = plt.subplots(
        len(layers), n_heads, figsize=(2.7 * n_heads + 1, 2.7 * len(layers)), squeeze=False, layout="constrained"
    )
    for row, layer_index in enumerate(layers):
        for h in range(n_heads):
            ax = attention_heatmap(
                maps[layer_index, h], tokens, ax=axes[row, h], title=f"layer {layer_index}, head {h}", colorbar=False
            )
            ax.set(xlabel="", ylabel="")
            ax.tick_params(labelsize=7)
            if h:
                ax.set_yticks([])  # token labels on the left column and the bottom row only
            if row < len(layers) - 1:
                ax.set_xticks([])
    fig.colorbar(axes[0, 0].images[0], ax=axes, shrink=0.5, label="attention weight")
    return fig


# ---- next-token distribution and rotary -------------------------------------------------------------------
def plot_distribution(
    probs: torch.Tensor,
    tok: PreTrainedTokenizerBase,
    k: int = 20,
    ax: Axes | None = None,
    highlight: torch.Tensor | None = None,
) -> Axes:
    """Horizontal bars of the ``k`` most likely next tokens, most likely on top.

    probs: (vocab,) probabilities. highlight: optional (vocab,) bool mask (e.g. the top-p nucleus); those bars
    are drawn in a strong colour, the others grey.
    """
    probs = check_tensor(probs, "probs", None, "float").detach().float().cpu().flatten()
    top = torch.topk(probs, check_whole(k, "k", 1, len(probs)))
    if highlight is not None and (check_tensor(highlight, "highlight", None, "mask").numel() != len(probs)):
        raise InputError(f"highlight must hold one True/False per probability ({len(probs)}), got {highlight.numel()}")
    marked = [True] * k if highlight is None else highlight.flatten()[top.indices].bool().tolist()
    ax = ax or plt.subplots(figsize=(6, 0.25 * k + 1))[1]
    ax.barh(range(k), top.values.numpy(), color=["tab:blue" if m else "lightgrey" for m in marked])
    ax.set_yticks(range(k), token_labels(tok, top.indices), fontsize=8, family="monospace")
    ax.invert_yaxis()  # the most likely token on top
    ax.set_xlabel("probability")
    return ax


def html_bars(labels: Sequence[str], widths: Sequence[float], colours: Sequence[str], texts: Sequence[str]) -> str:
    """Horizontal bars in HTML, one row per label: the label, a bar ``width`` pixels long in its colour, a text.

    Plain divs, so a redraw is one string and fast enough to follow a slider: the sampler's chart
    (``widgets.bar_chart``) and the cache explorer's rows (``explorer.bars``) are both drawn with it.
    """
    rows = [
        f'<div style="display:flex;align-items:center;height:18px">'
        f'<span style="width:9em;text-align:right;white-space:pre;overflow:hidden;padding-right:6px">'
        f'{html.escape(label)}</span><span class="gptj-bar" style="display:inline-block;height:14px;'
        f'width:{width:.1f}px;background:{colour}"></span><span style="padding-left:6px">{text}</span></div>'
        for label, width, colour, text in zip(labels, widths, colours, texts)
    ]
    return '<div style="font-family:monospace;font-size:12px;line-height:18px">' + "".join(rows) + "</div>"


def plot_sinusoids(n_positions: int, rotary_dim: int, ax: Axes | None = None) -> Axes:
    """The rotary table ``fixed_pos_embedding``: sin then cos of ``position * frequency`` for each pair.

    Left columns turn fast (pair 0 makes a full turn every ~6 positions), right columns slowly.
    """
    n_positions = check_whole(n_positions, "n_positions", 1)
    if check_whole(rotary_dim, "rotary_dim", 2) % 2:
        raise InputError(f"rotary_dim must be even (rotary turns pairs of dimensions), got {rotary_dim}")
    sin, cos = fixed_pos_embedding(torch.arange(n_positions)[None], rotary_dim)  # (1, n, rotary_dim // 2) each
    table = torch.cat([sin[0], cos[0]], dim=-1)  # (n, rotary_dim): sin of every pair, then cos
    ax = ax or plt.subplots(figsize=(6, 4))[1]
    image = ax.imshow(table.numpy(), cmap="RdBu", vmin=-1, vmax=1, aspect="auto", interpolation="nearest")
    ax.axvline(rotary_dim // 2 - 0.5, color="black", linewidth=1)
    ax.set_xlabel(f"pair i: sin (0..{rotary_dim // 2 - 1}) | cos (0..{rotary_dim // 2 - 1})")
    ax.set_ylabel("position")
    ax.figure.colorbar(image, ax=ax)
    return ax
