"""Self-checking exercises for the notebooks' "your turn" cells: ``check_<name>(your_answer)``.

Every check works the right answer out *live* with the package (``gt.tokenizer``, ``gt.rotary``,
``gt.model``, ``gt.sampling``, ``gt.memory``, the tiny model), tries your answer on several inputs, edge cases
included, and prints either ``✅ Right! <why it matters>`` or ``❌ Not yet: <a hint>``; it returns True or False.
It never raises, even when your function does: a crash is reported as ``❌ Not yet: your function raised ...``;
a function that runs longer than ``TIME_LIMIT`` seconds on one input (a loop that never ends) is stopped and
reported, and so is one you stop yourself with Ctrl-C (Jupyter: Kernel > Interrupt).
Hints point at the usual mistake (the half-split rotary of Llama, the KV-cache offset, forgetting the V of
the cache, ...) without giving the answer away. A function that still raises the student edition's
``NotImplementedError("Your turn: ...")`` is told that it is not written yet. Teachers: the committed notebooks
hold the solutions; ``notebooks/solutions/solutions.py`` has them too, as plain functions.
"""

import contextlib
import functools
import math
import numbers
import operator
import signal
import threading

import torch
from transformers import GPTJConfig

from . import memory, rotary, sampling, tokenizer
from .attention import plain_attention
from .block import GPTJBlock, gelu_new
from .model import make_mask, positions_from_mask
from .sizes import inner_dim

PREVIOUS_TOKEN_TEXT = ('def add(a, b):\n    """Return the sum of a and b."""\n    return a + b\n\n\n'
                       'for i in range(10):\n    print(add(i, i * 2))\n')  # the text check_previous_token_head reads
PREVIOUS_TOKEN_MARGIN = 0.02  # a head this close to the best previous-token score also counts
RELATIVE_TOLERANCE = 0.02  # numeric answers may be 2% off
TIME_LIMIT = 20.0  # seconds a learner's function may run on one input (the slowest right answers take under 2 s)
PLACEHOLDER = "your function returned None: replace the `...` with your code and `return` the result"


@functools.lru_cache(maxsize=1)
def _tokenizer():
    return tokenizer.load_tokenizer()


def _verdict(ok: bool, praise: str, hint: str | None) -> bool:
    """Print ``✅ Right! praise`` or ``❌ Not yet: hint``; return ok."""
    print(f"✅ Right! {praise}" if ok else f"❌ Not yet: {hint}")
    return ok


def _fresh(args: tuple) -> tuple:
    """Copies of the arguments, so that a function changing its input in place cannot spoil the next call."""
    return tuple(a.clone() if isinstance(a, torch.Tensor) else list(a) if isinstance(a, list) else a for a in args)


class TookTooLong(BaseException):
    """Raised inside a learner's function when its time is up. A BaseException, like KeyboardInterrupt, so that
    an ``except Exception`` in the learner's own code cannot swallow it."""


@contextlib.contextmanager
def _time_limit(seconds: float):
    """Raise ``TookTooLong`` in the code running inside this block once ``seconds`` have passed.

    A timer signal (SIGALRM): the OS interrupts the process and Python runs our handler between two bytecodes
    of whatever is running, so a ``while True:`` loop is stopped where it is. Signals reach only the main
    thread, which is where a Jupyter kernel runs its cells; on Windows (no SIGALRM) or in another thread the
    function runs without a limit. A single long C call (one huge matmul) is stopped when it returns.
    """
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise TookTooLong

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)  # no alarm may go off after the block
        signal.signal(signal.SIGALRM, previous)


def _call(fn, args: tuple):
    """fn(*args) under the time limit: (result, None), or (None, a hint) when it raised, took too long or was
    interrupted."""
    try:
        with _time_limit(TIME_LIMIT):
            return fn(*args), None
    except TookTooLong:
        return None, (f"your function took longer than {TIME_LIMIT:g} s on one input and was stopped: does a loop "
                      "never end (a `while` whose condition never changes)?")
    except KeyboardInterrupt:  # Ctrl-C, or Kernel > Interrupt in Jupyter
        return None, "you interrupted your function before it finished: does a loop never end?"
    except NotImplementedError as error:  # the student edition's stub, still in place
        return None, f"not written yet ({error or 'NotImplementedError'}): replace the stub with your code"
    except Exception as error:  # the learner's bug, reported as a hint
        return None, f"your function raised {type(error).__name__}: {error}"


def _first_failure(fn, cases, reference, same, diagnose) -> str | None:
    """Call ``fn`` on each case (a tuple of arguments); None when every result equals ``reference``'s, else a hint.

    same(got, expected) -> bool; diagnose(got, expected, args) -> the hint for a wrong result.
    """
    if not callable(fn):
        return f"pass your function itself, e.g. check(my_fn), not my_fn() (got a {type(fn).__name__})"
    for args in cases:
        expected = reference(*_fresh(args))
        got, hint = _call(fn, _fresh(args))
        if hint is not None:
            return hint
        if got is None and expected is not None:  # where the right answer is None, `same` judges a None
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

