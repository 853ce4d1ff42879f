"""gptj_teach: GPT-J 6B built from scratch in PyTorch, one readable component at a time.

    import gptj_teach as gt
    model, tok = gt.load("tiny")                   # the small GPT-J shipped with the package
    ids = tok("def fib(n):", return_tensors="pt").input_ids
    print(tok.decode(gt.generate(model, ids, max_new_tokens=30)[0]))

Modules, in the order a student meets them: tokenizer, rotary, attention, cache, block, model, checkpoint,
sampling, generation (fast), viz, bertviz_views, widgets, memory, exercises; then looking inside: activations
(every activation by name; hooks that change them), circuits (logit attribution, induction heads, ablation,
activation patching), explorer (a widget over the cache), induction (watch an induction head form); then
training: corpus, training, fused_loss; and student (the student edition of the notebooks).
"""

import importlib

from .checkpoint import load
from .errors import CheckpointError, GPTJTeachError, InputError, InputTypeError
from .model import GPTJForCausalLM, GPTJForQuestionAnswering, GPTJForSequenceClassification, GPTJModel
from .generation import generate, stream
from .tokenizer import load_tokenizer

__version__ = "0.1.0"
__all__ = ["CheckpointError", "GPTJTeachError", "InputError", "InputTypeError", "GPTJForCausalLM",
           "GPTJForQuestionAnswering", "GPTJForSequenceClassification",
           "GPTJModel", "generate", "load", "load_tokenizer", "stream"]


def __getattr__(name):
    """Import the notebook-side modules (viz, widgets, ...) on first use, so the core needs no plotting stack."""
    if name in {"viz", "widgets", "memory", "exercises", "sampling", "rotary", "attention", "block", "tokenizer",
                "parity", "checks", "model", "checkpoint", "reference", "outputs", "errors", "bertviz_views",
                "cli", "fast", "cache", "generation", "sizes", "activations", "circuits", "explorer", "induction",
                "corpus", "training", "fused_loss", "student", "saving"}:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'gptj_teach' has no attribute {name!r}")
