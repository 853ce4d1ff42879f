"""Self-checking exercises, one at the end of each notebook: ``check_<name>(your_answer)``.

Every check works the right answer out *live* with the package (``gt.tokenizer``, ``gt.rotary``,
``gt.model``, ``gt.sampling``, ``gt.memory``, the tiny model), tries your answer on several inputs, edge cases
included, and prints either ``✅ Right! <why it matters>`` or ``❌ Not yet: <a hint>``; it returns True or False.
It never raises, even when your function does: a crash is reported as ``❌ Not yet: your function raised ...``.
Hints point at the usual mistake (the half-split rotary of Llama, the KV-cache offset, forgetting the V of
the cache, ...) without giving the answer away. Stuck for good? ``notebooks/solutions/solutions.py``.
"""

import functools
import math
import numbers
import operator

import torch
from transformers import GPTJConfig

from . import memory, rotary, sampling, tokenizer
from .block import GPTJBlock
from .model import make_mask

PREVIOUS_TOKEN_TEXT = ('def add(a, b):\n    """Return the sum of a and b."""\n    return a + b\n\n\n'
                       'for i in range(10):\n    print(add(i, i * 2))\n')  # the text check_previous_token_head reads
PREVIOUS_TOKEN_MARGIN = 0.02  # a head this close to the best previous-token score also counts
RELATIVE_TOLERANCE = 0.02  # numeric answers may be 2% off
PLACEHOLDER = "your function returned None: replace the `...` with your code and `return` the result"


def _verdict(ok: bool, praise: str, hint: str | None) -> bool:
    """Print ``✅ Right! praise`` or ``❌ Not yet: hint``; return ok."""
    print(f"✅ Right! {praise}" if ok else f"❌ Not yet: {hint}")
    return ok


def _fresh(args: tuple) -> tuple:
    """Copies of the arguments, so that a function changing its input in place cannot spoil the next call."""
    return tuple(a.clone() if isinstance(a, torch.Tensor) else list(a) if isinstance(a, list) else a for a in args)


def _first_failure(fn, cases, reference, same, diagnose) -> str | None:
    """Call ``fn`` on each case (a tuple of arguments); None when every result equals ``reference``'s, else a hint.

    same(got, expected) -> bool; diagnose(got, expected, args) -> the hint for a wrong result.
    """
    if not callable(fn):
        return f"pass your function itself, e.g. check(my_fn), not my_fn() (got a {type(fn).__name__})"
    for args in cases:
        expected = reference(*_fresh(args))
        try:
            got = fn(*_fresh(args))
        except Exception as error:  # the learner's bug, reported as a hint
            return f"your function raised {type(error).__name__}: {error}"
        if got is None:
            return PLACEHOLDER
        try:
            if not same(got, expected):
                return diagnose(got, expected, args)
        except Exception:  # an answer too odd to compare (a numpy array, a generator, ...)
            return f"your function returned a {type(got).__name__}, which cannot be compared with the right answer"
    return None


def _same_tensor(got, expected, atol=0.0) -> bool:
    """A tensor of the expected shape and dtype with the expected values (up to atol)."""
    if not (isinstance(got, torch.Tensor) and got.shape == expected.shape and got.dtype == expected.dtype):
        return False
    return torch.equal(got, expected) if atol == 0 else torch.allclose(got.detach(), expected, atol=atol, rtol=0)


def _shape_hint(got, expected) -> str | None:
    """The hint for a result that is not a tensor, or not of the expected shape; None when those are fine."""
    if not isinstance(got, torch.Tensor):
        return f"return a torch.Tensor, not a {type(got).__name__}"
    if got.shape != expected.shape:
        return f"the result should have shape {tuple(expected.shape)}, yours has {tuple(got.shape)}"
    return None


def _as_number(answer, unit: str) -> tuple[float | None, str | None]:
    """(the answer as a float, None), or (None, a hint) when it is not a finite number."""
    if answer is None:
        return None, f"replace None with your number (in {unit})"
    if isinstance(answer, torch.Tensor) and answer.numel() == 1:
        answer = answer.item()
    if isinstance(answer, bool) or not isinstance(answer, numbers.Real):
        return None, f"give a number (in {unit}), not a {type(answer).__name__}"
    if not math.isfinite(answer):
        return None, f"give a finite number (in {unit}), got {answer}"
    return float(answer), None


