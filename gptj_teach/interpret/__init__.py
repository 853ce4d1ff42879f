"""Looking inside the model: activations (every activation by name, hooks that read or change them), circuits
(logit attribution, induction scores, ablation, activation patching), induction (watch an induction head form)."""

import importlib

MODULES = {'activations', 'circuits', 'induction'}


def __getattr__(name):
    """``gt.interpret.activations`` and the like: the module, imported on first use."""
    if name in MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
