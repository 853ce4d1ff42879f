"""Hostile input, round three: training, circuits, activations, pictures, the memory plan and the exercise checks
answer a mistake with one of our errors, naming the argument (or give the right answer); never a hang, a NaN
or a raw torch / matplotlib / bertviz error. Tiny random models throughout (make_config), never the tiny checkpoint.
"""

import copy
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from helpers import make_config  # noqa: E402

import gptj_teach as gt  # noqa: E402
from gptj_teach.classroom import exercises  # noqa: E402
from gptj_teach.classroom.exercises import grading  # noqa: E402
from gptj_teach.errors import GPTJTeachError, InputError, InputTypeError  # noqa: E402
from gptj_teach.interpret import activations, circuits, induction  # noqa: E402
from gptj_teach.show import bertviz_views, memory, viz  # noqa: E402
from gptj_teach.train import corpus  # noqa: E402
from gptj_teach.train import loop as training  # noqa: E402

IDS = torch.tensor([[5, 17, 33, 2, 90, 41]])


@pytest.fixture(scope="module")
def run(model):
    """(logits, every activation) of IDS."""
    return activations.run_with_cache(model, IDS)


@pytest.fixture(scope="module")
def tok():
    return gt.load_tokenizer()


# ---- training ------------------------------------------------------------------------------------------------
CORPUS = torch.randint(0, 97, (400,), generator=torch.Generator().manual_seed(0))
SMALL = dict(steps=4, batch=2, seq=8, lr=1e-2, eval_every=2, eval_windows=2, bf16=False)


def fit(model, recipe=None, train_ids=CORPUS, valid_ids=CORPUS[:50], **kwargs):
    recipe = recipe or training.Recipe(**SMALL)
    return training.fit(
        model,
        training.adamw(model, SMALL["lr"]),
        recipe,
        train_ids,
        valid_ids,
        torch.Generator().manual_seed(0),
        **kwargs,
    )


@pytest.mark.parametrize(
    "settings, word",
    [
        (dict(steps=0), "recipe.steps"),
        (dict(steps=-5), "recipe.steps"),
        (dict(steps=None), "budget"),
        (dict(minutes=0.0, steps=None), "recipe.minutes"),
        (dict(lr=-1e-3), "recipe.lr"),
        (dict(lr=math.nan), "recipe.lr"),
        (dict(eval_every=0), "recipe.eval_every"),
        (dict(warmup=1.0), "recipe.warmup"),
        (dict(clip=-1.0), "recipe.clip"),
        (dict(batch=2.5), "recipe.batch"),
        (dict(eval_windows=0), "recipe.eval_windows"),
        (dict(bf16=1), "recipe.bf16"),
    ],
)
def test_a_recipe_that_would_hang_or_train_backwards_is_refused(model, settings, word):
    with pytest.raises(GPTJTeachError, match=word):
        training.Recipe(**{**SMALL, **settings})
    recipe = training.Recipe(**SMALL)
    for name, value in settings.items():  # changed after it was made: fit checks again
        setattr(recipe, name, value)
    with pytest.raises(GPTJTeachError, match=word):
        fit(copy.deepcopy(model), recipe)


@pytest.mark.parametrize(
    "arguments, word",
    [
        (dict(valid_ids=CORPUS[:0]), "valid_ids holds 0 tokens"),
        (dict(train_ids=CORPUS[:5]), "train_ids holds 5"),
        (dict(train_ids=CORPUS + 97), "vocabulary"),
        (dict(valid_ids=CORPUS.float()), "valid_ids must hold integer"),
        (dict(on_eval="plot"), "on_eval"),
    ],
)
def test_fit_refuses_bad_data_before_the_first_step(model, arguments, word):
    with pytest.raises(GPTJTeachError, match=word):
        fit(copy.deepcopy(model), **arguments)


