"""Hostile input for every public entry point, drawn by hypothesis: each call either gives the right answer (the
same as the well-formed call it stands for) or raises one of our errors, naming the argument. Never a raw torch
error, a crash in the tokenizer, a NaN, or an allocation the input cannot justify.

One argument is drawn at a time, the others kept well-formed, so a failure names its argument. The values:
None, bools, huge and negative integers, numpy scalars, nan and inf, strings, bytes, lists, torch dtypes and
devices, and tensors of every dtype (bool ... complex) and of 0 to 4 dimensions with ids in and out of range.
"""

import functools
import math

import numpy as np
import pytest
import torch
from helpers import make_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gptj_teach as gt
from gptj_teach.errors import GPTJTeachError

TENSOR_DTYPES = [
    torch.bool,
    torch.uint8,
    torch.int8,
    torch.int16,
    torch.int32,
    torch.int64,
    torch.float16,
    torch.bfloat16,
    torch.float32,
    torch.float64,
    torch.complex64,
]


@st.composite
def tensors(draw):
    """A tensor of any dtype, 0 to 4 dims of 0 to 5, values from -3 to 120 (vocabulary 97, n_positions 64)."""
    shape = draw(st.lists(st.integers(0, 5), max_size=4))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    low, high = draw(st.sampled_from([(0, 2), (0, 97), (-3, 120)]))
    return torch.randint(low, high, shape, generator=generator).to(draw(st.sampled_from(TENSOR_DTYPES)))


ANYTHING = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.integers(-3, 130),
    st.floats(),
    st.text(max_size=4),
    st.binary(max_size=4),
    st.lists(st.integers(-3, 120), max_size=3),
    st.integers(-5, 130).map(np.int64),
    st.floats(-2, 2).map(np.float32),
    st.sampled_from(
        [
            np.bool_(True),
            torch.float16,
            torch.int8,
            torch.float32,
            "float16",
            "int8",
            "cpu",
            "cuda",
            "cuda:7",
            "meta",
            "mps",
            "x",
        ]
    ),
    st.just(torch.device("meta")),
    tensors(),
)

MODEL_CONFIG = make_config("small")  # vocab 97, n_positions 64, 2 layers: conftest's `model` fixture builds ours
IDS = torch.tensor([[5, 17, 33, 2]])


def forward(model, **kwargs):
    return model(**kwargs).logits


def generate(model, **kwargs):
    torch.manual_seed(0)
    return gt.generate(model, **kwargs)


def stream(model, **kwargs):
    return "".join(gt.stream(model, TOKENIZER, **kwargs))


class ByteTokenizer:
    """Our tiny random model has a 97-token vocabulary: a stand-in tokenizer, one id per character (mod 97)."""

    eos_token_id = 0

    def __call__(self, text, return_tensors="pt"):
        return type("Encoding", (), {"input_ids": torch.tensor([[ord(c) % 96 + 1 for c in text]])})

    def decode(self, ids):
        return "".join(chr(32 + i) for i in ids)


TOKENIZER = ByteTokenizer()

# entry point -> (call, well-formed arguments, {argument: words one of which the error message must contain})
ENTRIES = {
    "forward": (
        forward,
        dict(input_ids=IDS),
        {
            "input_ids": ["input_ids"],
            "attention_mask": ["attention_mask"],
            "position_ids": ["position_ids"],
            "labels": ["labels"],
            "cache": ["cache"],
            "use_cache": ["use_cache"],
            "output_attentions": ["output_attentions"],
            "output_hidden_states": ["output_hidden_states"],
        },
    ),
    "generate": (
        generate,
        dict(input_ids=IDS, max_new_tokens=3, do_sample=True, top_p=0.9),
        {
            "input_ids": ["input_ids"],
            "max_new_tokens": ["max_new_tokens"],
            "do_sample": ["do_sample"],
            "temperature": ["temperature"],
            "top_k": ["top_k"],
            "top_p": ["top_p"],
            "attention_mask": ["attention_mask"],
            "eos_token_id": ["eos_token_id"],
        },
    ),
    "stream": (
        stream,
        dict(prompt="def f", max_new_tokens=3, do_sample=True, seed=0),
        {
            "prompt": ["prompt"],
            "max_new_tokens": ["max_new_tokens"],
            "temperature": ["temperature"],
            "top_k": ["top_k"],
            "top_p": ["top_p"],
            "seed": ["seed"],
            "do_sample": ["do_sample"],
        },
    ),
}


