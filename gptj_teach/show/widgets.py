"""An interactive sampler: sliders for temperature, top-k and top-p over a live chart of the next token.

What the sliders do to the picture (the bars are the top 15 tokens of the model, best first):

- **temperature** ``T`` divides the logits before the softmax. Lower it and the tall bar grows while the others
  shrink (the distribution sharpens, the entropy falls; as ``T -> 0`` it becomes greedy decoding). Raise it and
  the bars level out (the entropy rises). The *order* of the bars never changes.
- **top-k** keeps only the ``k`` tallest bars (0 = off).
- **top-p** keeps the fewest tallest bars whose probabilities add up to ``p`` (the *nucleus*). The kept bars are
  blue and renormalised to sum to 1; the cut ones turn grey (drawn at the probability they had before the cut)
  and will never be drawn. A confident model keeps a small nucleus, an unsure one a large one.

The model runs once per prompt; moving a slider only reshapes the cached logits with
``gt.generation.sampling.logits_to_probs``, so the chart follows the slider without waiting for the model.

References: Holtzman et al. (2020) "The Curious Case of Neural Text Degeneration"; ipywidgets documentation.
"""

import dataclasses
import html

import ipywidgets as widgets
import torch

from ..checks import check_tokenizer, check_whole
from ..errors import GPTJTeachError, InputTypeError
from ..generation.loop import check_generation, stream
from ..generation.sampling import SamplingSettings, logits_to_probs
from .viz import html_bars, token_labels

SHOWN = 15  # bars in the chart
BAR_PX = 300  # width of a bar of probability 1
CHART_PX = 480  # the right-hand column: fixed, so that the chart never moves sideways while the numbers change
# What a notebook opened without its kernel shows instead: the widget's repr, which ipywidgets 7 and 8 both put in
# the output's text/plain (cut at 110 characters: this fits).
NOT_RUNNING = "[the sampler: run this cell to show it; its sliders need a running kernel, which a saved notebook lacks]"
# A slider's hover text: ``tooltip`` from ipywidgets 8, ``description_tooltip`` in 7 (Colab's 7.7.1 has no other).
TOOLTIP = "tooltip" if "tooltip" in widgets.IntSlider.class_trait_names() else "description_tooltip"
KEPT, CUT = "#1f77b4", "#d0d0d0"  # the nucleus (tokens that can be drawn) and the tokens cut by top-k / top-p


def bar_chart(labels, heights, kept) -> str:
    """HTML bars (plain divs, so a redraw is a string and fast): one row per token, width = probability."""
    texts = [f"{height:.3f}" if keep else "cut" for height, keep in zip(heights, kept)]
    return html_bars(labels, [height * BAR_PX for height in heights], [KEPT if k else CUT for k in kept], texts)