def test_a_nan_loss_stops_fit_at_that_step_with_the_last_finite_weights(model, monkeypatch):
    model, kept = copy.deepcopy(model), {}
    loss_of = training.next_token_loss
    calls = iter(range(100))

    def nan_at_third_step(model, x, bf16=False):
        loss = loss_of(model, x, bf16)
        return loss * math.nan if torch.is_grad_enabled() and next(calls) == 2 else loss

    monkeypatch.setattr(training, "next_token_loss", nan_at_third_step)
    recipe = training.Recipe(**{**SMALL, "eval_every": 1})
    with pytest.raises(InputError, match="step 3: the loss is nan"):
        fit(model, recipe, on_eval=lambda history: kept.update(copy.deepcopy(model.state_dict())))
    assert all(torch.equal(p, kept[name]) for name, p in model.state_dict().items())  # the weights after step 2
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_gradients_left_by_an_interrupted_run_are_not_added_in(model):
    clean, dirty = copy.deepcopy(model), copy.deepcopy(model)
    for p in dirty.parameters():
        p.grad = torch.full_like(p, 1e3)  # what a KeyboardInterrupt inside backward leaves
    first, second = fit(clean), fit(dirty)
    assert first.train == second.train
    assert all(torch.equal(a, b) for a, b in zip(clean.parameters(), dirty.parameters()))  # the same run, op for op