def _close(value: float, target: float) -> bool:
    return abs(value - target) <= RELATIVE_TOLERANCE * abs(target)


def _check_number(answer, right, unit, mistakes, too_high, too_low, praise) -> bool:
    """Shared by the numeric checks: ``mistakes`` maps a wrong value (computed live) to the hint for it."""
    value, hint = _as_number(answer, unit)
    if hint is None and not _close(value, right):
        hint = next((msg for wrong, msg in mistakes if _close(value, wrong)), too_high if value > right else too_low)
    return _verdict(hint is None, praise, hint)


def check_memory_fp16_gb(answer) -> bool:
    """Notebook 00: how many GB (1e9 bytes) do the weights of GPT-J 6B take in fp16?"""
    config = GPTJConfig()  # the 6B shape
    params, head = memory.parameter_count(config), config.n_embd * config.vocab_size + config.vocab_size
    right = memory.weights_bytes(config, torch.float16) / memory.GB
    mistakes = [(right * 2, "that is 4 bytes per number (fp32); fp16 numbers take 2 bytes"),
                (right / 2, "that is 1 byte per parameter (or the parameter count in billions); fp16 takes 2"),
                (right * memory.GB / 2**30, "that looks like GiB (2**30 bytes); here GB means 1e9 bytes"),
                ((params - head) * 2 / memory.GB, "close, but too low: did you count the lm_head (with its bias)?"),
                (right * memory.GB, "that is bytes: give GB (divide by 1e9)"),
                (right * 1e3, "that is MB: give GB")]
    return _check_number(answer, right, "GB", mistakes,
                         "too high: parameters x bytes per fp16 number, divided by 1e9",
                         "too low: count every part: wte, each block (ln_1, q/k/v/out, fc_in and fc_out with "
                         "biases), ln_f and lm_head (with its bias), then x bytes per fp16 number / 1e9",
                         "The 6B in fp16 fits a 16 GB T4 GPU, in fp32 it does not.")


def check_merge_pair(fn) -> bool:
    """Notebook 01: fn(symbols: list[str], pair: tuple[str, str]) -> list[str], every occurrence merged."""
    hallo = [tokenizer.bytes_to_unicode()[b] for b in " Hallo".encode()]
    cases = [(hallo, ("l", "l")), (list("abab"), ("a", "b")), (list("aaa"), ("a", "a")), (list("aaaa"), ("a", "a")),
             (list("xab"), ("a", "b")), (list("ab"), ("b", "a")), (["ab", "c", "ab", "c"], ("ab", "c")),
             (list("xyz"), ("a", "b")), (["a"], ("a", "b")), ([], ("a", "b"))]

    def diagnose(got, expected, args):
        if not isinstance(got, list):
            return f"return a list of str, not a {type(got).__name__}"
        overlap = " (pairs are merged left to right and never overlap)" if args[1][0] == args[1][1] else ""
        return f"for symbols={args[0]!r}, pair={args[1]!r} your function returned {got!r}{overlap}"

    hint = _first_failure(fn, cases, tokenizer.merge_pair, lambda got, exp: got == exp, diagnose)
    if hint is None:  # it gives the right lists: does it leave its input alone?
        symbols = list("abab")
        fn(symbols, ("a", "b"))
        hint = None if symbols == list("abab") else "build and return a new list; do not change `symbols` in place"
    return _verdict(hint is None, "BPE is this one merge, repeated in rank order until no known pair is left.", hint)