def _bpe_leftmost(piece: str) -> list[str]:
    """The usual wrong BPE loop: merge the leftmost known pair instead of the best-ranked one."""
    ranks, symbols = tokenizer.merge_ranks(), [tokenizer.bytes_to_unicode()[b] for b in piece.encode("utf-8")]
    while known := [pair for pair in zip(symbols, symbols[1:]) if pair in ranks]:
        symbols = tokenizer.merge_pair(symbols, known[0])
    return symbols


def check_bpe(fn) -> bool:
    """Notebook 01: fn(piece: str) -> its BPE tokens (list of str of byte symbols), as GPT-2's merges give."""
    cases = [(" Hallo",), ("Hello",), (" tokenizer",), (" lowest",), ("aaaa",), ("\n   ",), (" 😀",), ("x",)]

    def diagnose(got, expected, args):
        piece = args[0]
        symbols = [tokenizer.bytes_to_unicode()[b] for b in piece.encode("utf-8")]
        if not isinstance(got, list):
            return f"return a list of str (the tokens), not a {type(got).__name__}"
        if "".join(got) != "".join(symbols):
            return (f"for {piece!r} your tokens do not spell the piece's byte symbols {''.join(symbols)!r}: start "
                    "from byte_to_symbol[b] for each byte b of piece.encode('utf-8') (a space becomes 'Ġ')")
        if got == symbols:
            return f"for {piece!r} nothing was merged: repeat while some neighbouring pair is in `ranks`"
        if got == _bpe_leftmost(piece):
            return (f"for {piece!r} you merged the leftmost known pair first; merge the pair with the LOWEST rank "
                    "(min(known, key=ranks.get)), wherever it is")
        if got in tokenizer.bpe_steps(piece):
            return f"for {piece!r} you stopped too early: keep merging until no neighbouring pair is in `ranks`"
        return f"for {piece!r} your function returned {got!r}"

    hint = _first_failure(fn, cases, lambda piece: tokenizer.bpe_steps(piece)[-1], operator.eq, diagnose)
    return _verdict(hint is None, "That loop is all of BPE: the best-ranked pair, merged, until none is left.", hint)


def check_decode(fn) -> bool:
    """Notebook 01: fn(ids: list[int]) -> the text, as the real tokenizer decodes it."""
    tok = _tokenizer()
    texts = ["Hello world!", "  def f(x):\n        return x", "héllo 😀 wörld", "Grüße", ""]
    cases = [(tok(text).input_ids,) for text in texts]
    symbol_to_byte = {s: b for b, s in tokenizer.bytes_to_unicode().items()}

    def diagnose(got, expected, args):
        ids = args[0]
        if not isinstance(got, str):
            return f"return a str, not a {type(got).__name__}"
        pieces = tok.convert_ids_to_tokens(ids)
        if got == "".join(pieces):
            return ("you joined the tokens' byte symbols (like 'Ġ' for a space): map each symbol back to its byte, "
                    "then decode all the bytes as UTF-8")
        one_by_one = "".join(bytes(symbol_to_byte[s] for s in piece).decode("utf-8", errors="replace")
                             for piece in pieces)
        if got == one_by_one:
            return ("you decoded each token on its own: a character such as an emoji can be split over two tokens, "
                    "so join the bytes of ALL tokens first, then decode them once")
        return f"for ids={ids} your function returned {got!r}, the tokenizer gives {expected!r}"

    hint = _first_failure(fn, cases, lambda ids: tok.decode(ids), operator.eq, diagnose)
    return _verdict(hint is None, "Every byte has a symbol, so decode(encode(text)) == text for any text.", hint)


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

def check_inv_frequencies(fn) -> bool:
    """Notebook 02: fn(rotary_dim) -> (rotary_dim // 2,) float tensor, theta_i = 10000 ** (-2 i / rotary_dim)."""
    cases = [(16,), (64,), (2,), (8,)]

    def diagnose(got, expected, args):
        d = args[0]
        if isinstance(got, torch.Tensor) and got.shape == (d,):
            return f"one frequency per PAIR of dims: for rotary_dim {d}, {d // 2} of them (torch.arange(0, d, 2))"
        if hint := _shape_hint(got, expected):
            return hint
        if not got.dtype.is_floating_point:
            return f"return floating-point frequencies, yours are {got.dtype}"
        i = torch.arange(0, d, 2).double()
        if torch.allclose(got.double(), 10000 ** (i / d), rtol=1e-4):
            return "the frequencies must fall from 1 towards 0: theta_i = 1 / 10000 ** (2i / d), not 10000 ** (2i / d)"
        if torch.allclose(got.double(), 1 / 10000 ** (i / 2 / d), rtol=1e-4):
            return "the exponent is 2i / d with i the pair's index: with torch.arange(0, d, 2) that is arange / d"
        return f"for rotary_dim {d} your frequencies are {[round(t, 5) for t in got.tolist()]}"

    def same(got, expected):
        return (isinstance(got, torch.Tensor) and got.shape == expected.shape and got.dtype.is_floating_point
                and torch.allclose(got.double(), expected.double(), rtol=1e-5, atol=0))

    hint = _first_failure(fn, cases, rotary.inv_frequencies, same, diagnose)
    return _verdict(hint is None, "Fast pairs tell neighbours apart, slow pairs still differ hundreds of tokens "
                                  "apart: like the hands of a clock.", hint)


