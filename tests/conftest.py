"""Shared fixtures: small random GPT-J configs, each as a transformers model and ours sharing its weights."""

import logging
import os
from pathlib import Path

import pytest
import torch
import transformers
from hypothesis import settings

import gptj_teach as gt

ROOT = Path(__file__).resolve().parents[1]

# In CI every property test draws the same examples on every run (a failure there is a bug, never bad luck);
# on a developer's machine hypothesis keeps exploring new ones and remembers the failures it finds.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

# transformers announces some deprecations through its logger rather than the warnings module (5.24's
# `past_key_values` -> `cache` rename, for one). Keep its warnings on and fail the test that triggers one.
transformers.logging.set_verbosity_warning()
transformers.logging.disable_progress_bar()


class DeprecationRecords(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        if "deprecat" in record.getMessage().lower():
            self.messages.append(record.getMessage())


# The tests and notebooks that call the API of a dependency that moves between releases: transformers as the
# reference, peft, TransformerLens, torch.compile / torch.export, the tokenizer classes. CI's version matrix (lowest,
# newest, transformers 5.23) runs these alone (`-m reference`): the rest exercises our own code, which the
# gate already runs at the locked versions and which would only spend the matrix's minutes a second time.
REFERENCE = {
    "test_activations.py", "test_checkpoint.py", "test_circuits.py", "test_exercises.py", "test_fast.py",
    "test_model_parity.py", "test_rotary_attention_block.py", "test_sampling.py", "test_tiny.py", "test_tokenizer.py",
    "test_training.py", "test_widgets.py",
    "00_start_here.ipynb", "01_tokenizer.ipynb", "02_rotary.ipynb", "03_attention.ipynb", "04_parallel_block.ipynb",
    "05_model_and_checkpoint.ipynb", "05b_heads_and_logit_lens.ipynb", "06_sampling.ipynb", "08_use_cases.ipynb",
    "09_speed_and_precision.ipynb", "12_fine_tune.ipynb",
}


# The files that take longest, longest first: they start first, so that two workers (make test's -n 2 --dist
# loadfile) finish together instead of one running a long notebook alone at the end. Order only: every file runs.
LONGEST_FIRST = [
    "09_speed_and_precision.ipynb", "11b_induction_head_forms.ipynb", "12_fine_tune.ipynb", "test_grading.py",
    "test_student_edition.py",
    "test_fast.py", "10_train_your_own.ipynb", "test_hostile_files.py", "test_load_memory.py", "test_sampler.py",
    "test_bertviz.py",
]


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: LONGEST_FIRST.index(item.path.name) if item.path.name in LONGEST_FIRST else 99)
    if (ROOT / "notebooks").is_dir():  # in the repository (a test copies this file elsewhere to try its guards)
        folders = ("tests", "tests/browser", "notebooks")
        named = REFERENCE | set(LONGEST_FIRST)
        stale = sorted(n for n in named if not any((ROOT / folder / n).exists() for folder in folders))
        assert not stale, f"conftest.REFERENCE or LONGEST_FIRST names files that do not exist: {stale}"
    for item in items:
        if item.path.name in REFERENCE:
            item.add_marker(pytest.mark.reference)


@pytest.fixture(autouse=True)
def no_transformers_deprecation_logged():
    handler = DeprecationRecords()
    logger = logging.getLogger("transformers")
    logger.addHandler(handler)
    yield
    logger.removeHandler(handler)
    assert not handler.messages, f"transformers logged a deprecation: {handler.messages}"

# Odd sizes on purpose: head_dim 16 / 8 / 32, rotary on part or all of each head, n_inner not 4 x n_embd.
CONFIGS = {
    "small": dict(n_embd=48, n_head=3, rotary_dim=6, n_layer=2),
    "odd": dict(n_embd=40, n_head=5, rotary_dim=4, n_layer=3, n_inner=72),
    "full-rotary": dict(n_embd=64, n_head=2, rotary_dim=32, n_layer=1),
}


def make_config(name="small", **overrides) -> transformers.GPTJConfig:
    """A random-weights GPT-J config; vocab 97 with eos = 0 (inside the vocabulary)."""
    kwargs = dict(vocab_size=97, n_positions=64, bos_token_id=0, eos_token_id=0, **CONFIGS[name])
    return transformers.GPTJConfig(**{**kwargs, **overrides})


def make_pair(config, cls_name="GPTJForCausalLM", seed=0):
    """(transformers model, our model sharing its tensors), both in eval mode.

    The reference runs transformers' eager attention (fp32 scores, like ours): the implementation that the
    bit-equality tests compare with, whatever a release picks by default (5.24 switched the default to sdpa).
    """
    import gptj_teach as gt

    torch.manual_seed(seed)
    hf = gt.reference.build(config, cls_name)
    with torch.no_grad():  # transformers zero-inits biases; random ones make the parity test stronger
        for name, p in hf.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.02)
    return hf, getattr(gt, cls_name).from_transformers(hf).eval()


@pytest.fixture(params=list(CONFIGS))
def pair(request):
    return make_pair(make_config(request.param))


def left_padded_batch(vocab=97, seed=1):
    """Three rows of 9 tokens; rows 1 and 2 are left-padded by 3 and 5 tokens. Returns ids, mask, positions."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (3, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[1, :3] = 0
    mask[2, :5] = 0
    ids = ids.masked_fill(mask == 0, 0)
    positions = gt.gptj.model.positions_from_mask(mask)  # what transformers' generate passes (tested in test_sampling)
    return ids, mask, positions
