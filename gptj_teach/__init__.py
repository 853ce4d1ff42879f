"""gptj_teach: GPT-J 6B built from scratch in PyTorch, one readable component at a time.

    import gptj_teach as gt
    model, tok = gt.load("tiny")                   # the small GPT-J shipped with the package
    ids = tok("def fib(n):", return_tensors="pt").input_ids
    print(tok.decode(gt.generate(model, ids, max_new_tokens=30)[0]))

The folders, in the order a student meets them:

    gptj/        the model itself, pure PyTorch, read top to bottom: tokenizer, sizes, rotary, attention, cache,
                 block, outputs, model
    generation/  choosing tokens (sampling), the decode loop (loop: generate, stream), the compiled path (fast)
    show/        pictures and widgets: viz, bertviz_views, widgets (the sampler), explorer, memory (what fits)
    interpret/   looking inside: activations (every activation by name, hooks), circuits, induction
    train/       training your own: corpus, loop, fused_loss, lora
    classroom/   exercises (one module a notebook) and student (the student edition of the notebooks)

and beside them the doors to the outside world: checkpoint (load and save), reference (the one module that
calls transformers' GPT-J), parity (the green / red lines of the notebooks), checks and errors (every input
checked, one clear message), saving, cli.
"""

import importlib
from typing import TYPE_CHECKING

from . import _moved
from .errors import CheckpointError, GPTJTeachError, InputError, InputTypeError

if TYPE_CHECKING:  # for readers and type checkers; at run time __getattr__ imports each on first use
    from .api import GPTJForCausalLM, GPTJForQuestionAnswering, GPTJForSequenceClassification, GPTJModel
    from .checkpoint import load
    from .generation.loop import generate, stream
    from .gptj.tokenizer import load_tokenizer

__version__ = "0.2.0"
__all__ = [
    "CheckpointError",
    "GPTJTeachError",
    "InputError",
    "InputTypeError",
    "GPTJForCausalLM",
    "GPTJForQuestionAnswering",
    "GPTJForSequenceClassification",
    "GPTJModel",
    "generate",
    "load",
    "load_tokenizer",
    "stream",
]
# the public names that need torch and transformers, and where they live: imported on first use, so that
# `import gptj_teach.classroom.student` (what nbgrader_config.py does) or `gptj-teach --help` does not pay the
# seconds of importing torch and transformers
LAZY = {
    "GPTJForCausalLM": "api",
    "GPTJForQuestionAnswering": "api",
    "GPTJForSequenceClassification": "api",
    "GPTJModel": "api",
    "load": "checkpoint",
    "generate": "generation.loop",
    "stream": "generation.loop",
    "load_tokenizer": "gptj.tokenizer",
}
SUBPACKAGES = {"gptj", "generation", "show", "interpret", "train", "classroom"}
MODULES = {"api", "checkpoint", "reference", "parity", "checks", "errors", "saving", "cli"}
_moved.install()


def __getattr__(name):
    """Import the subpackages and modules on first use (``gt.show.viz``), so the core needs no plotting stack; the
    old flat names (``gt.show.viz``) still work for one release, with a FutureWarning (``_moved.py``)."""
    if name in LAZY:
        globals()[name] = value = getattr(importlib.import_module(f".{LAZY[name]}", __name__), name)
        return value
    if name in SUBPACKAGES or name in MODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _moved.MOVED:
        globals()[name] = module = _moved.redirect(name)  # warned once: `from gptj_teach import viz` asks twice
        return module
    raise AttributeError(f"module 'gptj_teach' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *LAZY, *SUBPACKAGES, *MODULES})
