"""Notebook 10, Train your own: the checks of its "your turn" cells."""

import copy
import math
import numbers

import torch

from ...gptj import tokenizer
from ...gptj.model import cross_entropy, next_token_loss
from .grading import _call, _check_number, _first_failure, _verdict


def check_next_token_loss(fn) -> bool:
    """Notebook 10: fn(logits (batch, seq, vocab), ids (batch, seq)) -> the mean next-token cross-entropy."""
    g = torch.Generator().manual_seed(0)
    cases = [
        (torch.randn(2, 6, 11, generator=g), torch.randint(0, 11, (2, 6), generator=g)),
        (3 * torch.randn(1, 9, 50, generator=g), torch.randint(0, 50, (1, 9), generator=g)),
        (torch.randn(4, 2, 7, generator=g), torch.randint(0, 7, (4, 2), generator=g)),
    ]

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

    hint = _first_failure(
        fn,
        cases,
        next_token_loss,
        lambda got, exp: (
            isinstance(got, torch.Tensor)
            and got.numel() == 1
            and torch.allclose(got.detach().float().reshape(()), exp, atol=1e-5)
        ),
        diagnose,
    )
    return _verdict(
        hint is None, "Every position of every window is a training example: seq predictions per window.", hint
    )


def check_initial_loss(answer) -> bool:
    """Notebook 10: the loss (nats/token) of a model that gives all 50400 tokens the same probability."""
    vocab = tokenizer.load_tokenizer().__len__()
    right = math.log(vocab)
    mistakes = [
        (math.log2(vocab), "that is in bits (log base 2): the loss uses the natural log (nats)"),
        (math.log10(vocab), "that is log base 10: the loss uses the natural log"),
        (1 / vocab, "that is the probability of each token: the loss is minus its log"),
    ]
    return _check_number(
        answer,
        right,
        "nats",
        mistakes,
        "too high: -log(1 / vocab_size)",
        "too low: the loss is -log of the probability given to the right token, 1 / vocab_size",
        "An untrained model is as unsure as it can be: the loss starts at ln(vocab) and falls.",
    )


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
        return (
            f"at progress {progress} (warmup {warmup}, floor {floor}) the rate should be {expected:.3g}: cosine "
            "runs over what is left after the warm-up, (progress - warmup) / (1 - warmup)"
        )

    hint = _first_failure(
        fn,
        cases,
        learning_rate,
        lambda g, e: isinstance(g, numbers.Real) and math.isclose(float(g), e, rel_tol=1e-6, abs_tol=1e-12),
        diagnose,
    )
    return _verdict(
        hint is None, "Warm-up protects Adam's first noisy steps; the cosine lets the weights settle.", hint
    )


def check_random_windows(fn) -> bool:
    """Notebook 10: fn(ids (n,), batch, length, generator) -> (batch, length) windows ``ids[s:s + length]`` at random
    starts ``s`` in [0, n - length], drawn from ``generator`` (the same seed, the same batch)."""
    ids = torch.arange(1000, 1060)  # (60,): a window is consecutive numbers, so its start can be read off it
    got, hint = _windows(fn, ids, 64, 10, 0)
    if hint is None:
        hint = _windows_hint(fn, ids, got, 64, 10)
    if hint is None:  # only 3 places fit: starts must reach the end, and never run past it
        near_end, hint = _windows(fn, ids[:12], 64, 10, 1)
        if hint is None and int(near_end[:, 0].max()) - 1000 < 1:
            hint = "the windows never start near the end of ids: draw starts from 0 up to len(ids) - length"
    return _verdict(
        hint is None, "Random windows from anywhere in the text, reproducible from the seed: nanoGPT's get_batch.", hint
    )


def _windows(fn, ids, batch, length, seed):
    """(fn's windows, None), or (None, a hint) when fn raised or returned something that is not a tensor."""
    if not callable(fn):
        return None, f"pass your function itself, e.g. check(my_fn), not my_fn() (got a {type(fn).__name__})"
    got, hint = _call(fn, (ids.clone(), batch, length, torch.Generator().manual_seed(seed)))
    if hint is not None and ("equal size" in hint or "stack expects" in hint):
        return None, (
            "a start too near the end gives a window shorter than `length`: draw starts from 0 to len(ids) - length"
        )
    if hint is None and got is None:
        return None, "your function returned None: `return` the (batch, length) tensor of windows"
    if hint is None and not isinstance(got, torch.Tensor):
        return None, f"return a torch.Tensor (torch.stack the windows), not a {type(got).__name__}"
    return got, hint