def _rotate_half(x):
    """The half-split rotation of GPT-NeoX / Llama: the usual wrong answer for GPT-J."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def check_rotate_every_two(fn) -> bool:
    """Notebook 02: fn(x (..., d)) -> GPT-J's rotate_every_two(x), same shape and dtype."""
    g = torch.Generator().manual_seed(0)
    cases = [(torch.arange(1.0, 9.0),), (torch.randn(2, 3, 4, 16, generator=g),), (torch.randn(5, 2, generator=g),),
             (torch.randn(3, 4, 8, generator=g, dtype=torch.float64),), (torch.randn(6, 4, generator=g).t(),)]

    def diagnose(got, expected, args):
        x = args[0]
        if hint := _shape_hint(got, expected):
            return hint
        if got.dtype != expected.dtype:
            return f"keep the input's dtype ({x.dtype}), yours is {got.dtype}"
        if torch.equal(got, _rotate_half(x)):
            return ("that pairs dim i with dim i + d/2: the half-split rotate_half of GPT-NeoX / Llama. GPT-J pairs "
                    "adjacent dims: (x0, x1), (x2, x3), ...")
        if torch.equal(got.abs(), expected.abs()):
            return "every number is in the right place but some signs are wrong: which member of each pair is negated?"
        if torch.equal(got.flatten().sort().values, expected.flatten().sort().values):
            return "the right numbers in the wrong order: put each rotated pair back side by side (interleave them)"
        shown = f"x = {x.tolist()}" if x.numel() <= 8 else f"x of shape {tuple(x.shape)}"
        return f"for {shown} your result differs from GPT-J's rotate_every_two"

    hint = _first_failure(fn, cases, rotary.rotate_every_two, _same_tensor, diagnose)
    return _verdict(hint is None, "Adjacent pairs turned by 90 degrees; with cos and sin this rotates q and k by their "
                                  "position (GPT-J's way, not Llama's half split).", hint)


def _reference_causal_mask(q_len: int, kv_len: int) -> torch.Tensor:
    return make_mask(None, q_len, kv_len, torch.float32, "cpu")[0, 0] == 0  # (q_len, kv_len), True = may attend


def check_causal_mask(fn) -> bool:
    """Notebook 03: fn(q_len, kv_len) -> bool (q_len, kv_len), True where a query may attend (queries = the LAST
    q_len of the kv_len positions, as with a KV cache)."""
    cases = [(4, 4), (1, 1), (1, 6), (3, 7), (2, 3), (5, 5)]

    def diagnose(got, expected, args):
        q_len, kv_len = args
        if hint := _shape_hint(got, expected):
            return hint
        if got.dtype != torch.bool:
            same = torch.equal(got.detach() == 0, ~expected) or torch.equal(got.detach() != 0, expected)
            return ("return a bool tensor (True = may attend)" + (": your pattern is right, convert it" if same else
                    f", yours is {got.dtype}; an additive 0 / -inf mask is the next step, not this one"))
        if torch.equal(got, torch.ones(q_len, kv_len, dtype=torch.bool).tril()):
            return (f"for q_len={q_len}, kv_len={kv_len} your queries start at position 0; with a KV cache they are "
                    "the LAST q_len positions: query i sits at position kv_len - q_len + i (torch.tril's diagonal=)")
        if (got & ~expected).any():
            return (f"for q_len={q_len}, kv_len={kv_len} some queries may look at later keys: True only for keys at "
                    "or before the query's own position")
        return f"for q_len={q_len}, kv_len={kv_len} some queries cannot see earlier keys or themselves"

    hint = _first_failure(fn, cases, _reference_causal_mask, _same_tensor, diagnose)
    return _verdict(hint is None, "With a KV cache only the new queries run, and each still sees every earlier key.",
                    hint)


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
    positions = (padded.cumsum(-1) - 1).clamp(min=0)  # (2, 4)
    return block, [(block, x1, torch.arange(5).expand(2, 5), make_mask(None, 5, 5, torch.float32, "cpu")),
                   (block, x2, positions, make_mask(padded, 4, 4, torch.float32, "cpu"))]


