"""A widget to explore the activation cache: pick a layer, a head and a token, and see

* the **attention row**: how much that token (the query) takes from each token it can see, and
* what the head **writes**: its output at that token, ``z_h @ W_O_h^T``, read through ``ln_f`` (scale frozen at
  the real run's) and the unembedding, as the tokens whose logits it pushes up most, and down most.

The model runs once per prompt (``run_with_cache``); the sliders only index the cache. A previous-token head
shows a row with one tall bar just left of the query; an induction head, on a repeated text, a tall bar on the
token after the earlier copy of the query, and that token at the top of its list.

References: Elhage et al. (2021), the direct path through the unembedding; ``circuits.dla_term``.
"""

import html

import ipywidgets as widgets
import torch

from ..checks import check_causal_lm, check_tokenizer
from ..errors import InputTypeError
from ..interpret.activations import run_with_cache
from ..interpret.circuits import dla_term, frozen_scale, head_outputs
from .viz import html_bars, token_labels

SHOWN = 8  # tokens listed each way
BAR_PX = 200  # width of the longest bar


def bars(labels, values, fmt="{:.3f}") -> str:
    """HTML rows: label, a bar as long as |value| relative to the largest (orange when negative), the value."""
    top = max((abs(v) for v in values), default=1.0) or 1.0
    colours = ["#1f77b4" if v >= 0 else "#ff7f0e" for v in values]
    return html_bars(labels, [abs(v) / top * BAR_PX for v in values], colours, [fmt.format(v) for v in values])


class CacheExplorer(widgets.VBox):
    """Prompt, three sliders (layer, head, token), the attention row and the head's top tokens.

    For code and tests: ``cache`` (from ``run_with_cache``), ``tokens`` (labels), ``row`` (the attention row,
    (token + 1,)), ``effect`` (vocab,), the head's direct effect on every logit, ``pushed`` (the ids it raises
    most, best first).
    """

    def __init__(self, model, tok, prompt):
        self.lm, self.tok = model, tok
        style = {"description_width": "60px"}
        self.prompt = widgets.Textarea(
            prompt,
            description="prompt",
            continuous_update=False,
            style=style,
            layout=widgets.Layout(width="640px", height="60px"),
        )
        self.layer = widgets.IntSlider(0, 0, model.config.n_layer - 1, description="layer", style=style)
        self.head = widgets.IntSlider(0, 0, model.config.n_head - 1, description="head", style=style)
        self.token = widgets.IntSlider(0, 0, 0, description="token", style=style)
        self.query = widgets.HTML()
        self.row_html, self.top_html = widgets.HTML(), widgets.HTML()
        titles = [
            widgets.HTML("<b>attention row</b> (query → each key)"),
            widgets.HTML("<b>what the head writes</b>: logit effect through ln_f (scale frozen) and W_U"),
        ]
        super().__init__(
            [
                self.prompt,
                widgets.HBox([self.layer, self.head, self.token]),
                self.query,
                widgets.HBox([widgets.VBox([titles[0], self.row_html]), widgets.VBox([titles[1], self.top_html])]),
            ]
        )
        self.prompt.observe(self.read_prompt, names="value")
        for slider in (self.layer, self.head, self.token):
            slider.observe(self.update, names="value")
        self.read_prompt()

    @torch.inference_mode()
    def read_prompt(self, change=None):
        """One forward pass on the first n_positions tokens of the prompt; the token slider spans them."""
        ids = self.tok(self.prompt.value or " ", return_tensors="pt").input_ids[:, : self.lm.config.n_positions]
        _, self.cache = run_with_cache(self.lm, ids.to(self.lm.device))
        self.tokens = token_labels(self.tok, ids[0])
        self.token.max = len(self.tokens) - 1
        self.token.value = len(self.tokens) - 1  # the last token: the one whose next token the model predicts
        self.update()

    @torch.inference_mode()
    def update(self, change=None):
        """Read the chosen layer, head and token out of the cache and redraw."""
        layer, head, t = self.layer.value, self.head.value, self.token.value
        self.row = self.cache[f"h.{layer}.attn.pattern"][0, head, t, : t + 1].float()  # (t + 1,) keys 0..t
        out = head_outputs(self.lm, self.cache, layer)[0, t, head]  # (n_embd,) what the head adds at t
        resid = self.cache[f"h.{self.lm.config.n_layer - 1}.resid_post"][0, t]  # (n_embd,)
        ln_f = self.lm.transformer.ln_f
        scale = frozen_scale(resid, ln_f).to(out.dtype)  # (1,): frozen, as in the real run
        self.effect = dla_term(out, scale, ln_f.weight, self.lm.lm_head.weight.T).float()  # (vocab,)
        self.pushed = self.effect.topk(SHOWN).indices.tolist()
        down = (-self.effect).topk(SHOWN).indices.tolist()
        self.query.value = f"query token {t}: <code>{html.escape(self.tokens[t])}</code>"
        self.row_html.value = bars([f"{j} {s}" for j, s in enumerate(self.tokens[: t + 1])], self.row.tolist())
        ids = self.pushed + down[::-1]
        self.top_html.value = bars(token_labels(self.tok, ids), self.effect[ids].tolist(), "{:+.2f}")


def explore(model, tok, prompt="for line in lines:\n    print(line)\nfor line in lines:\n    print(") -> CacheExplorer:
    """``w = explore(model, tok, "some text")``; display ``w`` in a notebook and move the sliders."""
    check_causal_lm(model)
    check_tokenizer(tok)
    if not isinstance(prompt, str):
        raise InputTypeError(f"prompt must be a str, got {type(prompt).__name__}")
    return CacheExplorer(model, tok, prompt)
