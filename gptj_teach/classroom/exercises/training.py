"""Notebook 10, Train your own: the checks of its "your turn" cells."""

import math
import numbers

import torch

from ...gptj import tokenizer
from .grading import _check_number, _first_failure, _verdict


def _reference_next_token_loss(logits, ids):
    """transformers' rule: the logits at position t are scored against the token at t + 1."""
    vocab = logits.shape[-1]
    return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, vocab).float(), ids[:, 1:].reshape(-1))


def check_next_token_loss(fn) -> bool:
    """Notebook 10: fn(logits (batch, seq, vocab), ids (batch, seq)) -> the mean next-token cross-entropy."""
    g = torch.Generator().manual_seed(0)
    cases = [(torch.randn(2, 6, 11, generator=g), torch.randint(0, 11, (2, 6), generator=g)),
             (3 * torch.randn(1, 9, 50, generator=g), torch.randint(0, 50, (1, 9), generator=g)),
             (torch.randn(4, 2, 7, generator=g), torch.randint(0, 7, (4, 2), generator=g))]

    def diagnose(got, expected, args):
        logits, ids = args
        vocab = logits.shape[-1]
        if not isinstance(got, torch.Tensor) or got.numel() != 1:
            return "return the loss as a single number (a 0-dim tensor): the mean over every predicted position"
        unshifted = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), ids.reshape(-1))
        backwards = torch.nn.functional.cross_entropy(logits[:, 1:].reshape(-1, vocab), ids[:, :-1].reshape(-1))
        if torch.allclose(got, unshifted):
            return "you scored position t against token t: the model at t predicts token t + 1 (shift by one)"
        if torch.allclose(got, backwards):
            return "shifted the wrong way: drop the LAST position of the logits and the FIRST token of ids"
        if torch.allclose(got, expected * ids[:, 1:].numel()):
            return "that is the sum over positions: take the mean"
        return "cross-entropy of logits[:, :-1] against ids[:, 1:], flattened to (positions, vocab) and (positions,)"

    hint = _first_failure(fn, cases, _reference_next_token_loss,
                          lambda got, exp: isinstance(got, torch.Tensor) and got.numel() == 1
                          and torch.allclose(got.detach().float().reshape(()), exp, atol=1e-5), diagnose)
    return _verdict(hint is None, "Every position of every window is a training example: seq predictions per window.",
                    hint)


def check_initial_loss(answer) -> bool:
    """Notebook 10: the loss (nats/token) of a model that gives all 50400 tokens the same probability."""
    vocab = tokenizer.load_tokenizer().__len__()
    right = math.log(vocab)
    mistakes = [(math.log2(vocab), "that is in bits (log base 2): the loss uses the natural log (nats)"),
                (math.log10(vocab), "that is log base 10: the loss uses the natural log"),
                (1 / vocab, "that is the probability of each token: the loss is minus its log")]
    return _check_number(answer, right, "nats", mistakes, "too high: -log(1 / vocab_size)",
                         "too low: the loss is -log of the probability given to the right token, 1 / vocab_size",
                         "An untrained model is as unsure as it can be: the loss starts at ln(vocab) and falls.")


def check_learning_rate(fn) -> bool:
    """Notebook 10: fn(progress, peak, warmup, floor) -> linear warm-up, then cosine from peak to floor x peak."""
    from ...train.loop import learning_rate

    cases = [(p, 1e-3, w, f) for p in (0.0, 0.01, 0.05, 0.1, 0.3, 0.5, 0.8, 1.0) for w, f in ((0.1, 0.1), (0.0, 0.0))]

    def diagnose(got, expected, args):
        progress, peak, warmup, floor = args
        if not isinstance(got, numbers.Real):
            return f"return a number (the learning rate), not a {type(got).__name__}"
        if progress < warmup:
            return f"during the warm-up (progress {progress} < warmup {warmup}) the rate rises in a line from 0"
        if progress >= 1 and math.isclose(got, 0.0, abs_tol=1e-12) and floor > 0:
            return "at the end the rate is floor x peak, not 0: the cosine goes from peak down to the floor"
        return (f"at progress {progress} (warmup {warmup}, floor {floor}) the rate should be {expected:.3g}: cosine "
                "runs over what is left after the warm-up, (progress - warmup) / (1 - warmup)")

    hint = _first_failure(fn, cases, learning_rate, lambda g, e: isinstance(g, numbers.Real)
                          and math.isclose(float(g), e, rel_tol=1e-6, abs_tol=1e-12), diagnose)
    return _verdict(hint is None, "Warm-up protects Adam's first noisy steps; the cosine lets the weights settle.",
                    hint)