def check_parallel_block(fn) -> bool:
    """Notebook 04: fn(block, x, position_ids, mask) -> the block's output (batch, seq, n_embd), built from
    block.ln_1, block.attn and block.mlp."""
    block, cases = _block_cases()

    def attn(h, position_ids, mask):
        return block.attn(h, position_ids, mask)[0]

    def diagnose(got, expected, args):
        _, x, position_ids, mask = args
        if isinstance(got, tuple):
            return "return only the output tensor (block.attn returns a tuple: output, KV cache, weights)"
        if hint := _shape_hint(got, expected):
            return hint
        h = block.ln_1(x)
        after_attn = x + attn(h, position_ids, mask)
        wrong = {"that is GPT-2's sequential block (the MLP reads the attention output through a second "
                 "LayerNorm); in GPT-J one ln_1(x) feeds both branches side by side":
                     after_attn + block.mlp(block.ln_1(after_attn)),
                 "add the residual: the input x itself is part of the output":
                     attn(h, position_ids, mask) + block.mlp(h),
                 "both branches read the normalised input ln_1(x), not x":
                     x + attn(x, position_ids, mask) + block.mlp(x)}
        return next((msg for msg, value in wrong.items() if torch.allclose(got, value, atol=1e-5)),
                    "compare with the block's formula: one LayerNorm, two branches (attention, MLP), one residual sum")

    with torch.no_grad():
        hint = _first_failure(fn, cases, lambda b, *a: b(*a)[0], lambda g, e: _same_tensor(g, e, 1e-5), diagnose)
    return _verdict(hint is None, "One LayerNorm, attention and MLP side by side: GPT-J's parallel block (GPT-2 runs "
                                  "them one after the other).", hint)


def _reference_last_token_index(input_ids, pad_token_id):
    """The rule of GPTJForSequenceClassification (and transformers'): the rightmost token that is not padding."""
    positions = torch.arange(input_ids.shape[1])  # (seq,)
    return (positions * (input_ids != pad_token_id)).argmax(-1)  # (batch,)


def check_last_token_index(fn) -> bool:
    """Notebook 05: fn(input_ids (batch, seq), pad_token_id) -> (batch,) index of each row's last non-pad token."""
    eos = 50256
    cases = [(torch.tensor([[5, 6, 7, 0, 0], [5, 6, 7, 8, 9]]), 0),
             (torch.tensor([[11, 12, 13, 14, 15, 16]]), eos),
             (torch.tensor([[11, 12, eos, eos], [11, 12, 13, eos], [11, eos, eos, eos]]), eos),
             (torch.tensor([[eos, eos, 11, 12], [11, 12, 13, 14]]), eos)]

    def diagnose(got, expected, args):
        input_ids, pad = args
        if hint := _shape_hint(got, expected):
            return hint
        if got.dtype.is_floating_point or got.dtype.is_complex or got.dtype == torch.bool:
            return f"return integer indices (torch.long), yours are {got.dtype}"
        if (got == input_ids.shape[1] - 1).all():
            return "that is the last position of every row, padding included: find the last token that is not padding"
        if torch.equal(got.long(), (input_ids != pad).sum(-1) - 1):
            return ("counting the real tokens works for right padding only: with left padding "
                    f"({input_ids.tolist()}, pad {pad}) the pads come first")
        return f"for input_ids={input_ids.tolist()}, pad_token_id={pad} your function returned {got.tolist()}"

    def same(got, expected):  # any integer dtype will do for indices
        return _same_tensor(got.long() if isinstance(got, torch.Tensor) and not got.dtype.is_floating_point
                            and got.dtype != torch.bool else got, expected)

    hint = _first_failure(fn, cases, _reference_last_token_index, same, diagnose)
    return _verdict(hint is None, "A classifier reads the last real token: the only one that has seen the whole text.",
                    hint)