def check_apply_rotary_pos_emb(fn) -> bool:
    """Notebook 02: fn(x (batch, seq, heads, rot), sin, cos (batch, seq, rot // 2)) -> x rotated pair by pair."""
    g = torch.Generator().manual_seed(0)
    position_ids = torch.arange(7)[None]  # (1, 7)
    cases = [(torch.randn(1, 7, 3, 16, generator=g), *rotary.fixed_pos_embedding(position_ids, 16)),
             (torch.randn(2, 5, 2, 8, generator=g), *rotary.fixed_pos_embedding(torch.arange(2, 12, 2).expand(2, 5), 8)),
             (torch.randn(1, 1, 1, 2, generator=g), *rotary.fixed_pos_embedding(torch.tensor([[3]]), 2))]

    def diagnose(got, expected, args):
        x, sin, cos = args
        if hint := _shape_hint(got, expected):
            return hint
        sin_c, cos_c = torch.cat([sin, sin], -1)[:, :, None], torch.cat([cos, cos], -1)[:, :, None]
        if torch.allclose(got, x * cos_c + rotary.rotate_every_two(x) * sin_c, atol=1e-5):
            return ("each angle belongs to one adjacent PAIR: repeat it for both dims of the pair "
                    "(repeat_interleave(2) on the last dim), not torch.cat([sin, sin]) (Llama's half-split layout)")
        sin_i, cos_i = (t.repeat_interleave(2, -1)[:, :, None] for t in (sin, cos))
        if torch.allclose(got, x * cos_i - rotary.rotate_every_two(x) * sin_i, atol=1e-5):
            return "that turns every pair the wrong way: x * cos + rotate_every_two(x) * sin"
        if torch.allclose(got, x * cos_i + x * sin_i, atol=1e-5):
            return "the sin term multiplies rotate_every_two(x), not x itself"
        return "compare with the formula x' = x * cos + rotate_every_two(x) * sin, one angle per adjacent pair"

    hint = _first_failure(fn, cases, rotary.apply_rotary_pos_emb, lambda g, e: _same_tensor(g, e, 1e-5), diagnose)
    return _verdict(hint is None, "No rotation matrix needed: two multiplications and one shuffle per vector.", hint)


def _reference_causal_mask(q_len: int, kv_len: int) -> torch.Tensor:
    slots = torch.arange(kv_len - q_len, kv_len)  # (q_len,) the queries are the last q_len tokens
    return make_mask(None, slots, kv_len, torch.float32)[0, 0] == 0  # (q_len, kv_len), True = may attend


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

def _qk_cases():
    """Queries and keys: fp32, fp16 large enough that an fp16 matmul overflows, and more keys than queries."""
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(1, 3, 5, 64, generator=g), torch.randn(1, 3, 5, 64, generator=g)),
            ((150 * torch.randn(2, 2, 4, 16, generator=g)).half(), (150 * torch.randn(2, 2, 6, 16, generator=g)).half()),
            (torch.randn(1, 1, 1, 8, generator=g).bfloat16(), torch.randn(1, 1, 3, 8, generator=g).bfloat16())]


def _reference_scores(q, k):
    return torch.matmul(q.float(), k.float().transpose(-1, -2)) / math.sqrt(q.shape[-1])


def check_attention_scores(fn) -> bool:
    """Notebook 03: fn(q, k) (batch, heads, q_len / kv_len, head_dim) -> fp32 scores q k^T / sqrt(head_dim)."""

    def diagnose(got, expected, args):
        q, k = args
        if hint := _shape_hint(got, expected):
            return hint + " (every query against every key: q @ k.transpose(-1, -2))"
        if got.dtype != torch.float32:
            return (f"for {q.dtype} inputs your scores are {got.dtype}: compute them in fp32 (q.float(), k.float()), "
                    "as GPT-J does, so that long dot products neither overflow nor lose digits")
        if not torch.isfinite(got).all():
            return ("some of your scores are inf: the fp16 matmul overflowed (fp16 stops at 65504); upcast q and k "
                    "to fp32 BEFORE the matmul, not after it")
        unscaled = torch.matmul(q.float(), k.float().transpose(-1, -2))
        if torch.allclose(got, unscaled, rtol=1e-4):
            return "divide the dot products by sqrt(head_dim)"
        if torch.allclose(got, unscaled / q.shape[-1], rtol=1e-4):
            return "divide by the SQUARE ROOT of head_dim, not by head_dim itself"
        if torch.allclose(got, expected, rtol=1e-2):
            return f"close, but for {q.dtype} inputs not exact: upcast q and k to fp32 before the matmul"
        return "compare with q.float() @ k.float().transpose(-1, -2) / sqrt(head_dim)"

    hint = _first_failure(fn, _qk_cases(), _reference_scores, lambda g, e: _same_tensor(g, e, 1e-4), diagnose)
    return _verdict(hint is None, "fp32 scores and the sqrt(d) scale keep the softmax out of saturation.", hint)


