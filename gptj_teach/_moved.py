"""The old flat module names (``gptj_teach.rotary``, ``gptj_teach.viz``, ...) for one release, with a warning.

Version 0.2 moved every module into a subpackage that says what it is for (``gptj/`` the model, ``generation/``,
``interpret/``, ``train/``, ``show/``, ``classroom/``). An old name still imports, as the very same module
object as the new one (so a patch through either name is seen by both), and warns where to import it from. No
file is left at the old place: ``gt.rotary`` and ``from gptj_teach import rotary`` go through the package's
``__getattr__``, ``import gptj_teach.rotary`` through ``OldNames``, a finder on ``sys.meta_path``.
"""

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

MOVED = {  # old name (under gptj_teach) -> new name; the old ones go in 0.3
    "tokenizer": "gptj.tokenizer",
    "rotary": "gptj.rotary",
    "attention": "gptj.attention",
    "cache": "gptj.cache",
    "block": "gptj.block",
    "model": "gptj.model",
    "outputs": "gptj.outputs",
    "sizes": "gptj.sizes",
    "sampling": "generation.sampling",
    "fast": "generation.fast",
    "activations": "interpret.activations",
    "circuits": "interpret.circuits",
    "induction": "interpret.induction",
    "corpus": "train.corpus",
    "training": "train.loop",
    "fused_loss": "train.fused_loss",
    "viz": "show.viz",
    "bertviz_views": "show.bertviz_views",
    "widgets": "show.widgets",
    "explorer": "show.explorer",
    "memory": "show.memory",
    "student": "classroom.student",
    "exercises": "classroom.exercises",
}


def caller_level() -> int:
    """The stacklevel of the first frame outside the import machinery and this package: the line of the learner's
    own ``import`` or ``gt.rotary``, which is where the warning should point. (``warnings.warn`` skips the import
    machinery's frames by itself, so only this package's frames are counted.)"""
    frame, level = sys._getframe(2), 2
    while frame is not None and (
        frame.f_code.co_filename.startswith("<frozen")
        or frame.f_globals.get("__name__", "").split(".")[0] == "gptj_teach"
    ):
        level += not frame.f_code.co_filename.startswith("<frozen")
        frame = frame.f_back
    return level


def redirect(old: str):
    """Make the module named ``gptj_teach.<old>`` the moved module itself, and warn (a FutureWarning, which
    Jupyter and Python show by default, unlike a DeprecationWarning raised inside a library)."""
    new = MOVED[old]
    sys.modules[f"gptj_teach.{old}"] = module = importlib.import_module(f"gptj_teach.{new}")
    warnings.warn(
        f"gptj_teach.{old} moved to gptj_teach.{new}: import it from there (the old name goes in 0.3)",
        FutureWarning,
        stacklevel=caller_level(),
    )
    return module


class OldNames(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``import gptj_teach.<old name>``: the import system asks this finder first; it hands back the moved module."""

    def find_spec(self, fullname, path=None, target=None):
        package, _, old = fullname.partition(".")
        if package == "gptj_teach" and old in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        module = redirect(spec.name.partition(".")[2])  # the moved module itself
        self.own = module.__spec__, module.__loader__  # the import system writes ours over them: put them back
        return module

    def exec_module(self, module):
        module.__spec__, module.__loader__ = self.own  # executed already, under its new name


def install() -> None:
    """Put ``OldNames`` on ``sys.meta_path`` once (the package's ``__init__`` calls this)."""
    if not any(isinstance(finder, OldNames) for finder in sys.meta_path):
        sys.meta_path.insert(0, OldNames())
