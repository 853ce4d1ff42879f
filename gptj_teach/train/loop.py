"""Training a GPT-J: the next-token loss, AdamW, warm-up + cosine, held-out evaluation, samples, one loop.

* **Loss**: cross-entropy of the token that comes next, ``-log p(x[t+1] | x[..t])``, averaged over positions. An
  untrained model spreads its probability evenly over the vocabulary, so it starts at ``ln(vocab_size)``:
  ln(50400) = 10.83 nats per token. A window of seq + 1 tokens gives seq predictions: inputs ``x[:, :-1]``,
  targets ``x[:, 1:]``.
* **AdamW** (Loshchilov & Hutter 2019): Adam with weight decay applied to the weights directly, not through the
  gradient (where Adam's division by sqrt(v) would shrink it most for the weights with the largest gradients).
  Only the matrices of the linear layers decay; biases, LayerNorms and the embedding do not (minGPT's choice;
  nanoGPT and GPT-J's mesh-transformer-jax decay every 2-D tensor, the embedding included). betas (0.9, 0.95)
  as in GPT-3 (mesh-transformer-jax keeps Adam's defaults, 0.9 and 0.999).
* **Schedule**: a linear warm-up (Adam's moment estimates are noisy at first), then a cosine decay to 10 % of
  the peak (GPT-3; GPT-J's mesh-transformer-jax config does the same).
* **bf16 autocast**: matmuls in bfloat16 (fp32's range; 8 significant bits, 7 stored: about 2.4 decimal
  digits), everything that sums many numbers (softmax, LayerNorm, the loss) in fp32. On CPUs with AVX512-BF16
  and on GPUs it is ~2x faster. ``Recipe`` trains with it by default (``bf16=True``).

References: nanoGPT ``train.py``; Loshchilov & Hutter (2019) AdamW; GPT-3 paper, appendix B;
``transformers.GPTJForCausalLM`` (its loss with ``labels=`` is the one the tests compare with).
"""

import math
import time
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from ..checks import check_causal_lm, check_flag, check_number, check_positive, check_token_ids, check_whole, describe
from ..errors import InputError, InputTypeError
from ..generation.loop import generate
from ..gptj.model import cross_entropy
from .corpus import consecutive_windows, random_windows
from .fused_loss import LinearCrossEntropy


@dataclass
class Recipe:
    """One run's settings; the defaults are the shipped tiny model's (with ``scripts/train_tiny.py``'s budget)."""

    steps: int | None = 2400  # the run ends at this step, or
    minutes: float | None = None  # after this long: the schedule follows whichever budget is nearer its end
    batch: int = 8  # windows per step
    seq: int = 512  # tokens the model reads per window
    lr: float = 2e-3  # the peak learning rate
    warmup: float = 0.03  # fraction of the run spent warming up
    weight_decay: float = 0.1
    clip: float = 1.0  # gradient norm clip
    eval_every: int = 100  # steps between held-out evaluations
    eval_windows: int = 16  # held-out windows per evaluation (None: all)
    bf16: bool = True  # bf16 autocast (and the fused output layer on a CPU): on unless you say bf16=False

    def __post_init__(self):
        self.check()

    def check(self) -> "Recipe":
        """Refuse settings that would never end, divide by zero or train backwards, naming the setting."""
        if self.steps is None and self.minutes is None:
            raise InputError("a Recipe needs a budget: steps=..., minutes=..., or both (the nearer one ends it)")
        if self.steps is not None:
            check_whole(self.steps, "recipe.steps", 1)
        if self.minutes is not None:
            check_positive(self.minutes, "recipe.minutes")
        for name in ("batch", "seq", "eval_every"):
            check_whole(getattr(self, name), f"recipe.{name}", 1)
        if self.eval_windows is not None:
            check_whole(self.eval_windows, "recipe.eval_windows", 1)
        check_positive(self.lr, "recipe.lr")
        check_positive(self.clip, "recipe.clip")  # a negative clip would turn the gradient around
        check_number(self.weight_decay, "recipe.weight_decay", 0)
        if not 0 <= check_number(self.warmup, "recipe.warmup") < 1:
            raise InputError(f"recipe.warmup is the fraction of the run spent warming up: in [0, 1), got {self.warmup}")
        check_flag(self.bf16, "recipe.bf16")
        return self

    def progress(self, step: int, seconds: float) -> float:
        """How far through the run, 0 -> 1: the larger of the step and time fractions."""
        by_steps = step / self.steps if self.steps else 0.0
        return max(by_steps, seconds / (60 * self.minutes) if self.minutes else 0.0)


