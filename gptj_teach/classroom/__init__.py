"""The classroom: exercises (the checks of the notebooks' your-turn cells, one module a notebook) and student (the
student edition of the notebooks, for nbgrader or by hand)."""

import importlib

MODULES = {'exercises', 'student'}


def __getattr__(name):
    """``gt.classroom.exercises`` and the like: the module, imported on first use."""
    if name in MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