def _windows_hint(fn, ids, got, batch, length) -> str | None:
    """What is wrong with a batch of windows (None: nothing)."""
    if got.shape != (batch, length):
        extra = " (length = seq + 1: the inputs, and the targets one further)" if got.dim() == 2 else ""
        return f"the result should have shape ({batch}, {length}): one row of `length` tokens per window{extra}"
    starts = got[:, 0] - int(ids[0])
    if not torch.equal(got - got[:, :1], torch.arange(length).expand(batch, length)):
        return "a window is a contiguous slice ids[s:s + length], not tokens picked one by one"
    if starts.min() < 0 or starts.max() > len(ids) - length:
        return "the starts must lie in [0, len(ids) - length]"
    if len(torch.unique(starts)) == 1:
        return "every window starts at the same place: draw one random start per window (batch of them)"
    again, hint = _windows(fn, ids, batch, length, 0)
    if hint is not None or not torch.equal(again, got):
        return hint or (
            "the same seed gave another batch: draw with the generator you are given, "
            "torch.randint(..., generator=generator), so that a run can be repeated"
        )
    other, hint = _windows(fn, ids, batch, length, 1)
    if hint is not None or torch.equal(other, got):
        return hint or "another seed gave the same batch: draw the starts at random, from the generator"
    return None


def _train_step_reference(model, optimizer, x, lr, clip, zero=True, clipped=True, set_lr=True, shifted=True):
    """The right training step, or one with a usual mistake (a flag turned off). Returns the loss."""
    if set_lr:
        for group in optimizer.param_groups:
            group["lr"] = lr
    if zero:
        optimizer.zero_grad(set_to_none=True)
    logits = model(x).logits  # (batch, seq, vocab)
    loss = next_token_loss(logits, x) if shifted else cross_entropy(logits, x)  # unshifted: position t scores token t
    loss.backward()
    if clipped:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    return loss.item()


TRAIN_STEP_MISTAKES = (
    (
        dict(zero=False),
        "the gradients of the step before were added in: zero them (optimizer.zero_grad()) before loss.backward()",
    ),
    (
        dict(clipped=False),
        "clip the gradient norm between backward() and step(): "
        "torch.nn.utils.clip_grad_norm_(model.parameters(), clip)",
    ),
    (
        dict(set_lr=False),
        "the step used the optimizer's own learning rate: set group['lr'] = lr in every "
        "optimizer.param_groups before step()",
    ),
    (dict(shifted=False), "the loss scores position t against token t: use your my_next_token_loss (the shift)"),
)


def _run_steps(step, batches, **mistake):
    """A fresh small model and AdamW (lr 0.5 until the step sets it) through ``step`` on each batch:
    (model, losses) or (None, a hint)."""
    from .grading import _small_model

    model = copy.deepcopy(_small_model()[0]).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.5, weight_decay=0.1)
    losses = []
    for x in batches:
        if step is None:
            losses.append(_train_step_reference(model, optimizer, x.clone(), 1e-2, 0.1, **mistake))
            continue
        loss, hint = _call(step, (model, optimizer, x.clone(), 1e-2, 0.1))
        if hint is not None:
            return None, hint
        if loss is None:
            return None, "your function returned None: `return loss.item()`, the loss of this step's batch"
        losses.append(loss)
    return model, losses


def _same_weights(a, b) -> bool:
    return all(torch.allclose(p, q, atol=1e-5) for p, q in zip(a.parameters(), b.parameters()))


def check_train_step(fn) -> bool:
    """Notebook 10: fn(model, optimizer, x (batch, seq + 1), lr, clip) -> the loss (a number). One step: set the
    learning rate, zero the gradients, forward, the next-token loss, backward, clip the gradient norm, step."""
    g = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, 97, (2, 7), generator=g) for _ in range(2)]
    if not callable(fn):
        return _verdict(
            False, "", f"pass your function itself, e.g. check(my_fn), not my_fn() (got a {type(fn).__name__})"
        )
    with torch.random.fork_rng(devices=[]):
        right, right_losses = _run_steps(None, batches)
        got, losses = _run_steps(fn, batches)
        hint = losses if got is None else None
        if hint is None and not _same_weights(got, right):
            hint = next(
                (
                    msg
                    for mistake, msg in TRAIN_STEP_MISTAKES
                    if _same_weights(got, _run_steps(None, batches, **mistake)[0])
                ),
                "after two steps the weights differ from the right ones: lr, zero_grad, forward, loss, "
                "backward, clip, step",
            )
    if hint is None:
        first = losses[0].item() if isinstance(losses[0], torch.Tensor) and losses[0].numel() == 1 else losses[0]
        if not isinstance(first, numbers.Real) or not math.isclose(first, right_losses[0], rel_tol=1e-4):
            hint = "return the loss of the batch as a number, loss.item()"
    return _verdict(
        hint is None, "That is the whole of training; everything else is choosing the data and the numbers.", hint
    )