@dataclass
class History:
    """What a run has done so far: step, seconds, (step, loss) pairs, and samples by step."""

    step: int = 0
    seconds: float = 0.0
    train: list = field(default_factory=list)  # (step, training loss of that step's batch)
    valid: list = field(default_factory=list)  # (step, held-out loss)
    samples: dict = field(default_factory=dict)  # step -> text


def learning_rate(progress: float, peak: float, warmup: float = 0.03, floor: float = 0.1) -> float:
    """Linear warm-up from 0 to ``peak`` over the first ``warmup`` of the run, then cosine down to floor x peak."""
    if progress < warmup:
        return peak * progress / warmup
    decay = min(1.0, (progress - warmup) / (1 - warmup))  # 0 -> 1 after the warm-up
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * decay)))


def adamw(model, lr: float, weight_decay: float = 0.1, betas=(0.9, 0.95)) -> torch.optim.AdamW:
    """AdamW over two groups: linear-layer matrices decay; biases, LayerNorms and the embedding do not."""
    lr, weight_decay = check_positive(lr, "lr"), check_number(weight_decay, "weight_decay", 0)
    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.dim() == 2 and "wte" not in n]
    keep = [p for n, p in model.named_parameters() if p.requires_grad and not (p.dim() == 2 and "wte" not in n)]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": keep, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=model.device.type == "cuda")


def autocast(device: torch.device, bf16: bool):
    """bf16 autocast on ``device`` (CPU or GPU) when ``bf16``, else a context that changes nothing."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


def next_token_loss(model, x: torch.Tensor, bf16: bool = False) -> torch.Tensor:
    """Mean cross-entropy of predicting ``x[:, 1:]`` from ``x[:, :-1]``; x: (batch, seq + 1) token ids.

    bf16: the body in bf16 autocast; on a CPU the output layer and loss fused (``fused_loss.py``).
    """
    inputs, targets = x[:, :-1], x[:, 1:]  # (batch, seq) each: position t predicts token t + 1
    with autocast(x.device, bf16):
        h = model.transformer(inputs).last_hidden_state  # (batch, seq, n_embd)
    head = model.lm_head
    if bf16 and x.device.type == "cpu":
        return LinearCrossEntropy.apply(h.reshape(-1, h.shape[-1]), head.weight, head.bias, targets.reshape(-1))
    with autocast(x.device, bf16):
        logits = head(h)  # (batch, seq, vocab)
    return cross_entropy(logits, targets)  # already shifted: the window gave the inputs and the targets


def train_step(model, optimizer, x: torch.Tensor, lr: float, bf16: bool = False, clip: float = 1.0) -> float:
    """One step: loss, gradients, clip their norm, AdamW update at ``lr``. Returns the loss.

    The gradients are zeroed first (an earlier step interrupted in ``backward`` must not add its own), and a
    loss or gradient that is not finite stops the step *before* the update: the weights stay as they were.
    """
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    loss = next_token_loss(model, x, bf16)
    check_finite(loss.item(), "the loss")
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    if not torch.isfinite(norm):
        optimizer.zero_grad(set_to_none=True)
        check_finite(norm.item(), "the gradient norm")
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


def check_finite(value: float, what: str) -> None:
    """Stop training at a NaN or infinity: every later step would only spread it through the weights."""
    if not math.isfinite(value):
        raise InputError(
            f"{what} is {value}: training stopped before this update, so the model keeps the weights "
            "of the last finite step. Lower the learning rate (recipe.lr), or check the data"
        )


@torch.no_grad()
def evaluate(model, ids: torch.Tensor, seq: int, max_windows: int | None = None, bf16: bool = False) -> float:
    """Mean next-token loss (nats/token) over consecutive windows of ``ids`` (all of them, or the first few)."""
    check_causal_lm(model)
    ids = check_token_ids(ids, "ids", model.config.vocab_size, min_length=2)  # one window: one prediction at least
    check_whole(seq, "seq", 1)
    max_windows = None if max_windows is None else check_whole(max_windows, "max_windows", 1)
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for chunk in consecutive_windows(ids, seq + 1, max_windows).split(8):  # (<= 8, seq + 1)
        loss = next_token_loss(model, chunk.to(model.device), bf16)
        total, count = total + loss.item() * chunk[:, 1:].numel(), count + chunk[:, 1:].numel()
    model.train(was_training)
    return total / count


def fit(
    model, optimizer, recipe: Recipe, train_ids, valid_ids, generator, history=None, sample=None, on_eval=None
) -> History:
    """Train until the recipe's budget is spent, from ``history`` (to resume) or from step 0.

    Every ``eval_every`` steps and at the end: the held-out loss, ``sample(model)`` if given (a text kept in
    ``history.samples``), then ``on_eval(history)`` (to plot, save, ...). A tqdm bar shows loss and speed.
    Nothing is written to disk unless ``on_eval`` does it. A loss that is not finite stops the run with an
    error naming the step; the model then holds the weights of the step before.
    """
    train_ids, valid_ids = check_fit(
        model, optimizer, recipe, train_ids, valid_ids, generator, history, sample, on_eval
    )
    history = history or History()
    start = time.time() - history.seconds
    bar = tqdm(total=recipe.steps, initial=history.step, desc="training", unit="step")
    model.train()
    optimizer.zero_grad(set_to_none=True)  # gradients left by an interrupted run must not be added in
    try:
        while (progress := recipe.progress(history.step, time.time() - start)) < 1:
            x = random_windows(train_ids, recipe.batch, recipe.seq + 1, generator).to(model.device)  # (batch, seq+1)
            lr = learning_rate(progress, recipe.lr, recipe.warmup)
            try:
                loss = train_step(model, optimizer, x, lr, recipe.bf16, recipe.clip)
            except InputError as error:
                raise InputError(f"step {history.step + 1}: {error}") from None
            history.step, history.seconds = history.step + 1, time.time() - start
            history.train.append((history.step, loss))
            bar.update()
            bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.1e}")
            if history.step % recipe.eval_every == 0 or recipe.progress(history.step, history.seconds) >= 1:
                evaluate_and_report(model, recipe, valid_ids, history, sample, on_eval)
    finally:
        bar.close()
    return history


def evaluate_and_report(model, recipe, valid_ids, history, sample, on_eval) -> None:
    """fit's evaluation: the held-out loss, a sample, then the caller's ``on_eval``."""
    history.valid.append((history.step, evaluate(model, valid_ids, recipe.seq, recipe.eval_windows, recipe.bf16)))
    if sample is not None:
        history.samples[history.step] = sample(model)
    if on_eval is not None:
        on_eval(history)


def check_fit(model, optimizer, recipe, train_ids, valid_ids, generator, history, sample, on_eval) -> tuple:
    """fit's arguments, each refused by name before the first step. Returns the ids as int64."""
    check_causal_lm(model)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise InputTypeError(
            f"optimizer must be a torch.optim.Optimizer (e.g. training.adamw(model, lr)), got {describe(optimizer)}"
        )
    if not isinstance(recipe, Recipe):
        raise InputTypeError(f"recipe must be a training.Recipe, got {describe(recipe)}")
    recipe.check()
    vocab = model.config.vocab_size
    train_ids = check_token_ids(train_ids, "train_ids", vocab, min_length=recipe.seq + 2)  # seq + 1, two places
    valid_ids = check_token_ids(valid_ids, "valid_ids", vocab, min_length=2)
    if not isinstance(generator, torch.Generator):
        raise InputTypeError(
            f"generator must be a torch.Generator, e.g. torch.Generator().manual_seed(0), got {describe(generator)}"
        )
    if history is not None and not isinstance(history, History):
        raise InputTypeError(f"history must be None or the History of an earlier run, got {describe(history)}")
    for name, fn in (("sample", sample), ("on_eval", on_eval)):
        if fn is not None and not callable(fn):
            raise InputTypeError(f"{name} must be None or a function, got {describe(fn)}")
    return train_ids, valid_ids