# The modules that came later: the memory plan, training's recipe and evaluation, circuits, activations.
GENERATOR = torch.Generator().manual_seed(0)
PATTERN = torch.softmax(torch.randn(1, 2, 8, 8, generator=GENERATOR), dim=-1)  # (batch, heads, seq, seq)
Z = torch.randn(1, 4, 3, 5, generator=GENERATOR)  # (batch, seq, heads, head_dim)
LOGITS = torch.randn(1, 4, 97, generator=GENERATOR)  # (batch, seq, vocab)
RECIPE_FIELDS = (
    "steps",
    "minutes",
    "batch",
    "seq",
    "lr",
    "warmup",
    "weight_decay",
    "clip",
    "eval_every",
    "eval_windows",
    "bf16",
)


def cache_names(model, **kwargs):
    return list(gt.interpret.activations.run_with_cache(model, **kwargs)[1])


def evaluate(model, **kwargs):
    return gt.train.loop.evaluate(model, **kwargs)


ENTRIES.update(
    {
        "plan": (
            gt.show.memory.plan,
            dict(config=None, dtype=torch.float16, context=2048, batch=1),
            {"config": ["config"], "dtype": ["dtype"], "context": ["context"], "batch": ["batch"]},
        ),
        "Recipe": (
            gt.train.loop.Recipe,
            dict(steps=4, batch=2, seq=8),
            {field: [f"recipe.{field}", "budget"] for field in RECIPE_FIELDS},
        ),
        "evaluate": (
            evaluate,
            dict(ids=IDS[0].repeat(5), seq=4, max_windows=2),
            {"ids": ["ids"], "seq": ["seq"], "max_windows": ["max_windows"]},
        ),
        "run_with_cache": (
            cache_names,
            dict(input_ids=IDS, names=["h.0.attn.pattern"]),
            {"input_ids": ["input_ids"], "names": ["names", "activation"]},
        ),
        "induction_score": (
            gt.interpret.circuits.induction_score,
            dict(pattern=PATTERN, n=4),
            {"pattern": ["pattern"], "n": ["n "]},
        ),
        "zero_ablate": (gt.interpret.circuits.zero_ablate, dict(z=Z, head=1), {"z": ["z ", "head"], "head": ["head"]}),
        "logit_difference": (
            gt.interpret.circuits.logit_difference,
            dict(logits=LOGITS, right=3, wrong=7, pos=-1),
            {"logits": ["logits", "right", "wrong", "pos"], "right": ["right"], "wrong": ["wrong"], "pos": ["pos"]},
        ),
    }
)
FLOAT_TENSORS = {"pattern", "z", "logits"}  # float arguments: an integer-valued float tensor stays a float tensor
ON_THE_MODEL = {"forward", "generate", "stream", "run_with_cache", "evaluate"}  # their call takes the model first
CASES = [(entry, argument) for entry, (_, _, arguments) in ENTRIES.items() for argument in arguments]


def normalised(value, argument=None):
    """The well-formed value a drawn one stands for, where one exists (numpy scalars, small integer types)."""
    if argument in FLOAT_TENSORS:
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, torch.Tensor) and not value.dtype.is_complex:
        return value.long() if not value.dtype.is_floating_point or (value == value.round()).all() else value
    return value


def same(a, b) -> bool:
    if isinstance(a, torch.Tensor):  # bit-equal by construction: the same call on the same values and shapes
        return a.shape == b.shape and torch.equal(a, b)
    return a == b


@pytest.mark.parametrize("entry, argument", CASES, ids=[f"{e}-{a}" for e, a in CASES])
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(value=ANYTHING)
def test_every_argument_is_answered_or_refused_by_name(model, entry, argument, value):
    call, good, names = ENTRIES[entry]
    call = functools.partial(call, model) if entry in ON_THE_MODEL else call
    try:
        result = call(**{**good, argument: value})
    except GPTJTeachError as error:
        assert any(word in str(error) for word in names[argument]), f"{argument}={value!r}: {error}"
        return
    if isinstance(result, torch.Tensor) and result.dtype.is_floating_point:
        assert torch.isfinite(result).all(), f"{argument}={value!r} gave non-finite logits"
    if (argument, value) == ("seed", None):
        return  # no seed: a draw of its own, nothing to compare with
    assert same(result, call(**{**good, argument: normalised(value, argument)})), f"{argument}={value!r}"


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(
    logits=st.lists(st.floats(-1e4, 1e4), min_size=2, max_size=8),
    temperature=st.floats(min_value=1e-300, max_value=1e300),
    top_p=st.floats(0.01, 1.0),
)
def test_any_finite_positive_temperature_gives_a_distribution(logits, temperature, top_p):
    """Tiny temperatures behave like greedy (all the mass on the best logits), huge ones like uniform: no NaN."""
    probs = gt.generation.sampling.logits_to_probs(torch.tensor(logits), temperature, 0, top_p)
    assert torch.isfinite(probs).all() and math.isclose(probs.sum().item(), 1.0, rel_tol=1e-5)
    best = torch.tensor(logits) == max(logits)
    if temperature < 1e-30:
        assert math.isclose(probs[best].sum().item(), 1.0, rel_tol=1e-5)