def check_softmax_attention(fn) -> bool:
    """Notebook 03: fn(q, k, v, mask) -> (output (batch, heads, q_len, head_dim), weights in q's dtype), as
    gt.attention.plain_attention."""
    g = torch.Generator().manual_seed(1)
    cases = []
    for (q, k), padding in zip(_qk_cases(), [None, torch.tensor([[0, 1, 1, 1, 1, 1], [1] * 6]), None]):
        v = torch.randn(k.shape, generator=g).to(k.dtype)
        cases.append((q / 8, k / 8, v, make_mask(padding, torch.arange(k.shape[2] - q.shape[2], k.shape[2]), k.shape[2],
                                                 torch.float32)))

    def diagnose(got, expected, args):
        q, k, v, mask = args
        if not (isinstance(got, tuple) and len(got) == 2):
            return "return two things: (output, weights)"
        (out, weights), (right_out, right_weights) = got, expected
        if hint := _shape_hint(weights, right_weights):
            return "weights: " + hint
        if hint := _shape_hint(out, right_out):
            return "output: " + hint
        w = weights.detach().float()
        if not torch.allclose(w.sum(-1), torch.ones(()), atol=1e-2):
            return "each row of the weights must sum to 1: softmax over the keys (dim=-1)"
        if (w * (mask < 0)).amax() > 1e-3:
            return "some weights fall on masked keys: add the mask to the scores before the softmax"
        if weights.dtype != q.dtype:
            return f"for {q.dtype} inputs cast the fp32 weights back to {q.dtype} (.to(q.dtype)) before weights @ v"
        if not torch.allclose(w, right_weights.float(), atol=2e-3):
            return "the weights differ: softmax(q k^T / sqrt(head_dim) + mask), in fp32"
        return "the weights are right, the output is not: output = weights @ v"

    def same(got, expected):
        return (isinstance(got, tuple) and len(got) == 2 and _same_tensor(got[1], expected[1], 1e-3)
                and _same_tensor(got[0], expected[0], 1e-3))

    hint = _first_failure(fn, cases, plain_attention, same, diagnose)
    return _verdict(hint is None, "Scores, mask, softmax, weighted sum: the whole of attention, in fp32 where it "
                                  "matters.", hint)


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
    return block, [(block, x1, torch.arange(5).expand(2, 5), make_mask(None, torch.arange(5), 5, torch.float32)),
                   (block, x2, positions, make_mask(padded, torch.arange(4), 4, torch.float32))]


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
        variants = {"LayerNorm divides by the biased variance: var(..., unbiased=False)":
                        (x - mean) / torch.sqrt(x.var(-1, keepdim=True) + ln.eps) * ln.weight + ln.bias,
                    "eps goes inside the square root: sqrt(var + eps)":
                        (x - mean) / (x.var(-1, keepdim=True, unbiased=False).sqrt() + ln.eps) * ln.weight + ln.bias,
                    "then scale by ln.weight and shift by ln.bias":
                        (x - mean) / torch.sqrt(x.var(-1, keepdim=True, unbiased=False) + ln.eps)}
        return next((msg for msg, value in variants.items() if torch.allclose(got, value, atol=1e-4)),
                    "normalise each token over its features (dim=-1): subtract the mean, divide by "
                    "sqrt(variance + eps), then * ln.weight + ln.bias")

    with torch.no_grad():
        hint = _first_failure(fn, _layer_norm_cases(), lambda x, ln: ln(x), lambda g, e: _same_tensor(g, e, 1e-4),
                              diagnose)
    return _verdict(hint is None, "Every token enters attention and the MLP at the same scale, whatever its size in "
                                  "the residual stream.", hint)


def check_mlp(fn) -> bool:
    """Notebook 04: fn(h, mlp) -> mlp(h) for a gt.block.GPTJMLP: fc_in, gelu_new, fc_out (with biases)."""
    block, cases = _block_cases()
    mlp_cases = [(x, block.mlp) for _, x, _, _ in cases]

    def diagnose(got, expected, args):
        h, mlp = args
        if hint := _shape_hint(got, expected):
            return hint
        inner = mlp.fc_in(h)
        wrong = {"that is the exact GELU (erf); GPT-J uses gelu_new, the tanh approximation":
                     mlp.fc_out(torch.nn.functional.gelu(inner)),
                 "that is ReLU; GPT-J uses gelu_new": mlp.fc_out(inner.relu()),
                 "the activation goes between fc_in and fc_out": mlp.fc_out(inner),
                 "fc_in and fc_out have biases: add them (or call the Linear modules)":
                     gelu_new(h @ mlp.fc_in.weight.T) @ mlp.fc_out.weight.T}
        return next((msg for msg, value in wrong.items() if torch.allclose(got, value, atol=1e-5)),
                    "compare with fc_out(gelu_new(fc_in(h)))")

    with torch.no_grad():
        hint = _first_failure(fn, mlp_cases, lambda h, m: m(h), lambda g, e: _same_tensor(g, e, 1e-5), diagnose)
    return _verdict(hint is None, "Each token alone, widened 4x and back: where most of GPT-J's parameters live.", hint)


