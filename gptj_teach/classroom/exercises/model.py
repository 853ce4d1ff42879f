"""Notebook 05, The model and the checkpoint: the checks of its "your turn" cells."""

import numbers
import operator

import torch
from transformers import GPTJConfig

from ...gptj.model import make_mask
from ...gptj.sizes import inner_dim, layer_parameter_count, parameter_count
from .grading import _first_failure, _same_tensor, _shape_hint, _small_model, _verdict


def check_forward(fn) -> bool:
    """Notebook 05: fn(model, ids (batch, seq)) -> logits (batch, seq, vocab), from the model's own modules."""
    model, ids_a, ids_b = _small_model()
    cases = [(model, ids_a), (model, ids_b)]

    def diagnose(got, expected, args):
        model, ids = args
        if hint := _shape_hint(got, expected):
            return hint + " (the logits: lm_head after ln_f)"
        body, seq = model.transformer, ids.shape[1]
        mask, positions = make_mask(None, torch.arange(seq), seq, torch.float32), torch.arange(seq)[None]
        x = body.wte(ids)
        for block in body.h:
            x = block(x, positions, mask)[0]
        if torch.allclose(got, model.lm_head(x), atol=1e-4):
            return "apply the final LayerNorm ln_f before lm_head"
        if torch.allclose(got, model.lm_head(body.ln_f(x)) - model.lm_head.bias, atol=1e-4):
            return "lm_head has a bias: call the module (model.lm_head(x)), not only its weight"
        return (
            "compare with: wte -> every block (with position_ids 0..seq-1 and the causal mask) -> ln_f -> "
            "lm_head; each block returns a tuple, its first item is the new hidden state"
        )

    with torch.no_grad():
        hint = _first_failure(fn, cases, lambda m, ids: m(ids).logits, lambda g, e: _same_tensor(g, e, 1e-4), diagnose)
    return _verdict(hint is None, "Embedding, blocks, final LayerNorm, read-out: all of GPT-J's forward pass.", hint)


def _parameter_count_configs() -> list[GPTJConfig]:
    """Two small shapes (one with n_inner set: an MLP narrower than 4 x n_embd), the tiny model and GPT-J 6B."""
    from ...checkpoint import TINY

    small = dict(n_head=4, rotary_dim=4, bos_token_id=0, eos_token_id=0)  # eos inside the small vocabularies
    return [
        GPTJConfig(n_embd=32, n_layer=2, vocab_size=97, **small),
        GPTJConfig(n_embd=48, n_layer=3, n_inner=100, vocab_size=211, **small),
        GPTJConfig.from_pretrained(TINY),
        GPTJConfig(),
    ]


def check_parameter_count(fn) -> bool:
    """Notebook 05: fn(config) -> the number of parameters of GPTJForCausalLM(config), from the config alone."""

    def diagnose(got, expected, args):
        config = args[0]
        if isinstance(got, bool) or not isinstance(got, numbers.Real):
            return f"return the count as an int, not a {type(got).__name__}"
        if got == expected:
            return "return an int: a count is exact (use * and //, not /)"
        d, vocab, layers, inner = config.n_embd, config.vocab_size, config.n_layer, inner_dim(config)
        per_layer = layer_parameter_count(config)
        wide = (4 * d - inner) * (2 * d + 1)  # what a 4 x n_embd MLP has more than an n_inner one
        mistakes = [
            (expected - vocab, "lm_head has a bias: vocab_size more numbers"),
            (
                expected - d * vocab - vocab,
                "GPT-J's output layer lm_head is its own matrix (n_embd x "
                "vocab_size, with a bias), not tied to wte as in GPT-2",
            ),
            (
                expected - d * vocab,
                "count both vocab_size x n_embd matrices: the embedding wte AND lm_head's "
                "weight (GPT-J does not tie them, GPT-2 does)",
            ),
            (expected + 2 * d * layers, "GPT-J's block is parallel: one LayerNorm (ln_1) per layer, no ln_2"),
            (expected + 3 * d * layers, "q_proj, k_proj and v_proj have no biases in GPT-J"),
            (expected + 4 * d * layers, "attention has no biases in GPT-J: q_proj, k_proj, v_proj, out_proj"),
            (expected - (inner + d) * layers, "fc_in and fc_out have biases (the MLP's only ones)"),
            (
                expected + wide * layers,
                "the MLP is config.n_inner wide when that is set; 4 x n_embd only when it is None",
            ),
            (expected - 2 * d, "count the final LayerNorm ln_f too"),
            (expected - (layers + 1) * d, "a LayerNorm has a weight AND a bias: 2 x n_embd numbers"),
            (expected - (layers - 1) * per_layer, "that is one block: the model has n_layer of them"),
        ]
        shape = f"n_embd={d}, n_layer={layers}, vocab_size={vocab}, n_inner={config.n_inner}"
        return next(
            (hint for wrong, hint in mistakes if got == wrong),
            f"for a config with {shape} your count is too {'high' if got > expected else 'low'}: go through "
            "the module tree part by part (wte, each block, ln_f, lm_head), weights and biases",
        )

    def same(got, expected):
        return isinstance(got, numbers.Integral) and not isinstance(got, bool) and got == expected

    hint = _first_failure(fn, [(config,) for config in _parameter_count_configs()], parameter_count, same, diagnose)
    return _verdict(
        hint is None,
        "Six billion numbers from four config fields: the blocks grow with n_embd squared, "
        "the embedding and lm_head only with n_embd.",
        hint,
    )


