"""Notebook 04, The parallel block: the checks of its "your turn" cells."""

import torch
from transformers import GPTJConfig

from ...gptj.block import GPTJBlock, gelu_new
from ...gptj.model import make_mask, positions_from_mask
from .grading import _first_failure, _same_tensor, _shape_hint, _verdict, _watched

LAYER_NORM_CODES = {torch.nn.LayerNorm.forward.__code__, torch.nn.functional.layer_norm.__code__}


def _block_cases():
    """A small GPT-J block with random LayerNorm too, and two inputs: plain, and left-padded with a mask."""
    config = GPTJConfig(n_embd=32, n_head=4, rotary_dim=4, n_layer=1, n_positions=64)
    with torch.random.fork_rng(devices=[]):  # leave the notebook's random stream alone
        torch.manual_seed(0)
        block = GPTJBlock(config).eval()
        for parameter in block.parameters():
            torch.nn.init.normal_(parameter, std=0.3)
        x1, x2 = torch.randn(2, 5, 32), torch.randn(2, 4, 32)
    padded = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])
    positions = positions_from_mask(padded)  # (2, 4)
    return block, [
        (block, x1, torch.arange(5).expand(2, 5), make_mask(None, torch.arange(5), 5, torch.float32)),
        (block, x2, positions, make_mask(padded, torch.arange(4), 4, torch.float32)),
    ]


def check_parallel_block(fn) -> bool:
    """Notebook 04: fn(block, x, position_ids, mask) -> the block's output (batch, seq, n_embd), built from
    block.ln_1, block.attn and block.mlp."""
    block, cases = _block_cases()

    def attn(h, position_ids, mask):
        return block.attn(h, position_ids, mask)[0]

    def diagnose(got, expected, args):
        _, x, position_ids, mask = args
        if isinstance(got, tuple):
            return (
                "return only the output tensor (block.attn returns a tuple of two: the output and the "
                "attention weights)"
            )
        if hint := _shape_hint(got, expected):
            return hint
        h = block.ln_1(x)
        after_attn = x + attn(h, position_ids, mask)
        wrong = {
            "that is GPT-2's sequential block (the MLP reads the attention output through a second "
            "LayerNorm); in GPT-J one ln_1(x) feeds both branches side by side": after_attn
            + block.mlp(block.ln_1(after_attn)),
            "add the residual: the input x itself is part of the output": attn(h, position_ids, mask) + block.mlp(h),
            "both branches read the normalised input ln_1(x), not x": x + attn(x, position_ids, mask) + block.mlp(x),
        }
        return next(
            (msg for msg, value in wrong.items() if torch.allclose(got, value, atol=1e-5)),
            "compare with the block's formula: one LayerNorm, two branches (attention, MLP), one residual sum",
        )

    with torch.no_grad():
        hint = _first_failure(fn, cases, lambda b, *a: b(*a)[0], lambda g, e: _same_tensor(g, e, 1e-5), diagnose)
    return _verdict(
        hint is None,
        "One LayerNorm, attention and MLP side by side: GPT-J's parallel block (GPT-2 runs them one after the other).",
        hint,
    )


def _layer_norm_cases():
    with torch.random.fork_rng(devices=[]):  # leave the notebook's random stream alone
        torch.manual_seed(0)
        cases = []
        for eps in (1e-5, 0.5):  # a large eps shows where it belongs
            ln = torch.nn.LayerNorm(32, eps=eps)
            torch.nn.init.normal_(ln.weight, 1.0, 0.3)
            torch.nn.init.normal_(ln.bias, 0.0, 0.3)
            cases.append((3 + 2 * torch.randn(2, 5, 32), ln))
    return cases


def check_layer_norm(fn) -> bool:
    """Notebook 04: fn(x, ln) -> ln(x) for a torch.nn.LayerNorm ``ln``, from ln.weight, ln.bias and ln.eps."""

    def diagnose(got, expected, args):
        x, ln = args
        if hint := _shape_hint(got, expected):
            return hint
        mean = x.mean(-1, keepdim=True)
        variants = {
            "LayerNorm divides by the biased variance: var(..., unbiased=False)": (x - mean)
            / torch.sqrt(x.var(-1, keepdim=True) + ln.eps)
            * ln.weight
            + ln.bias,
            "eps goes inside the square root: sqrt(var + eps)": (x - mean)
            / (x.var(-1, keepdim=True, unbiased=False).sqrt() + ln.eps)
            * ln.weight
            + ln.bias,
            "then scale by ln.weight and shift by ln.bias": (x - mean)
            / torch.sqrt(x.var(-1, keepdim=True, unbiased=False) + ln.eps),
        }
        return next(
            (msg for msg, value in variants.items() if torch.allclose(got, value, atol=1e-4)),
            "normalise each token over its features (dim=-1): subtract the mean, divide by "
            "sqrt(variance + eps), then * ln.weight + ln.bias",
        )

    called = set()  # LayerNorm code the learner's function ran (the reference's own ln(x) is not watched)
    with torch.no_grad():
        hint = _first_failure(
            _watched(fn, LAYER_NORM_CODES, called),
            _layer_norm_cases(),
            lambda x, ln: ln(x),
            lambda g, e: _same_tensor(g, e, 1e-4),
            diagnose,
        )
    if hint is None and called:
        hint = (
            "your function calls the LayerNorm (ln(x) or F.layer_norm) instead of computing it: use only "
            "ln.weight, ln.bias and ln.eps"
        )
    return _verdict(
        hint is None,
        "Every token enters attention and the MLP at the same scale, whatever its size in the residual stream.",
        hint,
    )


def check_mlp(fn) -> bool:
    """Notebook 04: fn(h, mlp) -> mlp(h) for a gt.gptj.block.GPTJMLP: fc_in, gelu_new, fc_out (with biases)."""
    block, cases = _block_cases()
    mlp_cases = [(x, block.mlp) for _, x, _, _ in cases]

    def diagnose(got, expected, args):
        h, mlp = args
        if hint := _shape_hint(got, expected):
            return hint
        inner = mlp.fc_in(h)
        wrong = {
            "that is the exact GELU (erf); GPT-J uses gelu_new, the tanh approximation": mlp.fc_out(
                torch.nn.functional.gelu(inner)
            ),
            "that is ReLU; GPT-J uses gelu_new": mlp.fc_out(inner.relu()),
            "the activation goes between fc_in and fc_out": mlp.fc_out(inner),
            "fc_in and fc_out have biases: add them (or call the Linear modules)": gelu_new(h @ mlp.fc_in.weight.T)
            @ mlp.fc_out.weight.T,
        }
        return next(
            (msg for msg, value in wrong.items() if torch.allclose(got, value, atol=1e-5)),
            "compare with fc_out(gelu_new(fc_in(h)))",
        )

    with torch.no_grad():
        hint = _first_failure(fn, mlp_cases, lambda h, m: m(h), lambda g, e: _same_tensor(g, e, 1e-5), diagnose)
    return _verdict(hint is None, "Each token alone, widened 4x and back: where most of GPT-J's parameters live.", hint)