def _reference_last_token_index(input_ids, pad_token_id):
    """The rule of GPTJForSequenceClassification (and transformers'): the rightmost token that is not padding."""
    positions = torch.arange(input_ids.shape[1])  # (seq,)
    return (positions * (input_ids != pad_token_id)).argmax(-1)  # (batch,)


def check_last_token_index(fn) -> bool:
    """Notebook 05b: fn(input_ids (batch, seq), pad_token_id) -> (batch,) index of each row's last non-pad token."""
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

@functools.lru_cache(maxsize=1)
def _small_model():
    """A small random GPT-J language model (2 layers) and two token batches, for the whole-model checks."""
    from .model import GPTJForCausalLM

    config = GPTJConfig(n_embd=32, n_head=4, rotary_dim=4, n_layer=2, n_positions=64, vocab_size=97)
    with torch.random.fork_rng(devices=[]):  # leave the notebook's random stream alone
        torch.manual_seed(0)
        model = GPTJForCausalLM(config).eval()
        for parameter in model.parameters():
            torch.nn.init.normal_(parameter, std=0.3)
        return model, torch.randint(0, 97, (2, 6)), torch.randint(0, 97, (1, 9))


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
        return ("compare with: wte -> every block (with position_ids 0..seq-1 and the causal mask) -> ln_f -> "
                "lm_head; each block returns a tuple, its first item is the new hidden state")

    with torch.no_grad():
        hint = _first_failure(fn, cases, lambda m, ids: m(ids).logits, lambda g, e: _same_tensor(g, e, 1e-4),
                              diagnose)
    return _verdict(hint is None, "Embedding, blocks, final LayerNorm, read-out: all of GPT-J's forward pass.", hint)


def _parameter_count_configs() -> list[GPTJConfig]:
    """Two small shapes (one with n_inner set: an MLP narrower than 4 x n_embd), the tiny model and GPT-J 6B."""
    from .checkpoint import TINY

    small = dict(n_head=4, rotary_dim=4, bos_token_id=0, eos_token_id=0)  # eos inside the small vocabularies
    return [GPTJConfig(n_embd=32, n_layer=2, vocab_size=97, **small),
            GPTJConfig(n_embd=48, n_layer=3, n_inner=100, vocab_size=211, **small),
            GPTJConfig.from_pretrained(TINY), GPTJConfig()]


def _counted_parameters(config: GPTJConfig) -> int:
    """sum(p.numel()) of a GPTJForCausalLM(config) built on the meta device: shapes only, nothing allocated."""
    from .model import GPTJForCausalLM

    with torch.device("meta"):
        return sum(p.numel() for p in GPTJForCausalLM(config).parameters())