def check_top_p(fn) -> bool:
    """Notebook 06: fn(logits (..., vocab), p) -> logits with everything outside the top-p nucleus set to -inf."""
    g = torch.Generator().manual_seed(0)
    probs = torch.tensor([0.05, 0.5, 0.15, 0.3])
    two_rows = torch.tensor([[0.05, 0.5, 0.15, 0.3], [0.7, 0.12, 0.1, 0.08]]).log()
    cases = [(probs.log(), 0.7), (probs.log(), 0.9), (probs.log(), 0.4), (probs.log(), 1.0), (two_rows, 0.6),
             (3 * torch.randn(3, 2, 50, generator=g), 0.8), (torch.randn(100, generator=g), 0.5)]

    def diagnose(got, expected, args):
        if hint := _shape_hint(got, expected):
            return hint
        logits, p = args
        kept, right_kept = ~torch.isneginf(got), ~torch.isneginf(expected)
        if got.isfinite().all() and (got >= 0).all() and torch.allclose(got.sum(-1), torch.ones(())):
            return "return the filtered logits, not probabilities (the softmax comes after the filter)"
        dropped_changed = not torch.equal(got[~right_kept], logits[~right_kept])
        if got.isfinite().all() and dropped_changed and torch.equal(got[right_kept], logits[right_kept]):
            return "set the dropped logits to -inf (float('-inf')), so that softmax gives them probability 0"
        if (kept.sum(-1) > right_kept.sum(-1)).any():
            return (f"for p={p} you keep too many tokens: keep the smallest set of most likely tokens whose "
                    "probabilities add up to p or more")
        if (kept.sum(-1) < right_kept.sum(-1)).any():
            return (f"for p={p} you keep too few tokens: the kept probabilities must add up to at least p, so the "
                    "token that crosses p stays")
        if not torch.equal(kept, right_kept):
            return "you keep the right number of tokens but not the right ones: keep the MOST likely"
        return "leave the kept logits unchanged (only the dropped ones become -inf)"

    hint = _first_failure(fn, cases, sampling.top_p_filter, lambda g, e: _same_tensor(g, e, 1e-6), diagnose)
    return _verdict(hint is None, "The nucleus adapts: few tokens when the model is sure, many when it is not.", hint)


@functools.lru_cache(maxsize=1)
def _previous_token_scores() -> torch.Tensor:
    """(n_layer, n_head): the tiny model's mean attention weight from each token to the one just before it."""
    from .checkpoint import load

    model, tok = load("tiny")
    ids = tok(PREVIOUS_TOKEN_TEXT, return_tensors="pt").input_ids  # (1, seq)
    with torch.no_grad():
        attentions = torch.stack(model(ids, output_attentions=True).attentions)[:, 0]  # (layer, head, q, k)
    return attentions.diagonal(offset=-1, dim1=-2, dim2=-1).mean(-1)  # weight of query i on key i - 1


def check_previous_token_head(answer) -> bool:
    """Notebook 07: (layer, head) of the tiny model's head that attends most to the previous token."""
    how = ("score every (layer, head) by its mean attention weight from each token to the token just before it (the "
           "diagonal just below the main one), with output_attentions=True on gt.exercises.PREVIOUS_TOKEN_TEXT")
    if answer is None:
        return _verdict(False, "", f"replace None with your (layer, head): {how}")
    try:
        layer, head = (operator.index(i) for i in answer)
    except Exception:  # not a pair of integers (a float, a string, three numbers, ...)
        return _verdict(False, "", f"give a pair of integers (layer, head), not {answer!r}")
    scores = _previous_token_scores()  # (n_layer, n_head)
    if not (0 <= layer < scores.shape[0] and 0 <= head < scores.shape[1]):
        return _verdict(False, "", f"layers go 0..{scores.shape[0] - 1} and heads 0..{scores.shape[1] - 1}")
    best = scores.max()
    ok = scores[layer, head] >= best - PREVIOUS_TOKEN_MARGIN
    one_based = ((layer - 1, head), (layer, head - 1), (layer - 1, head - 1))  # counted from 1 by mistake?
    if not ok and any(scores[i, j] >= best - PREVIOUS_TOKEN_MARGIN for i, j in one_based if i >= 0 and j >= 0):
        hint = "close: layers and heads are counted from 0"
    else:
        hint = f"head ({layer}, {head}) puts {scores[layer, head]:.2f} of its attention on the previous token, " \
               f"others put more: {how}"
    return _verdict(bool(ok), "Previous-token heads are half of an induction head, which copies patterns seen "
                              "earlier in the context.", hint)


