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


def _reference_next_token_loss(logits, ids):
    """transformers' rule: the logits at position t are scored against the token at t + 1."""
    vocab = logits.shape[-1]
    return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, vocab).float(), ids[:, 1:].reshape(-1))


def check_next_token_loss(fn) -> bool:
    """Notebook 11: fn(logits (batch, seq, vocab), ids (batch, seq)) -> the mean next-token cross-entropy."""
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
    """Notebook 11: the loss (nats/token) of a model that gives all 50400 tokens the same probability."""
    vocab = tokenizer.load_tokenizer().__len__()
    right = math.log(vocab)
    mistakes = [(math.log2(vocab), "that is in bits (log base 2): the loss uses the natural log (nats)"),
                (math.log10(vocab), "that is log base 10: the loss uses the natural log"),
                (1 / vocab, "that is the probability of each token: the loss is minus its log")]
    return _check_number(answer, right, "nats", mistakes, "too high: -log(1 / vocab_size)",
                         "too low: the loss is -log of the probability given to the right token, 1 / vocab_size",
                         "An untrained model is as unsure as it can be: the loss starts at ln(vocab) and falls.")


def check_learning_rate(fn) -> bool:
    """Notebook 11: fn(progress, peak, warmup, floor) -> linear warm-up, then cosine from peak to floor x peak."""
    from .training import learning_rate

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


def _lora_trainable(r: int) -> int:
    """Trainable parameters when peft puts rank-r LoRA on q_proj and v_proj of the tiny model's classifier (2 labels)
    and trains its score head whole: counted by peft itself, on the meta device (nothing allocated)."""
    import peft

    from .checkpoint import TINY
    from .model import GPTJForSequenceClassification

    config = GPTJConfig.from_pretrained(TINY, num_labels=2)
    with torch.device("meta"):
        model = GPTJForSequenceClassification(config)
    lora = peft.LoraConfig(r=r, lora_alpha=2 * r, target_modules=["q_proj", "v_proj"], modules_to_save=["score"])
    return peft.get_peft_model(model, lora).get_nb_trainable_parameters()[0]


def check_lora_parameter_count(answer) -> bool:
    """Notebook 12: trainable parameters of rank-8 LoRA on q_proj, v_proj of the tiny classifier, score head included.
    A count is exact: no tolerance."""
    from .checkpoint import TINY

    config = GPTJConfig.from_pretrained(TINY)
    right, d, r = _lora_trainable(8), config.n_embd, 8
    mistakes = {right - 2 * d: "close: the score head (n_embd x 2 labels) is trained too",
                (right - 2 * d) // 2 + 2 * d: "count both q_proj and v_proj",
                right - config.n_layer * 2 * r * d: "each adapter has two matrices: A (r x n_embd) and B (n_embd x r)",
                (right - 2 * d) // config.n_layer + 2 * d: "that is one layer: LoRA sits in every layer"}
    value, hint = _as_number(answer, "parameters")
    if hint is None and value != right:
        hint = mistakes.get(value, "per layer: 2 adapters (q_proj, v_proj), each A (r x n_embd) + B (n_embd x r); "
                                   "plus the score head (n_embd x 2)")
    return _verdict(hint is None, "A few ten-thousand numbers steer a model of millions: that is why LoRA fits a T4.",
                    hint)


def check_lora_merge(fn) -> bool:
    """Notebook 12: fn(weight (out, in), A (r, in), B (out, r), alpha, r) -> the merged weight W + alpha / r * B @ A."""
    g = torch.Generator().manual_seed(0)
    cases = [(torch.randn(6, 4, generator=g), torch.randn(2, 4, generator=g), torch.randn(6, 2, generator=g), 4, 2),
             (torch.randn(5, 5, generator=g), torch.randn(3, 5, generator=g), torch.randn(5, 3, generator=g), 3, 3)]

    def diagnose(got, expected, args):
        weight, a, b, alpha, r = args
        if hint := _shape_hint(got, expected):
            return hint + " (B @ A is (out, r) @ (r, in) = (out, in), the weight's shape)"
        if torch.allclose(got, weight + b @ a):
            return "scale the update by alpha / r"
        return "the merged weight is W + (alpha / r) * (B @ A)"

    hint = _first_failure(fn, cases, lambda w, a, b, alpha, r: w + alpha / r * (b @ a),
                          lambda got, exp: _same_tensor(got, exp, 1e-5), diagnose)
    return _verdict(hint is None, "After the merge the adapter costs nothing at inference: one matrix, as before.",
                    hint)


def check_nf4_weights_gb(answer) -> bool:
    """Notebook 12: GB (1e9 bytes) of GPT-J 6B's weights stored in 4 bits (half a byte) per parameter."""
    right = memory.parameter_count(GPTJConfig()) / 2 / memory.GB
    mistakes = [(right * 2, "that is 8 bits (1 byte) per parameter: 4 bits is half a byte"),
                (right * 4, "that is fp16: 4 bits is a quarter of fp16's 16"),
                (right * 8, "that is bits: give GB (divide by 8 bits per byte, then by 1e9)")]
    return _check_number(answer, right, "GB", mistakes, "too high: parameters x 0.5 bytes / 1e9",
                         "too low: parameters x 0.5 bytes / 1e9", "3 GB of weights: the 6B and its LoRA training "
                         "fit a 16 GB T4 with room for activations.")
