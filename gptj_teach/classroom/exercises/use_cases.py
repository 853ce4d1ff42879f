"""Notebook 08, Use cases: the checks of its "your turn" cells."""

from .grading import _first_failure, _verdict


def check_truncate_at_stop(fn) -> bool:
    """Notebook 08: fn(text, stop) -> text up to (not including) the first ``stop``; the whole text if none."""
    two_defs = "def f():\n    return 1\n\ndef g():\n    return 2\n"
    cases = [
        (two_defs, "\ndef "),
        ("x = 1\ny = 2", "\n\n"),
        ("<|endoftext|>after", "<|endoftext|>"),
        ("a STOP b STOP c", "STOP"),
        ("hello", "hello world"),
        ("", "\n"),
        ("ends\n\n", "\n\n"),
        ("a\nb\n\nc", "\n\n"),
    ]

    def diagnose(got, expected, args):
        text, stop = args
        if not isinstance(got, str):
            return f"return a str, not a {type(got).__name__}"
        if stop not in text:
            return (
                f"when the stop string does not occur (text={text!r}, stop={stop!r}) return the whole text "
                f"(careful: str.find gives -1 then); yours: {got!r}"
            )
        if got.endswith(stop):
            return "leave the stop string itself out"
        if got == text.rpartition(stop)[0]:
            return f"cut at the FIRST stop string, not the last (text={text!r}, stop={stop!r})"
        return f"for text={text!r}, stop={stop!r} your function returned {got!r}"

    hint = _first_failure(fn, cases, lambda text, stop: text.partition(stop)[0], lambda g, e: g == e, diagnose)
    return _verdict(hint is None, "Stop strings turn a model that rambles on into one that writes one function.", hint)