def check_truncate_at_stop(fn) -> bool:
    """Notebook 08: fn(text, stop) -> text up to (not including) the first ``stop``; the whole text if none."""
    two_defs = "def f():\n    return 1\n\ndef g():\n    return 2\n"
    cases = [(two_defs, "\ndef "), ("x = 1\ny = 2", "\n\n"), ("<|endoftext|>after", "<|endoftext|>"),
             ("a STOP b STOP c", "STOP"), ("hello", "hello world"), ("", "\n"), ("ends\n\n", "\n\n"),
             ("a\nb\n\nc", "\n\n")]

    def diagnose(got, expected, args):
        text, stop = args
        if not isinstance(got, str):
            return f"return a str, not a {type(got).__name__}"
        if stop not in text:
            return f"when the stop string does not occur (text={text!r}, stop={stop!r}) return the whole text " \
                   f"(careful: str.find gives -1 then); yours: {got!r}"
        if got.endswith(stop):
            return "leave the stop string itself out"
        if got == text.rpartition(stop)[0]:
            return f"cut at the FIRST stop string, not the last (text={text!r}, stop={stop!r})"
        return f"for text={text!r}, stop={stop!r} your function returned {got!r}"

    hint = _first_failure(fn, cases, lambda text, stop: text.partition(stop)[0], lambda g, e: g == e, diagnose)
    return _verdict(hint is None, "Stop strings turn a model that rambles on into one that writes one function.", hint)


def check_kv_cache_bytes_per_token(answer) -> bool:
    """Notebook 09: bytes of K and V cache per token, all layers, GPT-J 6B in fp16."""
    config = GPTJConfig()  # the 6B shape
    right = memory.kv_cache_bytes_per_token(config, torch.float16)
    mistakes = [(right / 2, "half of it: does your count include both K *and* V, at 2 bytes per fp16 number?"),
                (right * 2, "twice too much: 4 bytes per number is fp32; fp16 takes 2"),
                (right / config.n_layer, "that is one layer: each of the n_layer layers keeps its own K and V"),
                (right / config.n_layer / 2, "that is one of K and V in one layer: count both, in every layer"),
                (right / config.n_head, "that is one head: each layer caches all heads (n_head x head_dim = n_embd)"),
                (right * 8, "that is bits: give bytes"), (right / 1e6, "that is MB: give bytes"),
                (right * config.n_positions, "that is a whole context: give the bytes per token")]
    return _check_number(answer, right, "bytes", mistakes,
                         "too high: per token, each layer stores one key and one value vector of n_embd numbers",
                         "too low: count the key AND the value vector (n_embd numbers each) in every layer, "
                         "x bytes per fp16 number", "The cache grows with every token and every sequence in the "
                                                    "batch: it is what limits long contexts and large batches.")


def _random_patterns(batch: int, heads: int, seq: int, seed: int) -> torch.Tensor:
    """Causal attention patterns with random rows: (batch, heads, seq, seq), each row sums to 1."""
    scores = torch.randn(batch, heads, seq, seq, generator=torch.Generator().manual_seed(seed)) * 2
    return (scores + make_mask(None, seq, seq, torch.float32, "cpu")).softmax(-1)