def check_parameter_count(fn) -> bool:
    """Notebook 05: fn(config) -> the number of parameters of GPTJForCausalLM(config), from the config alone."""

    def diagnose(got, expected, args):
        config = args[0]
        if isinstance(got, bool) or not isinstance(got, numbers.Real):
            return f"return the count as an int, not a {type(got).__name__}"
        if got == expected:
            return "return an int: a count is exact (use * and //, not /)"
        d, vocab, layers, inner = config.n_embd, config.vocab_size, config.n_layer, inner_dim(config)
        per_layer = 2 * d + 4 * d * d + (d * inner + inner) + (inner * d + d)
        wide = (4 * d - inner) * (2 * d + 1)  # what a 4 x n_embd MLP has more than an n_inner one
        mistakes = [(expected - vocab, "lm_head has a bias: vocab_size more numbers"),
                    (expected - d * vocab - vocab, "GPT-J's output layer lm_head is its own matrix (n_embd x "
                                                   "vocab_size, with a bias), not tied to wte as in GPT-2"),
                    (expected - d * vocab, "count both vocab_size x n_embd matrices: the embedding wte AND lm_head's "
                                           "weight (GPT-J does not tie them, GPT-2 does)"),
                    (expected + 2 * d * layers, "GPT-J's block is parallel: one LayerNorm (ln_1) per layer, no ln_2"),
                    (expected + 3 * d * layers, "q_proj, k_proj and v_proj have no biases in GPT-J"),
                    (expected + 4 * d * layers, "attention has no biases in GPT-J: q_proj, k_proj, v_proj, out_proj"),
                    (expected - (inner + d) * layers, "fc_in and fc_out have biases (the MLP's only ones)"),
                    (expected + wide * layers, "the MLP is config.n_inner wide when that is set; 4 x n_embd only "
                                               "when it is None"),
                    (expected - 2 * d, "count the final LayerNorm ln_f too"),
                    (expected - (layers + 1) * d, "a LayerNorm has a weight AND a bias: 2 x n_embd numbers"),
                    (expected - (layers - 1) * per_layer, "that is one block: the model has n_layer of them")]
        shape = f"n_embd={d}, n_layer={layers}, vocab_size={vocab}, n_inner={config.n_inner}"
        return next((hint for wrong, hint in mistakes if got == wrong),
                    f"for a config with {shape} your count is too {'high' if got > expected else 'low'}: go through "
                    "the module tree part by part (wte, each block, ln_f, lm_head), weights and biases")

    def same(got, expected):
        return isinstance(got, numbers.Integral) and not isinstance(got, bool) and got == expected

    hint = _first_failure(fn, [(config,) for config in _parameter_count_configs()], _counted_parameters, same,
                          diagnose)
    return _verdict(hint is None, "Six billion numbers from four config fields: the blocks grow with n_embd squared, "
                                  "the embedding and lm_head only with n_embd.", hint)


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

    return [moved((1, 0.125, True), (2, -0.125, True), (4, 0.125, False)),  # all within tol: None
            moved(*[(entry, 0.5, True) for entry in range(5)]),  # the embedding already differs: 0
            moved((1, -0.5, True), (3, 0.5, True)),  # a negative difference
            moved((2, 4.0, False), (4, 0.5, True)),  # one number of a layer
            moved((1, 0.5, True), (3, 4.0, True), (4, 0.5, True)),  # the first, not the worst
            moved((1, 0.25, True), (3, 0.5, True)),  # a difference of exactly tol is within it
            moved((4, 0.5, True))]  # only the last entry


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
        mistakes = [(_first_past([gap.max().item() for gap in gaps], tol), "a difference can be negative: compare the "
                     "largest ABSOLUTE difference, (a - b).abs().max(), with tol"),
                    (_first_past([gap.abs().mean().item() for gap in gaps], tol), "one number out of tolerance is "
                     "enough: compare the LARGEST |difference| of each hidden state with tol, not the mean"),
                    (_first_past(largest, tol, strict=False), "MORE than tol: a largest difference equal to tol is "
                     "still within the tolerance"),
                    (past[-1], "return the FIRST hidden state that differs, not the last"),
                    (max(range(len(largest)), key=largest.__getitem__), "return the FIRST hidden state past tol, not "
                     "the one that differs most: what goes wrong first is what to debug"),
                    (expected - 1, "off by one: return the index into the tuple, where entry 0 is the embedding and "
                                   "the output of block i is entry i + 1"),
                    (expected + 1, "off by one: count from 0 (entry 0, the embedding, is the first hidden state)")]
        return next((hint for wrong, hint in mistakes if got == wrong),
                    f"your index {got} is not the first entry i with (ours[i] - ref[i]).abs().max() > tol")

    def same(got, expected):
        if expected is None or got is None or isinstance(got, bool):
            return got is expected
        try:
            return operator.index(got) == expected
        except TypeError:
            return False

    hint = _first_failure(fn, _divergence_cases(), _reference_first_divergent_layer, same, diagnose)
    return _verdict(hint is None, "When two implementations disagree, the first layer past the tolerance is where to "
                                  "look: everything after it inherits the difference.", hint)


