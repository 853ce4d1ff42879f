"""Experiments on the activations: which component pushes the right token (direct logit attribution), which heads
copy patterns (induction scores), what a head is for (ablation), where the information sits (activation patching).

* **Direct logit attribution.** GPT-J's block is parallel, so the last residual is a plain sum:
  ``r = embed + sum over layers (attn.out + mlp.out)``, and ``attn.out`` is itself a sum over heads of
  ``z_h @ W_O[:, h]^T`` (``out_proj`` has no bias). ``ln_f`` is ``(r - mean r) / scale * w + b``: linear in ``r``
  once its ``scale = sqrt(var r + eps)`` is *frozen* at the value of the real run. Then the logit difference
  ``(ln_f(r)) . (W_U[right] - W_U[wrong]) + bias difference`` splits exactly into one term per component.
* **Induction heads** (Olsson et al., 2022): on a random sequence repeated twice, a head that attends from each
  token of the second copy to the token *after* its first occurrence (distance ``n - 1`` back) can predict the
  next token by copying it; the model's loss on the second copy then falls far below the first.
* **Ablation**: set a head's output ``z`` to zero and see what breaks.
* **Activation patching** (Meng et al., 2022; Wang et al., 2022): run a corrupted prompt, paste in one activation
  from the clean prompt (one layer, one position), and measure how much of the clean answer comes back.

References: Elhage et al. (2021) "A Mathematical Framework for Transformer Circuits"; Olsson et al. (2022)
"In-context Learning and Induction Heads"; TransformerLens's ``Main_Demo`` and ``Exploratory_Analysis_Demo``.
"""

import torch

from ..checks import (
    check_causal_lm,
    check_logits,
    check_maps,
    check_position,
    check_tensor,
    check_token,
    check_whole,
    describe,
)
from ..errors import InputError, InputTypeError
from ..gptj.model import next_token_loss
from .activations import check_name_list, run_with_cache, run_with_hooks


def repeated_tokens(n: int, batch: int = 1, low: int = 0, high: int = 50257, seed: int = 0, bos=None):
    """``batch`` sequences of ``n`` random tokens in [low, high), each repeated twice: (batch, 2n), or
    (batch, 1 + 2n) with a ``bos`` token in front. Seeded by its own generator (the global one is untouched)."""
    n, batch, seed = check_whole(n, "n", 1), check_whole(batch, "batch", 1), check_whole(seed, "seed", 0)
    low = check_whole(low, "low", 0)
    high = check_whole(high, "high", low + 1)
    bos = None if bos is None else check_whole(bos, "bos", 0)
    g = torch.Generator().manual_seed(seed)
    half = torch.randint(low, high, (batch, n), generator=g)  # (batch, n)
    ids = torch.cat([half, half], dim=1)  # (batch, 2n)
    return ids if bos is None else torch.cat([torch.full((batch, 1), bos), ids], dim=1)


