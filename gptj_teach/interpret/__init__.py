"""Looking inside the model: activations (every activation by name, hooks that read or change them), circuits
(logit attribution, induction and offset scores, OV copying scores, ablation, activation patching), induction (watch
a copying circuit form, and test whether it is an induction head)."""

import importlib

MODULES = {"activations", "circuits", "induction"}


def __getattr__(name):
    """``gt.interpret.activations`` and the like: the module, imported on first use."""
    if name in MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
