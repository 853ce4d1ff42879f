"""Watching an induction head form: train a 2-layer GPT-J from scratch on random tokens repeated twice.

The first copy of each sequence is pure noise: no model can do better than ``ln(vocab_size)`` there. The second
copy is fully predictable, *if* the model can look back to where the current token appeared before and copy
the token that followed it. An **induction head** does that at any distance; in the textbook circuit (Elhage et
al., 2021) it needs a **previous-token head** in an earlier layer, which writes "the token before me was A" into each
position, so that the induction head can find the position whose previous token is the current one. But this
training data always repeats at the same distance (``n`` tokens from position 0), so a **fixed-offset head** that
attends ``n - 1`` back whatever the tokens solves it as well, and one layer could hold it: the data cannot force
induction. Notebook 11b trains with it, finds layer-1 heads that score ~1 as induction heads on the training
setup, and shows with ``circuits.offset_score`` and ``circuits.induction_score(..., start=...)`` on moved repeats that
they are fixed-offset heads. Olsson et al. (2022) saw induction heads form in a *phase change* in every model of two
or more layers they trained.

``train_induction`` records, every ``every`` steps on a fixed evaluation batch: the loss on the first and
second copy, and the best head's ``circuits.induction_score``.

References: Olsson et al. (2022) "In-context Learning and Induction Heads"; Elhage et al. (2021) "A
Mathematical Framework for Transformer Circuits"; Neel Nanda's TransformerLens induction-head demos.
"""

import time

import torch
from transformers import GPTJConfig

from ..checks import check_config, check_positive, check_whole, describe
from ..errors import InputError, InputTypeError
from .activations import run_with_cache
from .circuits import induction_scores, repeated_tokens, token_losses


def induction_config(vocab_size: int = 256, n: int = 32, n_embd: int = 64, n_head: int = 4) -> GPTJConfig:
    """A 2-layer GPT-J for sequences of ``2 n`` tokens: rotary on whole heads, no dropout."""
    return GPTJConfig(
        vocab_size=vocab_size,
        n_positions=2 * n,
        n_embd=n_embd,
        n_head=n_head,
        n_layer=2,
        rotary_dim=n_embd // n_head,
        attn_pdrop=0.0,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        bos_token_id=0,
        eos_token_id=0,
    )


@torch.no_grad()
def evaluate(model, ids: torch.Tensor, n: int) -> dict:
    """Loss on the first and the second copy of ``ids`` (batch, 2n), and the best head's induction score.

    First copy: predicting tokens 1 .. n-1. Second copy: tokens n+1 .. 2n-1 (token n, the second copy's first,
    cannot be predicted: it is where the repeat starts).
    """
    names = [f"h.{i}.attn.pattern" for i in range(model.config.n_layer)]
    logits, cache = run_with_cache(model, ids, names)
    losses = token_losses(logits, ids)  # (batch, 2n - 1): entry t scores token t + 1
    scores = induction_scores(cache, n)  # (layers, heads)
    best = divmod(scores.argmax().item(), scores.shape[1])  # (layer, head)
    return {
        "first": losses[:, : n - 1].mean().item(),
        "second": losses[:, n:].mean().item(),
        "score": scores.max().item(),
        "head": best,
    }


def train_induction(
    steps: int = 500,
    n: int = 32,
    batch: int = 32,
    lr: float = 1e-3,
    seed: int = 0,
    every: int = 10,
    config: GPTJConfig | None = None,
    callback=None,
):
    """Train ``gt.GPTJForCausalLM(config)`` from ``init_weights`` with AdamW on fresh random repeated sequences.

    Every ``every`` steps, ``evaluate`` on a fixed batch is appended to the history (with ``step`` and
    ``seconds`` since the start) and ``callback(history)`` is called (a live plot, say). Seeded: the weights
    from ``torch.manual_seed(seed)``, the data from its own generators. Returns (model in eval mode, history).
    """
    steps, n, batch = check_whole(steps, "steps", 0), check_whole(n, "n", 2), check_whole(batch, "batch", 1)
    lr, seed, every = check_positive(lr, "lr"), check_whole(seed, "seed", 0), check_whole(every, "every", 1)
    config = check_induction_config(config or induction_config(n=n), n)
    if callback is not None and not callable(callback):
        raise InputTypeError(f"callback must be None or a function of the history, got {describe(callback)}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tensors this small: a second thread only spin-waits (10x slower on a busy CPU)
    try:
        with torch.enable_grad():  # even where a notebook switched autograd off
            return training_run(config, steps, n, batch, lr, seed, every, callback)
    finally:
        torch.set_num_threads(threads)


def check_induction_config(config, n: int):
    """A GPT-J config that reads the 2n tokens of a repeated sequence (n_positions >= 2n)."""
    if not isinstance(config, GPTJConfig):
        raise InputTypeError(
            f"config must be a transformers.GPTJConfig (or None: induction_config(n=n)), got {describe(config)}"
        )
    check_config(config)
    if config.n_positions < 2 * n:
        raise InputError(
            f"config.n_positions ({config.n_positions}) must be at least 2 n = {2 * n}: the model reads "
            "both copies of each sequence"
        )
    return config


def training_run(config, steps, n, batch, lr, seed, every, callback):
    """The loop of ``train_induction``, arguments as there."""
    from ..api import GPTJForCausalLM

    torch.manual_seed(seed)
    model = GPTJForCausalLM(config).init_weights().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    data = torch.Generator().manual_seed(seed + 1)
    held_out = repeated_tokens(n, batch=16, high=config.vocab_size, seed=seed + 2)  # (16, 2n)
    history, start = [], time.perf_counter()
    for step in range(1, steps + 1):
        half = torch.randint(0, config.vocab_size, (batch, n), generator=data)  # (batch, n)
        ids = torch.cat([half, half], dim=1)  # (batch, 2n)
        loss = token_losses(model(ids).logits, ids).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % every == 0:
            record = evaluate(model.eval(), held_out, n)
            history.append({"step": step, "seconds": time.perf_counter() - start, **record})
            model.train()
            if callback is not None:
                callback(history)
    return model.eval(), history


def first_step_below(history: list, ratio: float = 0.5):
    """The first recorded step where the second-copy loss is below ``ratio`` x the first-copy loss (or None), and
    the seconds it took to get there."""
    for record in history:
        if record["second"] < ratio * record["first"]:
            return record["step"], record["seconds"]
    return None, None