def token_losses(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """The loss of predicting each next token: (batch, seq - 1); entry t scores token t + 1 given tokens 0..t."""
    check_logits(logits)
    ids = check_tensor(ids, "ids", 2).long()
    if ids.shape != logits.shape[:2] or ((ids < 0) | (ids >= logits.shape[-1])).any():
        raise InputError(
            f"ids must be the (batch, seq) = {tuple(logits.shape[:2])} token ids the logits were computed "
            f"from, each in [0, {logits.shape[-1]}), got {describe(ids)}"
        )
    return next_token_loss(logits, ids, reduction="none")  # (batch, seq - 1)


def induction_score(pattern: torch.Tensor, n: int, start: int | None = None) -> torch.Tensor:
    """pattern: (batch, heads, seq, seq) on a sequence whose last ``2n`` tokens are ``n`` tokens repeated twice.

    Returns (heads,): the mean attention from each token of the second copy to the token that *followed* the
    same token in the first copy, ``n - 1`` positions back. A head that spreads its attention evenly over the
    tokens it can see scores about 1 / (its position + 1); an induction head scores close to 1.

    With ``start`` the first copy begins at position ``start`` (behind a prefix of ``start`` tokens, with anything
    after the second copy); by default the two copies are the last ``2n`` tokens. Scoring behind prefixes of other
    lengths, or with another ``n``, is what tells an induction head from a head that always looks a fixed distance
    back: only the induction head follows the copy.
    """
    seq = check_square(pattern)
    n = check_whole(n, "n (the length of one copy: at most half the pattern's seq)", 1, seq // 2)
    start = seq - 2 * n if start is None else check_whole(start, "start (where the first copy begins)", 0, seq - 2 * n)
    queries = torch.arange(start + n, start + 2 * n, device=pattern.device)  # the second copy
    return pattern[:, :, queries, queries - n + 1].mean(dim=(0, 2))  # (batch, heads, n) -> (heads,)


def offset_score(pattern: torch.Tensor, back: int) -> torch.Tensor:
    """pattern: (batch, heads, seq, seq). Returns (heads,): the mean attention from each query to the key ``back``
    positions before it, over the queries that have one (q >= back). ``back = 1``: the previous-token score;
    a head that always attends ``back`` tokens behind scores 1 whatever the text."""
    seq = check_square(pattern)
    back = check_whole(back, "back (how far behind the query the key is)", 1, seq - 1)
    queries = torch.arange(back, seq, device=pattern.device)  # the queries with a key `back` behind them
    return pattern[:, :, queries, queries - back].mean(dim=(0, 2))  # (batch, heads, seq - back) -> (heads,)


def check_square(pattern) -> int:
    """A (batch, heads, seq, seq) attention pattern, one row per query; returns seq."""
    seq = check_maps(pattern, "pattern", 4).shape[-1]
    if pattern.shape[-2] != seq:
        raise InputError(
            f"pattern must be (batch, heads, seq, seq), one row per query, got {tuple(pattern.shape)}: "
            "was it cut from a KV-cached run?"
        )
    return seq


def induction_scores(cache: dict, n: int) -> torch.Tensor:
    """Every head's ``induction_score`` from a cache: (layers, heads)."""
    patterns = [cache[name] for name in check_cache_dict(cache) if name.endswith(".attn.pattern")]
    if not patterns:
        raise InputError(
            "cache holds no attention pattern: run run_with_cache(model, ids) with the "
            "'h.<layer>.attn.pattern' names (or with every name)"
        )
    return torch.stack([induction_score(p, n) for p in patterns])


def zero_ablate(z: torch.Tensor, head: int) -> torch.Tensor:
    """z: (batch, seq, heads, head_dim), a layer's per-head outputs. Returns a copy with ``head``'s output zeroed:
    the head's contribution to the residual stream (``z_h @ W_O_h^T``) is then zero."""
    z = check_maps(z, "z", 4).clone()
    z[:, :, check_whole(head, f"head (z has {z.shape[2]} heads)", 0, z.shape[2] - 1)] = 0.0
    return z


def zero_heads(z: torch.Tensor, heads) -> torch.Tensor:
    """z: (batch, seq, heads, head_dim). Returns a copy with every head in ``heads`` (a list of indices) zeroed."""
    z = check_maps(z, "z", 4).clone()
    for head in heads:
        z[:, :, check_whole(head, f"each head (z has {z.shape[2]} heads)", 0, z.shape[2] - 1)] = 0.0
    return z


def patch_head(z: torch.Tensor, clean_z: torch.Tensor, head: int, pos: int) -> torch.Tensor:
    """Head-by-position patching: z and clean_z (batch, seq, heads, head_dim), one layer's per-head outputs in the
    corrupted and the clean run. Returns a copy of z where ``head`` at ``pos`` holds its clean output."""
    z = check_maps(z, "z", 4).clone()
    if check_maps(clean_z, "clean_z", 4).shape != z.shape:
        raise InputError(
            f"clean_z {tuple(clean_z.shape)} must have z's shape {tuple(z.shape)}: the same layer of the "
            "clean run, on a prompt with as many tokens"
        )
    head = check_whole(head, f"head (z has {z.shape[2]} heads)", 0, z.shape[2] - 1)
    pos = check_position(pos, z.shape[1])
    z[:, pos, head] = clean_z[:, pos, head]
    return z


@torch.no_grad()
def ov_logits(model, layer: int, head: int, tokens: torch.Tensor) -> torch.Tensor:
    """The OV circuit of one head, read through the embedding and the unembedding (Elhage et al., 2021): row i says
    which of ``tokens`` the head's output would push up if it attended only to ``tokens[i]``.

    ``ln_1(W_E[t])`` (the token's own embedding, exact in layer 0) -> the head's slice of ``v_proj`` -> its slice of
    ``out_proj`` -> centred and times ln_f's weight (its scale dropped: a positive factor per row does not change
    the row's ranking) -> ``W_U[tokens]``. Returns (len(tokens), len(tokens)).
    """
    check_causal_lm(model)
    layer = check_whole(layer, "layer", 0, model.config.n_layer - 1)
    head = check_whole(head, "head", 0, model.config.n_head - 1)
    tokens = check_tensor(tokens, "tokens", 1).long()
    block, size = model.transformer.h[layer], model.config.n_embd // model.config.n_head
    rows = slice(head * size, (head + 1) * size)  # this head's dims of v_proj's output and out_proj's input
    x = block.ln_1(model.transformer.wte.weight[tokens].float())  # (tokens, n_embd)
    v = x @ block.attn.v_proj.weight[rows].float().T  # (tokens, head_dim)
    out = v @ block.attn.out_proj.weight[:, rows].float().T  # (tokens, n_embd)
    out = (out - out.mean(-1, keepdim=True)) * model.transformer.ln_f.weight.float()  # ln_f, scale dropped
    return out @ model.lm_head.weight[tokens].float().T  # (tokens, tokens)


def copying_score(ov: torch.Tensor, k: int = 1) -> float:
    """ov: (tokens, tokens) from ``ov_logits``. The fraction of rows whose own token (the diagonal) is among the
    row's ``k`` largest logits: 1 for a head that copies whatever it attends to, about k / tokens for one that
    does not."""
    ov = check_maps(ov, "ov (tokens, tokens)", 2)
    k = check_whole(k, "k", 1, ov.shape[1])
    top = ov.topk(k, dim=1).indices  # (tokens, k): each row's k largest columns
    return (top == torch.arange(ov.shape[0], device=ov.device)[:, None]).any(dim=1).float().mean().item()


def head_outputs(model, cache: dict, layer: int) -> torch.Tensor:
    """What each head of ``layer`` writes into the residual stream: (batch, seq, heads, n_embd); their sum over
    heads is ``h.{layer}.attn.out``."""
    check_causal_lm(model)
    layer = check_whole(layer, "layer", 0, model.config.n_layer - 1)
    z = cached(cache, f"h.{layer}.attn.z")  # (batch, seq, heads, head_dim)
    w_o = model.transformer.h[layer].attn.out_proj.weight  # (n_embd, heads * head_dim)
    w_o = w_o.unflatten(1, z.shape[-2:])  # (n_embd, heads, head_dim)
    return torch.einsum("bshd,ehd->bshe", z, w_o)  # (batch, seq, heads, n_embd)


def residual_terms(model, cache: dict, pos: int = -1):
    """The final residual at ``pos`` as a sum: (labels, terms (n_terms, batch, n_embd)) with the embedding,
    each head of each layer (``L1H2``: layer 1, head 2) and each MLP, in that order; the terms sum to
    ``h.{last}.resid_post[:, pos]``."""
    check_causal_lm(model)
    pos = check_position(pos, cached(cache, "embed").shape[1])
    labels, terms = ["embed"], [cache["embed"][:, pos]]
    for layer in range(model.config.n_layer):
        heads = head_outputs(model, cache, layer)[:, pos]  # (batch, heads, n_embd)
        labels += [f"L{layer}H{h}" for h in range(heads.shape[1])] + [f"L{layer} MLP"]
        terms += list(heads.unbind(1)) + [cached(cache, f"h.{layer}.mlp.out")[:, pos]]
    return labels, torch.stack(terms)  # (n_terms, batch, n_embd)


def frozen_scale(resid: torch.Tensor, ln: torch.nn.LayerNorm) -> torch.Tensor:
    """What LayerNorm ``ln`` divides the residual ``resid`` (..., n_embd) by: ``sqrt(var(resid) + eps)``, (..., 1).

    Read off the real run and then held fixed, it makes ``ln`` linear in its input: the sum of the components'
    ``dla_term``s is then exactly the logit difference. In fp32: an fp16 variance of the 6B's residual could overflow.
    """
    return (resid.float().var(dim=-1, unbiased=False, keepdim=True) + ln.eps).sqrt()  # (..., 1)


def dla_term(term: torch.Tensor, scale: torch.Tensor, ln_weight: torch.Tensor, direction: torch.Tensor):
    """One component's share of a logit difference through ``ln_f`` with its scale frozen.

    term: (..., n_embd); scale: (..., 1), ``sqrt(var(r) + eps)`` of the real final residual r; ln_weight,
    direction: (n_embd,). Returns (...): ``((term - mean(term)) / scale * ln_weight) . direction``.
    """
    centred = term - term.mean(dim=-1, keepdim=True)  # ln_f subtracts the mean of the whole sum, term by term
    return (centred / scale * ln_weight) @ direction  # (...,)


@torch.no_grad()
def direct_logit_attribution(model, cache: dict, right: int, wrong: int, pos: int = -1):
    """How much each component adds to ``logit[right] - logit[wrong]`` at ``pos``, ln_f's scale frozen.

    Returns (labels, values (n_terms + 1, batch)): ``residual_terms``' components, then ``"biases"`` (ln_f's
    bias and lm_head's, the same for every input). The values sum to the logit difference.
    """
    labels, terms = residual_terms(model, cache, pos)  # (n_terms, batch, n_embd)
    right = check_token(right, "right", model.config.vocab_size)
    wrong = check_token(wrong, "wrong", model.config.vocab_size)
    last = cached(cache, f"h.{model.config.n_layer - 1}.resid_post")
    ln_f, head = model.transformer.ln_f, model.lm_head
    scale = frozen_scale(last[:, pos], ln_f)  # (batch, 1), from the residual (batch, n_embd); fp32 throughout
    direction = (head.weight[right] - head.weight[wrong]).float()  # (n_embd,)
    values = dla_term(terms.float(), scale, ln_f.weight.float(), direction)  # (n_terms, batch)
    biases = ln_f.bias.float() @ direction + (head.bias[right] - head.bias[wrong]).float()
    return labels + ["biases"], torch.cat([values, biases.expand(1, values.shape[1])])


def logit_difference(logits: torch.Tensor, right: int, wrong: int, pos: int = -1) -> torch.Tensor:
    """``logit[right] - logit[wrong]`` at ``pos``, averaged over the batch: a scalar."""
    check_logits(logits)
    right, wrong = check_token(right, "right", logits.shape[-1]), check_token(wrong, "wrong", logits.shape[-1])
    pos = check_position(pos, logits.shape[1])
    return (logits[:, pos, right] - logits[:, pos, wrong]).mean()


@torch.no_grad()
def patch_residual(model, clean_ids, corrupt_ids, metric, names=None) -> torch.Tensor:
    """Activation patching: for every name and position, run ``corrupt_ids`` with that one activation taken from
    the clean run, and score the logits with ``metric``. Returns (len(names), seq): 0 where the patch changes
    nothing, 1 where it brings back the clean score entirely. ``names`` defaults to every layer's
    ``resid_pre`` and the last layer's ``resid_post``."""
    check_patching(model, clean_ids, corrupt_ids, metric)
    n_layer = model.config.n_layer
    names = (
        check_name_list(names)
        if names is not None
        else ([f"h.{i}.resid_pre" for i in range(n_layer)] + [f"h.{n_layer - 1}.resid_post"])
    )
    clean_logits, clean = run_with_cache(model, clean_ids, names)
    clean_score, corrupt_score = metric(clean_logits), metric(run_with_hooks(model, corrupt_ids, {}))
    if not torch.isfinite(torch.as_tensor(clean_score - corrupt_score)) or clean_score == corrupt_score:
        raise InputError(
            f"the metric gives the clean and the corrupt prompt the same score ({float(clean_score):.4g}"
            f" and {float(corrupt_score):.4g}): there is nothing to recover. Choose a corruption that "
            "changes the answer"
        )
    recovered = torch.zeros(len(names), clean_ids.shape[1])  # (names, seq)
    for row, name in enumerate(names):
        for pos in range(clean_ids.shape[1]):

            def paste(x, name=name, pos=pos):
                x = x.clone()
                x[:, pos] = clean[name][:, pos]  # the clean activation, at this one position
                return x

            score = metric(run_with_hooks(model, corrupt_ids, {name: paste}))
            recovered[row, pos] = (score - corrupt_score) / (clean_score - corrupt_score)
    return recovered


def check_patching(model, clean_ids, corrupt_ids, metric) -> None:
    """Patching pastes position t of the clean run into position t of the corrupt one: both prompts must have the
    same shape (pad or pick prompts whose tokens line up), and metric must be a function of the logits."""
    check_causal_lm(model)
    clean_ids, corrupt_ids = check_tensor(clean_ids, "clean_ids", 2), check_tensor(corrupt_ids, "corrupt_ids", 2)
    if clean_ids.shape != corrupt_ids.shape:
        raise InputError(
            f"clean_ids {tuple(clean_ids.shape)} and corrupt_ids {tuple(corrupt_ids.shape)} must have "
            "the same shape: patching swaps position t for position t, so the tokens must line up"
        )
    if not callable(metric):
        raise InputTypeError(
            f"metric must be a function of the logits (e.g. lambda logits: logit_difference(logits, "
            f"right, wrong)), got {describe(metric)}"
        )


def check_cache_dict(cache) -> dict:
    """What run_with_cache returns second: a dict {name: tensor}."""
    if not isinstance(cache, dict):
        raise InputTypeError(f"cache must be the dict that run_with_cache returns (second), got {describe(cache)}")
    return cache


def cached(cache, name: str) -> torch.Tensor:
    """cache[name], or a clear error saying how to get it."""
    if name not in check_cache_dict(cache):
        raise InputError(
            f"cache has no {name!r}: run run_with_cache(model, ids) without names (or with {name!r}); "
            "a layer or head out of the model's range has no activation either"
        )
    return cache[name]