def test_fit_saves_nothing_unless_asked(model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fit(copy.deepcopy(model))
    assert list(tmp_path.iterdir()) == []


# ---- circuits and induction ---------------------------------------------------------------------------------------
def metric(logits):
    return circuits.logit_difference(logits, 3, 7)


@pytest.mark.parametrize(
    "clean, corrupt, word",
    [
        (IDS, IDS[:, :4], "same shape"),
        (IDS[:, :4], IDS, "same shape"),
        (IDS, IDS, "same score"),
        (IDS, torch.tensor([[5, 17, 33, 2, 90, 97]]), "outside the vocabulary"),
        (IDS, IDS[0], "corrupt_ids"),
    ],
)
def test_patching_refuses_prompts_that_do_not_line_up(model, clean, corrupt, word):
    with pytest.raises(GPTJTeachError, match=word):
        circuits.patch_residual(model, clean, corrupt, metric)


def test_patching_refuses_a_metric_that_is_not_a_function_and_names_that_are_not_names(model):
    corrupt = torch.tensor([[5, 17, 60, 2, 90, 41]])
    with pytest.raises(InputTypeError, match="metric"):
        circuits.patch_residual(model, IDS, corrupt, 3)
    with pytest.raises(InputTypeError, match="names"):
        circuits.patch_residual(model, IDS, corrupt, metric, names=5)


@pytest.mark.parametrize(
    "call, word",
    [
        (lambda m, cache, logits: circuits.direct_logit_attribution(m, cache, 97, 3), "right must be in"),
        (lambda m, cache, logits: circuits.direct_logit_attribution(m, cache, -1, 3), "right must be in"),
        (lambda m, cache, logits: circuits.direct_logit_attribution(m, cache, 3, 2**40), "wrong must be in"),
        (lambda m, cache, logits: circuits.direct_logit_attribution(m, cache, 3, 4, pos=6), "pos must be in"),
        (lambda m, cache, logits: circuits.direct_logit_attribution(m, {}, 3, 4), "cache has no 'embed'"),
        (lambda m, cache, logits: circuits.head_outputs(m, cache, 2), "layer must be in"),
        (lambda m, cache, logits: circuits.residual_terms(m, [], 0), "cache must be the dict"),
        (lambda m, cache, logits: circuits.zero_ablate(cache["h.0.attn.z"], 3), "head"),
        (lambda m, cache, logits: circuits.zero_ablate(cache["h.0.attn.z"], -1), "head"),
        (lambda m, cache, logits: circuits.logit_difference(logits, -1, 3), "right must be in"),
        (lambda m, cache, logits: circuits.logit_difference(logits, 3, 4, pos=-7), "pos must be in"),
        (lambda m, cache, logits: circuits.logit_difference(logits[0], 3, 4), "logits must have shape"),
        (lambda m, cache, logits: circuits.token_losses(logits, IDS[:, :3]), "ids must be"),
        (lambda m, cache, logits: circuits.induction_score(cache["h.0.attn.pattern"], 0), "n .* must be in"),
        (lambda m, cache, logits: circuits.induction_score(cache["h.0.attn.pattern"], 6), "n .* must be in"),
        (lambda m, cache, logits: circuits.induction_score(cache["h.0.attn.pattern"][0], 2), "pattern must be"),
        (lambda m, cache, logits: circuits.induction_scores({"embed": cache["embed"]}, 2), "no attention pattern"),
        (lambda m, cache, logits: circuits.repeated_tokens(0), "n must be"),
        (lambda m, cache, logits: circuits.repeated_tokens(4, high=0), "high must be"),
    ],
)
def test_circuits_refuse_out_of_range_tokens_positions_layers_and_heads(model, run, call, word):
    logits, cache = run
    with pytest.raises(GPTJTeachError, match=word):
        call(model, cache, logits)


def test_negative_positions_still_count_from_the_end(model, run):
    logits, cache = run
    assert torch.equal(circuits.logit_difference(logits, 3, 7, pos=-1), circuits.logit_difference(logits, 3, 7, pos=5))
    labels, values = circuits.direct_logit_attribution(model, cache, 3, 7, pos=-1)
    assert torch.allclose(values.sum(0), logits[:, -1, 3] - logits[:, -1, 7], atol=1e-4)


@pytest.mark.parametrize(
    "arguments, word",
    [
        (dict(n=1), "n must be >= 2"),
        (dict(every=0), "every must be >= 1"),
        (dict(lr=-1.0), "lr must be > 0"),
        (dict(steps=-1), "steps must be >= 0"),
        (dict(config="small"), "config must be"),
        (dict(n=40, config=make_config("small")), r"n_positions \(64\) must be at least 2 n = 80"),
        (dict(callback=3), "callback"),
    ],
)
def test_train_induction_refuses_settings_that_divide_by_zero_or_cannot_fit(arguments, word):
    with pytest.raises(GPTJTeachError, match=word):
        induction.train_induction(**{"steps": 0, "n": 8, **arguments})


# ---- the corpus ------------------------------------------------------------------------------------------------
def test_the_corpus_functions_refuse_by_name():
    vocab = corpus.CompactVocabulary(torch.tensor([3, 5, 5, 9]), full_size=10)
    assert vocab.encode(torch.tensor([9, 4])).tolist() == [2, 0] and vocab.decode(torch.tensor([1])).tolist() == [5]
    for call, word in [
        (lambda: vocab.encode(torch.tensor([10])), "ids holds ids from 10 to 10"),
        (lambda: vocab.decode(torch.tensor([-1])), "compact holds ids"),
        (lambda: vocab.unseen_fraction([1, 2]), "ids must be a torch.Tensor"),
        (lambda: corpus.split_files([], every=0), "every must be >= 1"),
        (lambda: corpus.stdlib_files(3), "root must be"),
        (lambda: corpus.encode_files([], None), "tok must be a tokenizer"),
    ]:
        with pytest.raises(GPTJTeachError, match=word):
            call()


# ---- activations ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("names", [5, [5], {"h.0.ln_1": 1}, b"embed"])
def test_names_that_are_not_names_are_refused(model, names):
    with pytest.raises(InputTypeError, match="names must be"):
        activations.run_with_cache(model, IDS, names)


@pytest.mark.parametrize(
    "change, word",
    [(lambda x: x.double(), "torch.float64"), (lambda x: x.to("meta"), "meta"), (lambda x: x.long(), "torch.int64")],
)
def test_a_hook_that_returns_another_dtype_or_device_is_refused_by_name(model, change, word):
    with pytest.raises(InputError, match=f"'h.0.mlp.out' must return None .* got .*{word}"):
        activations.run_with_hooks(model, IDS, {"h.0.mlp.out": change})


# ---- pictures ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def attentions(model):
    with torch.no_grad():
        return model(IDS, output_attentions=True).attentions


LABELS = list("abcdef")


@pytest.mark.parametrize(
    "call, word",
    [
        (lambda a, tok: viz.attention_heatmap(a[0], LABELS), "attn must be a non-empty tensor of 2"),  # 4-D
        (lambda a, tok: viz.attention_heatmap(a[0][0, 0], LABELS[:3]), "3 token labels for attention over 6"),
        (lambda a, tok: viz.attention_heatmap(a[0][0, 0], "abcdef"), "tokens must be a list"),
        (lambda a, tok: viz.attention_grid([], LABELS), "attentions must be"),
        (lambda a, tok: viz.attention_grid(a, LABELS, layer=2), "layer must be in"),
        (lambda a, tok: viz.attention_grid(a, LABELS, layer=-1), "layer must be in"),
        (lambda a, tok: viz.attention_grid((a[0], a[1][:, :2]), LABELS), "same shape"),
        (lambda a, tok: viz.attention_grid(None, LABELS), "output_attentions=True"),
        (lambda a, tok: viz.plot_sinusoids(32, 7), "rotary_dim must be even"),
        (lambda a, tok: viz.plot_sinusoids(0, 8), "n_positions"),
        (lambda a, tok: viz.token_labels(tok, [50400]), "token id must be in"),
        (lambda a, tok: viz.token_text(tok, -1), "token id must be in"),
        (lambda a, tok: viz.token_labels(tok, "abc"), "ids must be"),
        (lambda a, tok: viz.plot_distribution(torch.rand(10), tok, k=20), "k must be in"),
        (
            lambda a, tok: viz.plot_distribution(torch.rand(10), tok, k=3, highlight=torch.ones(4, dtype=torch.bool)),
            "highlight",
        ),
        (lambda a, tok: bertviz_views.head_view(a, LABELS[:5]), "5 token labels for attention over 6"),
        (lambda a, tok: bertviz_views.head_view(a, LABELS + ["g"]), "7 token labels"),
        (lambda a, tok: bertviz_views.head_view(a, LABELS, layer=2), "layer must be in"),
        (lambda a, tok: bertviz_views.head_view(a, LABELS, heads=[3]), r"heads\[0\] must be in"),
        (lambda a, tok: bertviz_views.head_view(a, LABELS, decimals=-1), "decimals must be in"),
        (lambda a, tok: bertviz_views.model_view(a, LABELS, decimals=0), "decimals must be in"),
        (lambda a, tok: bertviz_views.model_view(a, LABELS, include_layers=[0, 5]), r"include_layers\[1\]"),
        (lambda a, tok: bertviz_views.model_view([], LABELS), "attentions must be"),
        (lambda a, tok: bertviz_views.model_view(a, LABELS, offline="yes"), "offline must be True or False"),
    ],
)
def test_pictures_refuse_what_they_cannot_draw(attentions, tok, call, word):
    try:
        with pytest.raises(GPTJTeachError, match=word):
            call(attentions, tok)
    finally:
        plt.close("all")


def test_a_token_id_read_out_of_a_tensor_is_a_token_id(tok):
    ids = torch.tensor([[15496, 995]])  # "Hello world"
    assert viz.token_labels(tok, [ids[0, 0], ids[0, 1]]) == viz.token_labels(tok, [15496, 995]) == ["Hello", "·world"]
    with pytest.raises(GPTJTeachError, match="token id must be a whole number"):
        viz.token_labels(tok, [torch.tensor(1.0)])


# ---- the memory plan --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "arguments, word",
    [
        (dict(context=-1), "context must be >= 0"),
        (dict(batch=0.5), "batch must be a whole number"),
        (dict(batch=0), "batch must be >= 1"),
        (dict(config="6B"), "config must be a transformers.GPTJConfig"),
        (dict(config=make_config("small", n_layer=-2)), "config.n_layer must be >= 1"),
        (dict(dtype="half"), "dtype must be one of"),
        (dict(dtype=torch.float64), "dtype must be one of"),
    ],
)
def test_the_memory_plan_refuses_what_has_no_size(arguments, word):
    with pytest.raises(GPTJTeachError, match=word):
        memory.plan(**arguments)


