"""Pictures and widgets: viz (tokens, rotary, attention maps, distributions), bertviz_views (bertviz, offline too),
widgets (the sampler: temperature and top-p sliders), explorer (a widget over the activations), memory (what fits
where). Needs the notebook extras (matplotlib, ipywidgets, bertviz); the model does not."""

import importlib

MODULES = {"bertviz_views", "explorer", "memory", "viz", "widgets"}


def __getattr__(name):
    """``gt.show.bertviz_views`` and the like: the module, imported on first use."""
    if name in MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