def check_lm_loss(fn) -> bool:
    """Notebook 05b: fn(logits (batch, seq, vocab), ids (batch, seq)) -> the mean next-token cross-entropy."""
    g = torch.Generator().manual_seed(0)
    cases = [(torch.randn(1, 7, 11, generator=g), torch.randint(0, 11, (1, 7), generator=g)),
             (3 * torch.randn(2, 5, 13, generator=g), torch.randint(0, 13, (2, 5), generator=g))]

    def reference(logits, ids):
        return torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())

    def diagnose(got, expected, args):
        logits, ids = args
        if not isinstance(got, torch.Tensor) or got.numel() != 1:
            return "return one number (a tensor with one element): the mean over all predicted tokens"
        ce = torch.nn.functional.cross_entropy
        wrong = {"the logits at position t predict the token at t + 1: drop the last position's logits and the "
                 "first token (logits[:, :-1] against ids[:, 1:])": ce(logits.flatten(0, 1), ids.flatten()),
                 "shifted the wrong way: logits[:, :-1] predict ids[:, 1:]":
                     ce(logits[:, 1:].flatten(0, 1), ids[:, :-1].flatten()),
                 "that is the perplexity exp(loss): return the loss itself": expected.exp(),
                 "take the mean over the predicted tokens, not the sum":
                     ce(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten(), reduction="sum")}
        return next((msg for msg, value in wrong.items() if torch.allclose(got.reshape(()).float(), value, rtol=1e-4)),
                    f"your loss {got.item():.4f}, the right one {expected.item():.4f}: -log softmax(logits) at the "
                    "next token, averaged")

    hint = _first_failure(fn, cases, reference, lambda g, e: isinstance(g, torch.Tensor) and g.numel() == 1
                          and torch.allclose(g.reshape(()).float(), e, rtol=1e-5), diagnose)
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
        mistakes = [(lm_head(hidden), "apply the final LayerNorm ln_f first: lm_head was trained on what ln_f gives, "
                                      "and the raw residual stream has a very different scale"),
                    (normed @ lm_head.weight.T, "lm_head has a bias: call the module, model.lm_head(...)"),
                    (normed @ body.wte.weight.T, "GPT-J reads out with its own lm_head, not the embedding matrix wte "
                                                 "(GPT-2 ties the two)"),
                    (body.h[-1].ln_1(hidden) @ lm_head.weight.T + lm_head.bias, "use the FINAL LayerNorm, "
                     "model.transformer.ln_f, not a block's ln_1"),
                    (expected.softmax(-1), "return the logits, not probabilities (no softmax)")]
        return next((hint for wrong, hint in mistakes if torch.allclose(got, wrong, atol=1e-4)),
                    "your logits differ: do what the model does after its last block, and nothing else")

    with torch.no_grad():
        hidden = model(ids_a, output_hidden_states=True).hidden_states  # the last one is after ln_f: not a case
        cases = [(model, hidden[0]), (model, hidden[1]), (model, _last_block_output(model, ids_b))]
        hint = _first_failure(fn, cases, _reference_logit_lens, lambda g, e: _same_tensor(g, e, 1e-4), diagnose)
    return _verdict(hint is None, "The model's own read-out, applied at any depth: a first look at what each layer "
                                  "already knows.", hint)


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

def check_top_k(fn) -> bool:
    """Notebook 06: fn(logits (..., vocab), k) -> logits with all but the k highest of each row set to -inf."""
    g = torch.Generator().manual_seed(0)
    probs = torch.tensor([0.05, 0.5, 0.15, 0.3])
    cases = [(probs.log(), 2), (probs.log(), 1), (probs.log(), 4), (torch.randn(50, generator=g), 10),
             (torch.randn(3, 20, generator=g), 5), (2 * torch.randn(2, 2, 30, generator=g), 3)]

    def diagnose(got, expected, args):
        logits, k = args
        if hint := _shape_hint(got, expected):
            return hint
        kept = (~torch.isneginf(got)).sum(-1)
        if got.isfinite().all() and (got >= 0).all() and torch.allclose(got.sum(-1), torch.ones(())):
            return "return the filtered logits, not probabilities (the softmax comes after the filter)"
        if logits.dim() > 1 and not (kept == k).all():
            return (f"for a batch of rows {tuple(logits.shape)} keep k = {k} in EVERY row: compare each row with its "
                    "own k-th best score (topk(...).values[..., -1:])")
        if (kept != k).any():
            return f"for k = {k} you keep {kept.flatten()[0].item()} tokens: keep exactly the k highest scores"
        if not torch.equal(~torch.isneginf(got), ~torch.isneginf(expected)):
            return "you keep k tokens but not the right ones: keep the HIGHEST scores"
        return "leave the kept logits unchanged (only the dropped ones become -inf)"

    hint = _first_failure(fn, cases, sampling.top_k_filter, lambda g, e: _same_tensor(g, e), diagnose)
    return _verdict(hint is None, "A fixed number of candidates, whether the model is sure or not: what top-p "
                                  "improves on.", hint)


def check_logits_to_probs(fn) -> bool:
    """Notebook 06: fn(logits, temperature, top_k, top_p) -> probabilities: temperature, top-k, top-p, softmax."""
    g = torch.Generator().manual_seed(0)
    logits, batch = 3 * torch.randn(200, generator=g), 3 * torch.randn(2, 200, generator=g)
    cases = [(logits, 0.8, 40, 0.9), (logits, 1.0, 0, 1.0), (logits, 0.3, 0, 0.5), (logits, 1.5, 0, 0.9),
             (logits, 2.0, 5, 1.0), (batch, 0.7, 20, 0.8)]

    def diagnose(got, expected, args):
        logits, t, k, p = args
        if hint := _shape_hint(got, expected):
            return hint
        if torch.isnan(got).any() and k == 0:
            return "top_k = 0 means no top-k cut at all (keep every token)"
        if not torch.allclose(got.sum(-1), torch.ones(())) or (got < 0).any():
            return "return probabilities: end with a softmax over the vocabulary"
        if k == 0 and ((got > 0).sum(-1) <= 1).all() and ((expected > 0).sum(-1) > 1).any():
            return "top_k = 0 means no top-k cut at all (keep every token), not keep one"
        late_t = torch.softmax(sampling.top_p_filter(sampling.top_k_filter(logits, k), p) / t, dim=-1)
        if torch.allclose(got, late_t, atol=1e-6):
            return ("the temperature comes FIRST, then top-k, then top-p: the nucleus depends on the temperature "
                    f"(T = {t}, top-p = {p})")
        return f"for T = {t}, top-k = {k}, top-p = {p} your probabilities differ: temperature -> top-k -> top-p -> softmax"

    hint = _first_failure(fn, cases, sampling.logits_to_probs, lambda g, e: _same_tensor(g, e, 1e-6), diagnose)
    return _verdict(hint is None, "The same pipeline as transformers' generate: same settings, same seed, same "
                                  "tokens.", hint)

