"""Notebook 05b, The heads and the logit lens: the checks of its "your turn" cells."""

import torch

from ...gptj.model import next_token_loss
from .grading import _first_failure, _same_tensor, _shape_hint, _small_model, _verdict


def _reference_last_token_index(input_ids, pad_token_id):
    """The rule of GPTJForSequenceClassification (and transformers'): the rightmost token that is not padding."""
    positions = torch.arange(input_ids.shape[1])  # (seq,)
    return (positions * (input_ids != pad_token_id)).argmax(-1)  # (batch,)


def check_last_token_index(fn) -> bool:
    """Notebook 05b: fn(input_ids (batch, seq), pad_token_id) -> (batch,) index of each row's last non-pad token."""
    eos = 50256
    cases = [
        (torch.tensor([[5, 6, 7, 0, 0], [5, 6, 7, 8, 9]]), 0),
        (torch.tensor([[11, 12, 13, 14, 15, 16]]), eos),
        (torch.tensor([[11, 12, eos, eos], [11, 12, 13, eos], [11, eos, eos, eos]]), eos),
        (torch.tensor([[eos, eos, 11, 12], [11, 12, 13, 14]]), eos),
    ]

    def diagnose(got, expected, args):
        input_ids, pad = args
        if hint := _shape_hint(got, expected):
            return hint
        if got.dtype.is_floating_point or got.dtype.is_complex or got.dtype == torch.bool:
            return f"return integer indices (torch.long), yours are {got.dtype}"
        if (got == input_ids.shape[1] - 1).all():
            return "that is the last position of every row, padding included: find the last token that is not padding"
        if torch.equal(got.long(), (input_ids != pad).sum(-1) - 1):
            return (
                "counting the real tokens works for right padding only: with left padding "
                f"({input_ids.tolist()}, pad {pad}) the pads come first"
            )
        return f"for input_ids={input_ids.tolist()}, pad_token_id={pad} your function returned {got.tolist()}"

    def same(got, expected):  # any integer dtype will do for indices
        return _same_tensor(
            got.long()
            if isinstance(got, torch.Tensor) and not got.dtype.is_floating_point and got.dtype != torch.bool
            else got,
            expected,
        )

    hint = _first_failure(fn, cases, _reference_last_token_index, same, diagnose)
    return _verdict(
        hint is None, "A classifier reads the last real token: the only one that has seen the whole text.", hint
    )


def check_lm_loss(fn) -> bool:
    """Notebook 05b: fn(logits (batch, seq, vocab), ids (batch, seq)) -> the mean next-token cross-entropy."""
    g = torch.Generator().manual_seed(0)
    cases = [
        (torch.randn(1, 7, 11, generator=g), torch.randint(0, 11, (1, 7), generator=g)),
        (3 * torch.randn(2, 5, 13, generator=g), torch.randint(0, 13, (2, 5), generator=g)),
    ]

    def diagnose(got, expected, args):
        logits, ids = args
        if not isinstance(got, torch.Tensor) or got.numel() != 1:
            return "return one number (a tensor with one element): the mean over all predicted tokens"
        ce = torch.nn.functional.cross_entropy
        wrong = {
            "the logits at position t predict the token at t + 1: drop the last position's logits and the "
            "first token (logits[:, :-1] against ids[:, 1:])": ce(logits.flatten(0, 1), ids.flatten()),
            "shifted the wrong way: logits[:, :-1] predict ids[:, 1:]": ce(
                logits[:, 1:].flatten(0, 1), ids[:, :-1].flatten()
            ),
            "that is the perplexity exp(loss): return the loss itself": expected.exp(),
            "take the mean over the predicted tokens, not the sum": ce(
                logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten(), reduction="sum"
            ),
        }
        return next(
            (msg for msg, value in wrong.items() if torch.allclose(got.reshape(()).float(), value, rtol=1e-4)),
            f"your loss {got.item():.4f}, the right one {expected.item():.4f}: -log softmax(logits) at the "
            "next token, averaged",
        )

    hint = _first_failure(
        fn,
        cases,
        next_token_loss,
        lambda g, e: (
            isinstance(g, torch.Tensor) and g.numel() == 1 and torch.allclose(g.reshape(()).float(), e, rtol=1e-5)
        ),
        diagnose,
    )
    return _verdict(hint is None, "The loss of every position at once: how a language model is trained.", hint)


def _reference_logit_lens(model, hidden):
    """What the language model does after its last block: the final LayerNorm ln_f, then lm_head (with its bias)."""
    return model.lm_head(model.transformer.ln_f(hidden))


def _last_block_output(model, ids):
    """The residual stream after the last block, before ln_f (hidden_states[-1] is after ln_f): what ln_f reads."""
    seen = []
    handle = model.transformer.ln_f.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    try:
        model(ids)
    finally:
        handle.remove()
    return seen[0]


def check_logit_lens(fn) -> bool:
    """Notebook 05b: fn(model, hidden (batch, seq, n_embd)) -> (batch, seq, vocab), the logits the residual stream
    ``hidden`` would give if the model stopped there: ln_f, then lm_head. On the last block's output they are the
    model's own logits."""
    model, ids_a, ids_b = _small_model()

    def diagnose(got, expected, args):
        model, hidden = args
        if hint := _shape_hint(got, expected):
            return hint + " (one row of vocabulary logits per position)"
        body, lm_head = model.transformer, model.lm_head
        normed = body.ln_f(hidden)
        mistakes = [
            (
                lm_head(hidden),
                "apply the final LayerNorm ln_f first: lm_head was trained on what ln_f gives, "
                "and the raw residual stream has a very different scale",
            ),
            (normed @ lm_head.weight.T, "lm_head has a bias: call the module, model.lm_head(...)"),
            (
                normed @ body.wte.weight.T,
                "GPT-J reads out with its own lm_head, not the embedding matrix wte (GPT-2 ties the two)",
            ),
            (
                body.h[-1].ln_1(hidden) @ lm_head.weight.T + lm_head.bias,
                "use the FINAL LayerNorm, model.transformer.ln_f, not a block's ln_1",
            ),
            (expected.softmax(-1), "return the logits, not probabilities (no softmax)"),
        ]
        return next(
            (hint for wrong, hint in mistakes if torch.allclose(got, wrong, atol=1e-4)),
            "your logits differ: do what the model does after its last block, and nothing else",
        )

    with torch.no_grad():
        hidden = model(ids_a, output_hidden_states=True).hidden_states  # the last one is after ln_f: not a case
        cases = [(model, hidden[0]), (model, hidden[1]), (model, _last_block_output(model, ids_b))]
        hint = _first_failure(fn, cases, _reference_logit_lens, lambda g, e: _same_tensor(g, e, 1e-4), diagnose)
    return _verdict(
        hint is None,
        "The model's own read-out, applied at any depth: a first look at what each layer already knows.",
        hint,
    )