@pytest.mark.parametrize(
    "argument, values, words",
    [
        (
            "name_or_path",
            [None, 3, b"tiny", ["tiny"], "", "./no/such/dir", "no-such-user/no-such-model"],
            ["name_or_path", "directory", "download", "checkpoint"],
        ),
        ("revision", [3, b"main", ["main"]], ["revision"]),
        ("dtype", [torch.int8, torch.complex64, "int8", "half", 16, True], ["dtype"]),
        ("device", ["meta", "cuda", "cuda:7", "gpu", 0, torch.device("meta"), True], ["device"]),
        ("progress", ["yes", 1], ["progress"]),
    ],
)
def test_load_answers_or_refuses_each_argument_by_name(monkeypatch, argument, values, words):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a hub id must fail at once, not wait on a closed network
    for value in values:
        with pytest.raises(GPTJTeachError) as caught:
            gt.load(**{argument: value})
        assert any(word in str(caught.value) for word in words), (value, caught.value)


@pytest.mark.parametrize("dtype", [torch.int8, torch.bool, torch.complex64, "int8", 8])
def test_save_pretrained_refuses_a_dtype_that_would_destroy_the_weights(model, tmp_path, dtype):
    with pytest.raises(GPTJTeachError, match="dtype"):
        model.save_pretrained(tmp_path, dtype=dtype)
    assert not (tmp_path / "model.safetensors").exists()


@pytest.mark.parametrize("dtype", [torch.float16, "bfloat16", torch.float32])
def test_save_pretrained_takes_float_dtypes_by_object_or_name(model, tmp_path, dtype):
    model.save_pretrained(tmp_path, dtype=dtype)
    reloaded, _ = gt.load(tmp_path)
    assert (reloaded(IDS).logits - model(IDS).logits).abs().max() < 0.05


@pytest.mark.parametrize("tok", [None, "gpt2", 3])
def test_stream_and_sampler_refuse_what_is_not_a_tokenizer(model, tok):
    with pytest.raises(GPTJTeachError, match="tok must be a tokenizer"):
        next(gt.stream(model, tok, "def f"))
    with pytest.raises(GPTJTeachError, match="tok must be a tokenizer"):
        gt.show.widgets.sampler(model, tok)


@pytest.mark.parametrize("model", [None, "tiny", torch.nn.Linear(2, 2)])
def test_generate_stream_and_sampler_refuse_what_is_not_our_model(model):
    for call in (
        lambda: gt.generate(model, IDS),
        lambda: next(gt.stream(model, TOKENIZER, "x")),
        lambda: gt.show.widgets.sampler(model, TOKENIZER),
    ):
        with pytest.raises(GPTJTeachError, match="model must be a gptj_teach GPTJForCausalLM"):
            call()


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(prompt=3), "prompt"),
        (dict(max_new_tokens=0), "max_new_tokens"),
        (dict(max_new_tokens=True), "max_new_tokens"),
        (dict(seed=-1), "seed"),
        (dict(seed=1.5), "seed"),
    ],
)
def test_sampler_widget_refuses_bad_settings_by_name(model, kwargs, word):
    pytest.importorskip("ipywidgets")
    with pytest.raises(GPTJTeachError, match=word):
        gt.show.widgets.sampler(model, TOKENIZER, **kwargs)


def test_errors_are_ours_and_the_builtin_kind():
    assert issubclass(gt.InputError, ValueError) and issubclass(gt.InputTypeError, TypeError)
    assert issubclass(gt.CheckpointError, ValueError)
    assert all(issubclass(e, gt.GPTJTeachError) for e in (gt.InputError, gt.InputTypeError, gt.CheckpointError))