def _first_past(values: list[float], tol: float, strict: bool = True) -> int | None:
    """The index of the first value above tol (at or above it when not strict); None when there is none."""
    return next((i for i, value in enumerate(values) if (value > tol if strict else value >= tol)), None)


def _reference_first_divergent_layer(ours, ref, tol):
    """The first hidden state (entry 0: the embedding) whose largest |ours - ref| is more than tol; None if none."""
    return _first_past([(a - b).abs().max().item() for a, b in zip(ours, ref, strict=True)], tol)


def _divergence_cases() -> list[tuple]:
    """(ours, ref, tol): five hidden states (2, 3, 8) each, ours = ref with chosen entries moved. The values are
    multiples of 1/4, so that a move of exactly tol is exact."""
    g = torch.Generator().manual_seed(0)
    ref = tuple(torch.randint(-40, 40, (2, 3, 8), generator=g) / 4 for _ in range(5))

    def moved(*changes):  # (entry, amount, everywhere): add amount to the whole entry, or to one number of it
        ours = [h.clone() for h in ref]
        for entry, amount, everywhere in changes:
            target = ours[entry] if everywhere else ours[entry][0, 1, 2:3]
            target += amount
        return tuple(ours), ref, 0.25

    return [
        moved((1, 0.125, True), (2, -0.125, True), (4, 0.125, False)),  # all within tol: None
        moved(*[(entry, 0.5, True) for entry in range(5)]),  # the embedding already differs: 0
        moved((1, -0.5, True), (3, 0.5, True)),  # a negative difference
        moved((2, 4.0, False), (4, 0.5, True)),  # one number of a layer
        moved((1, 0.5, True), (3, 4.0, True), (4, 0.5, True)),  # the first, not the worst
        moved((1, 0.25, True), (3, 0.5, True)),  # a difference of exactly tol is within it
        moved((4, 0.5, True)),
    ]  # only the last entry


def check_first_divergent_layer(fn) -> bool:
    """Notebook 05: fn(ours, ref, tol) -> the index of the first hidden state (entry 0: the embedding) whose largest
    |ours - ref| is more than tol, or None when every one agrees. ours, ref: tuples of tensors, as hidden_states."""

    def diagnose(got, expected, args):
        ours, ref, tol = args
        try:
            got = None if got is None else operator.index(got)  # an int, or a one-number integer tensor
        except TypeError:
            return f"return an int (the index of the hidden state) or None, not a {type(got).__name__}"
        if expected is None:
            return f"every hidden state here is within tol = {tol} of the reference: return None, not {got}"
        gaps = [a - b for a, b in zip(ours, ref)]
        largest = [gap.abs().max().item() for gap in gaps]
        past = [i for i, value in enumerate(largest) if value > tol]
        mistakes = [
            (
                _first_past([gap.max().item() for gap in gaps], tol),
                "a difference can be negative: compare the largest ABSOLUTE difference, (a - b).abs().max(), with tol",
            ),
            (
                _first_past([gap.abs().mean().item() for gap in gaps], tol),
                "one number out of tolerance is "
                "enough: compare the LARGEST |difference| of each hidden state with tol, not the mean",
            ),
            (
                _first_past(largest, tol, strict=False),
                "MORE than tol: a largest difference equal to tol is still within the tolerance",
            ),
            (past[-1], "return the FIRST hidden state that differs, not the last"),
            (
                max(range(len(largest)), key=largest.__getitem__),
                "return the FIRST hidden state past tol, not "
                "the one that differs most: what goes wrong first is what to debug",
            ),
            (
                expected - 1,
                "off by one: return the index into the tuple, where entry 0 is the embedding and "
                "the output of block i is entry i + 1",
            ),
            (expected + 1, "off by one: count from 0 (entry 0, the embedding, is the first hidden state)"),
        ]
        return next(
            (hint for wrong, hint in mistakes if got == wrong),
            f"your index {got} is not the first entry i with (ours[i] - ref[i]).abs().max() > tol",
        )

    def same(got, expected):
        if expected is None or got is None or isinstance(got, bool):
            return got is expected
        try:
            return operator.index(got) == expected
        except TypeError:
            return False

    hint = _first_failure(fn, _divergence_cases(), _reference_first_divergent_layer, same, diagnose)
    return _verdict(
        hint is None,
        "When two implementations disagree, the first layer past the tolerance is where to "
        "look: everything after it inherits the difference.",
        hint,
    )