def sample(
    model,
    tok,
    prompt: str,
    vocab=None,
    max_new_tokens: int = 60,
    temperature: float = 0.8,
    top_p: float = 0.95,
    seed: int = 0,
) -> str:
    """What the model writes after ``prompt`` (``vocab``: a ``CompactVocabulary`` it was trained with).
    Seeded, and the global random stream is left as it was."""
    ids = tok(prompt, return_tensors="pt").input_ids  # (1, prompt length)
    ids = ids if vocab is None else vocab.encode(ids)
    was_training = model.training
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        out = generate(
            model.eval(),
            ids.to(model.device),
            max_new_tokens=max_new_tokens,
            do_sample=True,
            temperature=temperature,
            top_p=top_p,
        )  # (1, prompt length + new)
    model.train(was_training)
    return tok.decode((out if vocab is None else vocab.decode(out))[0].cpu())


def plot_history(history: History, ax=None, title: str = "Training a GPT-J"):
    """Training loss (each step's batch, light) and held-out loss (dots) against step. Returns the Axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    if history.train:
        ax.plot(*zip(*history.train), color="tab:blue", alpha=0.4, linewidth=1, label="training batch")
    if history.valid:
        ax.plot(*zip(*history.valid), "o-", color="tab:orange", label="held-out files")
    ax.set(xlabel="step", ylabel="loss (nats / token)", title=title)
    ax.legend()
    return ax
