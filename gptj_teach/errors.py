"""The errors gptj_teach raises on purpose. Each message names the argument, says what it received and what to do.

``except gt.GPTJTeachError`` catches ours and nothing else. Each is also the built-in exception it resembles,
so code written with ``except ValueError`` / ``except TypeError`` keeps working.
"""


class GPTJTeachError(Exception):
    """Base class of every error raised by gptj_teach for a caller's mistake or a bad file."""


class InputError(GPTJTeachError, ValueError):
    """An argument of the right type whose value is wrong: out of range, of the wrong shape, inconsistent."""


class InputTypeError(GPTJTeachError, TypeError):
    """An argument of the wrong type (a list where a tensor is wanted, a float where a whole number is)."""


class CheckpointError(GPTJTeachError, ValueError):
    """A checkpoint that cannot be found, read or fitted to its config."""