class Sampler(widgets.VBox):
    """Prompt, sliders, live next-token chart with its numbers, and a Generate button that streams text.

    Attributes for code and tests: the widgets ``prompt, temperature, top_p, top_k, max_new_tokens, seed``;
    ``logits`` (vocab,) cached for the prompt; ``probs`` (vocab,) the drawn distribution after temperature ->
    top-k -> top-p; ``stats`` (entropy in nats, nucleus size, top token probability); ``model_calls`` (forward
    passes made for the chart); ``text`` (the last generated continuation).
    """

    def __init__(self, model, tok, prompt="def fib(n):", max_new_tokens=40, seed=0):
        self.lm, self.tok, self.model_calls, self.text = model, tok, 0, ""
        style, wide = {"description_width": "90px"}, widgets.Layout(width="330px")  # 330 + CHART_PX fit 828 px
        self.prompt = widgets.Textarea(
            prompt,
            description="prompt",
            continuous_update=False,
            style=style,
            layout=widgets.Layout(width="640px", height="70px"),
        )
        self.temperature = widgets.FloatSlider(
            1.0, min=0.05, max=2.0, step=0.05, description="temperature", style=style, layout=wide
        )
        self.top_p = widgets.FloatSlider(
            1.0, min=0.05, max=1.0, step=0.05, description="top-p", style=style, layout=wide
        )
        self.top_k = widgets.IntSlider(
            0, min=0, max=100, description="top-k", style=style, layout=wide, **{TOOLTIP: "0 = off: keep all tokens"}
        )
        self.max_new_tokens = widgets.IntSlider(
            max_new_tokens, min=1, max=max(200, max_new_tokens), description="new tokens", style=style, layout=wide
        )
        self.seed = widgets.IntText(seed, description="seed", style=style, layout=widgets.Layout(width="200px"))
        self.stats_html = widgets.HTML().add_class("gptj-sampler-stats")
        self.chart = widgets.HTML().add_class("gptj-sampler-chart")
        legend = widgets.HTML(
            '<div style="font-size:11px;line-height:14px">blue: kept (the nucleus), renormalised '
            "to sum to 1<br>grey: cut by top-k / top-p (drawn at its probability before the cut)"
            "<br>top-k 0 = off; entropy in nats (natural log); the nucleus counts the tokens "
            "with p &gt; 0<br>(at a low temperature most tokens' p rounds to exactly 0 in fp32, "
            "even with top-p 1)</div>"
        )
        self.button = widgets.Button(description="Generate", button_style="primary")
        self.output = widgets.HTML().add_class("gptj-sampler-text")
        controls = widgets.VBox([self.temperature, self.top_p, self.top_k, self.max_new_tokens, self.seed])
        right = widgets.VBox(
            [self.stats_html, self.chart, legend],
            layout=widgets.Layout(width=f"{CHART_PX}px", min_width=f"{CHART_PX}px"),
        )
        super().__init__([self.prompt, widgets.HBox([controls, right]), self.button, self.output])
        self.prompt.observe(self.read_prompt, names="value")
        for slider in (self.temperature, self.top_p, self.top_k):
            slider.observe(self.update, names="value")
        self.button.on_click(self.generate)
        self.read_prompt()

    @torch.inference_mode()
    def read_prompt(self, change=None):
        """One forward pass: cache the last position's logits (vocab,) and the ids of the top tokens."""
        ids = self.tok(self.prompt.value, return_tensors="pt").input_ids[:, -self.lm.config.n_positions :]
        if ids.shape[1] == 0:
            self.logits, self.stats_html.value, self.chart.value = None, "type a prompt", ""
            return
        self.logits = self.lm(ids.to(self.lm.device)).logits[0, -1].float()  # (vocab,)
        self.model_calls += 1
        self.top_ids = self.logits.topk(SHOWN).indices.tolist()  # the order never changes with the sliders
        self.labels = token_labels(self.tok, self.top_ids)  # visible spaces: ' return' -> '·return'
        self.update()

    def update(self, change=None):
        """Reshape the cached logits with the current sliders and redraw the chart and the numbers."""
        if self.logits is None:  # no prompt yet
            return
        s = self.settings()  # temperature -> top-k -> top-p -> softmax
        self.probs = logits_to_probs(self.logits, s.temperature, s.top_k, s.top_p)  # (vocab,)
        before_cut = torch.softmax(self.logits / s.temperature, dim=-1)[self.top_ids]  # (SHOWN,) after temperature only
        after_cut = self.probs[self.top_ids]  # (SHOWN,)
        kept = (after_cut > 0).tolist()
        heights = torch.where(after_cut > 0, after_cut, before_cut).tolist()
        self.stats = {
            "entropy_nats": torch.special.entr(self.probs).sum().item(),
            "nucleus_size": int((self.probs > 0).sum()),
            "top_prob": self.probs.max().item(),
        }
        self.stats_html.value = (  # two short lines that never wrap, figures in fixed-width digits
            '<div style="white-space:nowrap;font-variant-numeric:tabular-nums">'
            f"entropy <b>{self.stats['entropy_nats']:.3f}</b> nats &nbsp;·&nbsp; "
            f"top token p = <b>{self.stats['top_prob']:.3f}</b><br>"
            f"nucleus <b>{self.stats['nucleus_size']}</b> of {len(self.probs)} tokens</div>"
        )
        self.chart.value = bar_chart(self.labels, heights, kept)

    def settings(self) -> SamplingSettings:
        """The sliders as one ``SamplingSettings``: what the chart shows is what Generate draws from."""
        return SamplingSettings(True, self.temperature.value, self.top_k.value, self.top_p.value)

    def __repr__(self):
        """In place of ``Sampler(children=...)``, a sentence for a saved notebook (a live page shows the widget).

        ipywidgets 8 displays a widget through ``_repr_mimebundle_``, ipywidgets 7 (Colab) through
        ``_ipython_display_``; both take the output's text/plain from ``repr``, so this one method serves both.
        """
        return NOT_RUNNING

    def generate(self, button=None):
        """What the Generate button does: seed, then stream the continuation into the text area."""
        self.text, self.button.disabled = "", True
        try:
            for piece in stream(
                self.lm,
                self.tok,
                self.prompt.value,
                self.max_new_tokens.value,
                seed=self.seed.value,
                **dataclasses.asdict(self.settings()),
            ):
                self.text += piece
                self.show_text()
        except GPTJTeachError as error:  # an empty or too long prompt, a bad seed: say so where the text would go
            self.output.value = f"<pre>{html.escape(str(error))}</pre>"
        finally:
            self.button.disabled = False
        return self.text

    def show_text(self):
        """The prompt in grey, the continuation in bold, as it arrives."""
        self.output.value = (
            f'<pre style="white-space:pre-wrap"><span style="color:#888">'
            f"{html.escape(self.prompt.value)}</span><b>{html.escape(self.text)}</b></pre>"
        )


def sampler(model, tok, prompt="def fib(n):", max_new_tokens=40, seed=0) -> Sampler:
    """``w = sampler(model, tok, "def fib(n):")``; display ``w`` in a notebook and move the sliders."""
    check_generation(model, None)
    check_tokenizer(tok)
    if not isinstance(prompt, str):
        raise InputTypeError(f"prompt must be a str, got {type(prompt).__name__}")
    max_new_tokens = check_whole(max_new_tokens, "max_new_tokens", 1, model.config.n_positions)
    return Sampler(model, tok, prompt, max_new_tokens, check_whole(seed, "seed", 0, 2**31 - 1))