@pytest.mark.parametrize(
    "name, dtype",
    [("float16", torch.float16), ("torch.bfloat16", torch.bfloat16), ("float32", torch.float32), ("int8", torch.int8)],
)
def test_the_memory_plan_takes_dtype_names_as_load_does(name, dtype):
    assert memory.plan(dtype=name) == memory.plan(dtype=dtype)
    assert memory.bytes_per_number(name) == memory.bytes_per_number(dtype)


# ---- exercise checks ---------------------------------------------------------------------------------------------
def test_an_endless_loop_is_stopped_and_reported(monkeypatch, capsys):
    monkeypatch.setattr(grading, "TIME_LIMIT", 0.3)

    def forever(x):
        while True:
            try:
                x = x + 1
            except Exception:  # a learner's catch-all must not swallow the stop
                pass

    assert exercises.check_rotate_every_two(forever) is False
    assert "took longer than 0.3 s" in capsys.readouterr().out


def test_ctrl_c_in_the_learners_function_is_a_hint_not_a_traceback(capsys):
    def interrupted(x):
        raise KeyboardInterrupt

    assert exercises.check_rotate_every_two(interrupted) is False
    assert "you interrupted your function" in capsys.readouterr().out


def test_the_time_limit_leaves_no_alarm_behind(monkeypatch):
    import signal

    before = signal.getsignal(signal.SIGALRM)
    assert exercises.check_rotate_every_two(gt.gptj.rotary.rotate_every_two) is True
    assert signal.getsignal(signal.SIGALRM) == before and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
