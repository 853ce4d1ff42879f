"""The classroom: exercises (the checks of the notebooks' your-turn cells, one module a notebook), student (the
student edition of the notebooks, for nbgrader or by hand), honest (the hidden tests nbgrader runs when it
grades), hidden_tests (the tool that writes them into a notebook), and two small helpers notebooks call:
``grading_mode()`` and ``fallback(yours, ours)``."""

import importlib
import os

MODULES = {"exercises", "student", "honest", "hidden_tests"}
GRADING_ENV = "GPTJ_TEACH_GRADING"  # set to 1 by the repository's nbgrader_config.py for nbgrader's kernels
YOUR_TURN = "Your turn:"  # the start of the message a cleared solution raises (student.py writes it)


def grading_mode() -> bool:
    """True while nbgrader grades the notebook (``GPTJ_TEACH_GRADING=1``): a slow demo cell that grades nothing
    may skip or shrink its work, e.g. ``new_tokens = 4 if gt.classroom.grading_mode() else 32``. (A whole cell can
    be skipped with the cell tag ``skip-when-grading`` instead: see ``student.SKIP_TAG``.)"""
    return os.environ.get(GRADING_ENV, "") not in ("", "0")


class fallback:  # noqa: N801 (used like a function: `my_f = gt.classroom.fallback(my_f, package_f)`)
    """The learner's function, or the package's while the learner's is still the student edition's stub.

    Put ``my_f = gt.classroom.fallback(my_f, ours)`` right after a your-turn function, outside its solution
    block: the later cells that call ``my_f`` then run in an unfilled notebook too (with one visible note that
    they use the package's answer) instead of failing one after the other. The checks and nbgrader's hidden tests
    grade ``.yours``, the learner's own function, never ``ours``.
    """

    def __init__(self, yours, ours):
        self.yours, self.ours, self.noted = yours, ours, False
        self.__name__ = getattr(yours, "__name__", "your function")
        self.__doc__ = getattr(yours, "__doc__", None)

    def __call__(self, *args, **kwargs):
        try:
            return self.yours(*args, **kwargs)
        except NotImplementedError as error:
            if not str(error).startswith(YOUR_TURN):  # the learner's own NotImplementedError is theirs to see
                raise
        if not self.noted:
            name = getattr(self.ours, "__qualname__", "<lambda>")
            print(
                f"note: {self.__name__} is not written yet; this cell uses the package's "
                f"{'answer' if name == '<lambda>' else name} instead"
            )
            self.noted = True
        return self.ours(*args, **kwargs)


def __getattr__(name):
    """``gt.classroom.exercises`` and the like: the module, imported on first use."""
    if name in MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
