"""What every exercise shares: calling a learner's function safely (a time limit, errors turned into hints),
comparing its answers with the right ones, and printing the verdict."""

import contextlib
import functools
import math
import numbers
import signal
import sys
import threading

import torch
from transformers import GPTJConfig

RELATIVE_TOLERANCE = 0.02  # numeric answers may be 2% off


TIME_LIMIT = 20.0  # seconds a learner's function may run on one input (the slowest right answers take under 2 s)


PLACEHOLDER = "your function returned None: replace the `...` with your code and `return` the result"


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
    interrupted. A function wrapped by ``gt.classroom.fallback`` is checked as the learner wrote it."""
    fn = getattr(fn, "yours", fn)
    try:
        with _time_limit(TIME_LIMIT):
            return fn(*args), None
    except TookTooLong:
        return None, (
            f"your function took longer than {TIME_LIMIT:g} s on one input and was stopped: does a loop "
            "never end (a `while` whose condition never changes)?"
        )
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
    fn = getattr(fn, "yours", fn)  # gt.classroom.fallback's wrapper: the learner's own function is graded
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


@contextlib.contextmanager
def _watch_calls(codes):
    """Inside the block, record which of the code objects ``codes`` Python runs: yields the set it fills.

    ``sys.setprofile`` sees every Python function call (a module's ``forward``, ``F.layer_norm``'s wrapper), so
    a learner's function that hands the work to the package's own answer is seen, however it reached it.
    """
    seen, previous = set(), sys.getprofile()

    def profile(frame, event, arg):
        if event == "call" and frame.f_code in codes:
            seen.add(frame.f_code)

    sys.setprofile(profile)
    try:
        yield seen
    finally:
        sys.setprofile(previous)


def _watched(fn, codes, seen: set):
    """``fn`` (gt.classroom.fallback's wrapper removed) such that each call adds to ``seen`` the code objects of
    ``codes`` that it ran; ``fn`` itself when it is not callable (so the usual hint names that mistake)."""
    fn = getattr(fn, "yours", fn)
    if not callable(fn):
        return fn

    @functools.wraps(fn)
    def watched(*args):
        with _watch_calls(codes) as called:
            try:
                return fn(*args)
            finally:
                seen.update(called)

    return watched


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


@functools.lru_cache(maxsize=1)
def _small_model():
    """A small random GPT-J language model (2 layers) and two token batches, for the whole-model checks."""
    from ...api import GPTJForCausalLM

    config = GPTJConfig(n_embd=32, n_head=4, rotary_dim=4, n_layer=2, n_positions=64, vocab_size=97)
    with torch.random.fork_rng(devices=[]):  # leave the notebook's random stream alone
        torch.manual_seed(0)
        model = GPTJForCausalLM(config).eval()
        for parameter in model.parameters():
            torch.nn.init.normal_(parameter, std=0.3)
        return model, torch.randint(0, 97, (2, 6)), torch.randint(0, 97, (1, 9))
