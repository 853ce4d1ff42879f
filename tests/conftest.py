"""Shared fixtures (the tiny checkpoint, random small models) and the run's guards; plain helpers: helpers.py."""

import logging
import os
from pathlib import Path

import pytest
import transformers
from helpers import CONFIGS, make_config, make_pair  # noqa: F401  (CONFIGS: the configs the fixtures draw)
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
    "test_activations.py",
    "test_checkpoint.py",
    "test_circuits.py",
    "test_exercises.py",
    "test_fast.py",
    "test_model_parity.py",
    "test_rotary_attention_block.py",
    "test_sampling.py",
    "test_tiny.py",
    "test_tokenizer.py",
    "test_training.py",
    "test_widgets.py",
    "00_start_here.ipynb",
    "01_tokenizer.ipynb",
    "02_rotary.ipynb",
    "03_attention.ipynb",
    "04_parallel_block.ipynb",
    "05_model_and_checkpoint.ipynb",
    "05b_heads_and_logit_lens.ipynb",
    "06_sampling.ipynb",
    "08_use_cases.ipynb",
    "09_speed_and_precision.ipynb",
    "12_fine_tune.ipynb",
}


# The files that take longest, longest first: they start first, so that two workers (make test's -n 2 --dist
# loadfile) finish together instead of one running a long notebook alone at the end. Order only: every file runs.
LONGEST_FIRST = [
    "09_speed_and_precision.ipynb",
    "11b_induction_head_forms.ipynb",
    "12_fine_tune.ipynb",
    "test_grading.py",
    "test_student_edition.py",
    "test_fast.py",
    "10_train_your_own.ipynb",
    "test_hostile_files.py",
    "test_load_memory.py",
    "test_sampler.py",
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


@pytest.fixture(params=list(CONFIGS))
def pair(request):
    """(transformers model, ours) of each small config in turn."""
    return make_pair(make_config(request.param))


@pytest.fixture(scope="module")
def model(request):
    """Our model with random weights, of the test file's ``MODEL_CONFIG`` (a ``make_config(...)``; "small" when
    the file names none): one per test file, so tests in a file that changes it must leave it as they found it."""
    return make_pair(getattr(request.module, "MODEL_CONFIG", None) or make_config("small"))[1]


@pytest.fixture(scope="module")
def tiny():
    """(the tiny checkpoint as our model, the tokenizer), loaded once per test file."""
    return gt.load("tiny")


@pytest.fixture(scope="module")
def tiny_hf(tiny):
    """transformers' GPT-J on the very tensors of ``tiny`` (copied, eager attention): the reference to compare with,
    the same weights even if the checkpoint on disk is re-exported."""
    hf = gt.reference.build(tiny[0].config)
    hf.load_state_dict(tiny[0].state_dict(), strict=True)
    return hf
