"""The cache explorer widget on the tiny model, without a browser: what its sliders read out of the cache."""

import pytest
import torch

import gptj_teach as gt
from gptj_teach.interpret import circuits
from gptj_teach.interpret.activations import run_with_cache

PROMPT = "for line in lines:\n    print(line)\nfor line in lines:\n    print("


def test_the_sliders_read_the_row_and_the_head_effect(tiny):
    model, tok = tiny
    w = gt.show.explorer.explore(model, tok, PROMPT)
    ids = tok(PROMPT, return_tensors="pt").input_ids
    assert w.token.max == ids.shape[1] - 1 and w.token.value == w.token.max and len(w.tokens) == ids.shape[1]
    with torch.no_grad():
        out = model(ids, output_attentions=True)
        _, cache = run_with_cache(model, ids)
    w.layer.value, w.head.value, w.token.value = 1, 1, 9
    assert torch.equal(w.row, out.attentions[1][0, 1, 9, :10])  # the row: the same forward's attention weights
    right, wrong = w.pushed[0], w.pushed[-1]  # the head's effect on a logit difference is its DLA share at token 9
    labels, values = circuits.direct_logit_attribution(model, cache, right, wrong, pos=9)
    assert w.effect[right] - w.effect[wrong] == pytest.approx(values[labels.index("L1H1"), 0].item(), abs=1e-4)
    assert w.effect[right] == w.effect.max() and "·print" in w.query.value


def test_a_new_prompt_reruns_the_model_and_resets_the_token(tiny):
    model, tok = tiny
    w = gt.show.explorer.explore(model, tok, PROMPT)
    w.prompt.value = "import os"
    assert w.tokens == ["import", "·os"] and w.token.max == 1 and w.token.value == 1 and w.row.shape == (2,)
    w.prompt.value = ""  # an empty prompt still shows something (a space), never crashes
    assert w.token.max == 0


def test_wrong_arguments_are_refused(tiny):
    model, tok = tiny
    with pytest.raises(gt.InputTypeError, match="GPTJForCausalLM"):
        gt.show.explorer.explore(model.transformer, tok)
    with pytest.raises(gt.InputTypeError, match="prompt must be a str"):
        gt.show.explorer.explore(model, tok, prompt=42)