def _reference_head_scores(attentions):
    maps = torch.stack([a[0] for a in attentions])  # (layers, heads, query, key) of the first sequence
    return maps.diagonal(offset=-1, dim1=-2, dim2=-1).mean(-1), maps[:, :, 1:, 0].mean(-1)


def check_head_scores(fn) -> bool:
    """Notebook 07: fn(attentions) -> (previous, first), each (layers, heads): the mean weight on key i - 1 and on
    key 0, over the queries i = 1 .. T-1. attentions: a tuple of (batch, heads, T, T), one per layer."""
    g = torch.Generator().manual_seed(0)
    cases = []
    for layers, heads, T in [(3, 2, 6), (2, 4, 9)]:
        scores = torch.randn(layers, 1, heads, T, T, generator=g) + make_mask(None, torch.arange(T), T, torch.float32)
        cases.append((tuple(scores.softmax(-1)),))

    def diagnose(got, expected, args):
        if not (isinstance(got, tuple) and len(got) == 2):
            return "return two tensors: (previous, first)"
        maps = torch.stack([a[0] for a in args[0]])
        for name, mine, right in zip(("previous", "first"), got, expected):
            if hint := _shape_hint(mine, right):
                return f"{name}: {hint} (layers, heads)"
        previous, first = got
        if torch.allclose(previous, maps.diagonal(0, -2, -1).mean(-1), atol=1e-6) or \
                torch.allclose(previous, maps.diagonal(0, -2, -1)[..., 1:].mean(-1), atol=1e-6):
            return "the main diagonal is each token looking at ITSELF: the previous token is diagonal(offset=-1)"
        if torch.allclose(previous, maps.diagonal(1, -2, -1).mean(-1), atol=1e-6):
            return "offset=+1 is the token AFTER (always 0: masked); the previous token is diagonal(offset=-1)"
        if not torch.allclose(previous, expected[0], atol=1e-6):
            return "previous: the mean of A[i, i - 1] over i = 1 .. T-1"
        if torch.allclose(first, maps[..., 0].mean(-1), atol=1e-6):
            return "first: leave out query 0 (it can only look at itself): A[1:, 0]"
        return "first: the mean of A[i, 0] over i = 1 .. T-1"

    def same(got, expected):
        return isinstance(got, tuple) and len(got) == 2 and all(_same_tensor(a, b, 1e-6) for a, b in zip(got, expected))

    hint = _first_failure(fn, cases, _reference_head_scores, same, diagnose)
    return _verdict(hint is None, "Two numbers per head that summarise a T x T map: how interpretability starts.", hint)


def check_best_head(fn) -> bool:
    """Notebook 07: fn(scores (layers, heads)) -> (layer, head) of the highest score, as two ints."""
    g = torch.Generator().manual_seed(0)
    cases = [(torch.rand(4, 3, generator=g),), (torch.rand(2, 5, generator=g),), (torch.rand(28, 16, generator=g),),
             (torch.rand(3, 1, generator=g),)]

    def as_pair(got):
        layer, head = got
        return operator.index(layer), operator.index(head)

    def same(got, expected):
        try:
            return as_pair(got) == expected
        except Exception:
            return False

    def diagnose(got, expected, args):
        scores = args[0]
        try:
            pair = as_pair(got)
        except Exception:  # not a pair of whole numbers
            return (f"return a pair of ints (layer, head), not {got!r}: divmod(flat index, number of heads) turns "
                    "scores.argmax() into one")
        if pair == expected[::-1]:
            return "(layer, head), in that order: the layers are the rows of scores"
        if pair == divmod(scores.argmax().item(), scores.shape[0]):
            return "divide the flat index by the number of HEADS (scores.shape[1], the length of a row)"
        return f"for scores of shape {tuple(scores.shape)} the highest is at {expected}, you gave {pair}"

    hint = _first_failure(fn, cases, lambda s: divmod(s.argmax().item(), s.shape[1]), same, diagnose)
    return _verdict(hint is None, "argmax over a flattened grid, then back to its row and column.", hint)


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
    # counted from 1 by mistake? Then both numbers are one too high (a neighbouring head alone is just wrong)
    if not ok and min(layer, head) >= 1 and scores[layer - 1, head - 1] >= best - PREVIOUS_TOKEN_MARGIN:
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
    return (scores + make_mask(None, torch.arange(seq), seq, torch.float32)).softmax(-1)


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