def check_induction_score(fn) -> bool:
    """Notebook 10: fn(pattern (batch, heads, seq, seq), n) -> (heads,), the mean attention from each token of the
    second copy (the last n positions) to the token after its earlier copy (n - 1 back)."""
    from .circuits import induction_score

    cases = [(_random_patterns(1, 3, 11, 0), 5), (_random_patterns(2, 2, 8, 1), 4), (_random_patterns(3, 4, 13, 2), 6)]

    def offset_score(pattern, n, back):  # the mean attention from the second copy to `back` positions earlier
        q = torch.arange(pattern.shape[-1] - n, pattern.shape[-1])
        return pattern[:, :, q, q - back].mean(dim=(0, 2))

    def diagnose(got, expected, args):
        pattern, n = args
        if isinstance(got, torch.Tensor) and tuple(got.shape) == tuple(pattern.shape[:2]):
            return "one score per head: average over the batch as well as over the query positions"
        if hint := _shape_hint(got, expected):
            return hint
        if torch.allclose(got, offset_score(pattern, n, n)):
            return ("that is the attention to the earlier copy of the same token (n back), a duplicate-token score; "
                    "an induction head looks at the token AFTER that copy: n - 1 back")
        if torch.allclose(got, offset_score(pattern, n, n - 2)) or torch.allclose(got, offset_score(pattern, n, 1)):
            return "wrong distance: from query position q, the key to read is q - n + 1"
        return f"for n={n} and a pattern of shape {tuple(pattern.shape)} your scores differ: average only over the " \
               "queries of the second copy (the last n positions)"

    hint = _first_failure(fn, cases, induction_score, lambda g, e: _same_tensor(g, e, 1e-6), diagnose)
    return _verdict(hint is None, "An induction head scores near 1: it has found where the current token was before "
                                  "and reads what came next.", hint)


def check_dla_term(fn) -> bool:
    """Notebook 10: fn(term (..., n_embd), scale (..., 1), ln_weight, direction) -> (...), one component's share of
    a logit difference through ln_f with its scale frozen."""
    from .circuits import dla_term

    g = torch.Generator().manual_seed(0)
    cases = [(torch.randn(3, 5, 16, generator=g) + 1, torch.rand(3, 5, 1, generator=g) + 0.5,
              torch.randn(16, generator=g), torch.randn(16, generator=g)),
             (torch.randn(8, generator=g) - 2, torch.tensor([1.7]), torch.rand(8, generator=g), torch.randn(8, generator=g))]

    def diagnose(got, expected, args):
        term, scale, weight, direction = args
        if hint := _shape_hint(got, expected):
            return hint
        centred = term - term.mean(-1, keepdim=True)
        mistakes = [((term / scale * weight) @ direction, "subtract the term's mean over n_embd first: ln_f centres the "
                                                         "whole sum, which is the same as centring every term"),
                    ((centred * weight) @ direction, "divide by the frozen scale: ln_f divides the whole sum by it"),
                    ((centred / scale) @ direction, "multiply by ln_weight (ln_f's weight) before the dot product"),
                    ((centred * scale * weight) @ direction, "divide by the scale, do not multiply")]
        return next((hint for wrong, hint in mistakes if torch.allclose(got, wrong, atol=1e-5)),
                    "your share differs: ((term - mean) / scale * ln_weight) . direction")

    hint = _first_failure(fn, cases, dla_term, lambda g, e: _same_tensor(g, e, 1e-5), diagnose)
    return _verdict(hint is None, "With the scale frozen ln_f is linear, so the shares add up to the logit "
                                  "difference (plus the biases).", hint)


def check_zero_ablate(fn) -> bool:
    """Notebook 10: fn(z (batch, seq, heads, head_dim), head) -> z with that head's output zeroed."""
    from .circuits import zero_ablate

    g = torch.Generator().manual_seed(0)
    cases = [(torch.randn(2, 5, 3, 4, generator=g), 1), (torch.randn(1, 7, 4, 8, generator=g), 3),
             (torch.randn(3, 4, 4, 2, generator=g), 0)]

    def diagnose(got, expected, args):
        z, head = args
        if hint := _shape_hint(got, expected):
            return hint
        if not got.any():
            return "zero only the chosen head; the other heads keep their outputs"
        wrong_axis = z.clone()
        wrong_axis[:, head] = 0
        if torch.equal(got, wrong_axis):
            return "z is (batch, seq, heads, head_dim): that zeroed a position. Heads are the third axis: z[:, :, head]"
        if torch.equal(got, z):
            return "the head's output is still there: set z[:, :, head] to 0 (on a copy) and return it"
        return f"for head={head} your result differs: only z[:, :, {head}] should change, to 0"

    hint = _first_failure(fn, cases, zero_ablate, _same_tensor, diagnose)
    return _verdict(hint is None, "Used as a hook on h.<layer>.attn.z, this removes one head from the forward pass.",
                    hint)
