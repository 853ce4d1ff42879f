"""Train the tiny GPT-J shipped in gptj_teach/checkpoints/tiny/ on the Python standard library's source.

    python scripts/train_tiny.py --minutes 75            # CPU, 2 cores: the shipped model
    python scripts/train_tiny.py --minutes 4 --device cuda   # a GPU: bf16 autocast, bigger batches
    python scripts/train_tiny.py --resume                # go on from runs/tiny/state.pt

The corpus is every ``.py`` file of the running interpreter's standard library (``site-packages`` excluded),
in sorted order, tokenized with the real GPT-J tokenizer and joined with ``<|endoftext|>``; every 50th file is
held out. The model is GPT-J scaled down: the real vocabulary (50400) and tokenizer, head_dim 64 with
rotary_dim 16 (a quarter, like GPT-J's 64 of 256), 4 layers, n_embd 192, 512 positions.

Where the time goes: at this width the output layer (n_embd x 50400) costs more than the four blocks
together. Only ~18,000 distinct token ids occur in the standard library, so training uses a *compact*
vocabulary of just those ids (the same GPT-J, with vocab_size = the ids seen), about 2.5x faster. On export
the compact rows are put back at their real ids; the ids never seen get an ``lm_head.bias`` of -20, so the
shipped model (a plain 50400-token GPT-J checkpoint) practically never samples them.
"""

import argparse
import json
import math
import sys
import sysconfig
import time
import tokenize
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import GPTJConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import gptj_teach as gt  # noqa: E402
from gptj_teach.checkpoint import TINY  # noqa: E402

UNSEEN_BIAS = -20.0  # lm_head.bias of token ids that never occur in the training files
HELD_OUT_EVERY = 50
SAMPLE_PROMPT = "import os\nimport sys\n\n\ndef main("


def stdlib_files(root=None) -> list[Path]:
    """The standard library's .py files in sorted order, site-packages excluded."""
    root = Path(root or sysconfig.get_paths()["stdlib"])
    return sorted(p for p in root.rglob("*.py") if "site-packages" not in p.relative_to(root).parts)


def read_source(path: Path) -> str | None:
    """A file's text, honouring its coding cookie; None for the few files that do not decode."""
    try:
        with tokenize.open(path) as f:
            return f.read()
    except (SyntaxError, UnicodeDecodeError, OSError):
        return None


def encode_files(files, tok) -> torch.Tensor:
    """Token ids of the files joined with <|endoftext|>: a 1-D int64 tensor."""
    texts = [t for t in map(read_source, files) if t is not None]
    if not texts:
        raise SystemExit(f"no readable .py files among {len(files)}: pass a directory of Python sources")
    ids = []
    for piece in tok(texts, add_special_tokens=False).input_ids:
        ids.extend(piece + [tok.eos_token_id])
    return torch.tensor(ids, dtype=torch.long)


def corpus(cache: Path, stdlib=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(training ids, held-out ids): every 50th file held out. Cached in ``cache`` (tokenizing takes a minute)."""
    if cache.exists():
        data = torch.load(cache, weights_only=True)
        return data["train"], data["valid"]
    files, tok = stdlib_files(stdlib), gt.load_tokenizer()
    tok.model_max_length = 10**9  # whole files at once; we cut windows ourselves
    valid = [f for i, f in enumerate(files) if i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1]
    train = [f for i, f in enumerate(files) if i % HELD_OUT_EVERY != HELD_OUT_EVERY - 1]
    data = {"train": encode_files(train, tok), "valid": encode_files(valid, tok)}
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save(data, cache)
    return data["train"], data["valid"]


def tiny_config(vocab_size=50400, n_positions=512) -> GPTJConfig:
    """GPT-J's shape, scaled down: 4 layers, 3 heads of 64 dims, rotary on 16 of them."""
    return GPTJConfig(vocab_size=vocab_size, n_positions=n_positions, n_embd=192, n_layer=4, n_head=3,
                      rotary_dim=16, n_inner=None, embd_pdrop=0.0, resid_pdrop=0.0, attn_pdrop=0.0,
                      bos_token_id=50256, eos_token_id=50256, architectures=["GPTJForCausalLM"])


class LinearCrossEntropy(torch.autograd.Function):
    """``cross_entropy(h @ weight.T + bias, targets)`` in one step, matmuls in bf16, softmax in fp32.

    On a 2-core CPU the output layer is most of the cost of a step. ``F.cross_entropy`` after ``lm_head``
    makes several passes over the (tokens x vocab) logits (log-softmax, a zero-filled gradient, its backward);
    here the gradient ``softmax - one_hot`` is made in the forward pass, chunk by chunk, and kept in bf16.
    bf16 matmuls are ~2.4x faster than fp32 on CPUs with AVX512-BF16. h: (N, d), weight: (V, d), targets: (N,).
    """

    @staticmethod
    def forward(ctx, h, weight, bias, targets, chunk=1024):
        hb, wb, bb = h.to(torch.bfloat16), weight.to(torch.bfloat16), bias.to(torch.bfloat16)
        grad = torch.empty(len(targets), len(bias), dtype=torch.bfloat16)  # (N, V): d loss / d logits
        total = torch.zeros((), dtype=torch.float32)
        for start in range(0, len(targets), chunk):
            rows, t = hb[start:start + chunk], targets[start:start + chunk]
            logits = torch.addmm(bb, rows, wb.T).float()  # (chunk, V)
            target_logit = logits.gather(1, t[:, None]).squeeze(1)
            peak = logits.max(-1, keepdim=True).values
            p = logits.sub_(peak).exp_()  # in place: unnormalised probabilities
            norm = p.sum(-1, keepdim=True)
            total += ((norm.log() + peak).squeeze(1) - target_logit).sum()  # log-sum-exp - target logit
            p.div_(norm * len(targets))  # softmax / N
            p[torch.arange(len(t)), t] -= 1 / len(targets)
            grad[start:start + chunk] = p
        ctx.save_for_backward(grad, hb, wb)
        return total / len(targets)

    @staticmethod
    def backward(ctx, grad_out):
        grad, hb, wb = ctx.saved_tensors
        return ((grad @ wb).float() * grad_out, (grad.T @ hb).float() * grad_out,
                grad.sum(0, dtype=torch.float32) * grad_out, None, None)


def training_loss(model, x: torch.Tensor, autocast) -> torch.Tensor:
    """Next-token loss of a (batch, seq + 1) window: the body in bf16 autocast, the head fused (see above)."""
    with autocast:
        h = model.transformer(x[:, :-1]).last_hidden_state  # (batch, seq, n_embd)
    head = model.lm_head
    if h.is_cuda:  # plenty of FLOPs and memory on a GPU: the plain loss
        with autocast:
            return torch.nn.functional.cross_entropy(head(h).flatten(0, 1).float(), x[:, 1:].flatten())
    return LinearCrossEntropy.apply(h.reshape(-1, h.shape[-1]), head.weight, head.bias, x[:, 1:].reshape(-1))


def batches(ids: torch.Tensor, batch: int, seq: int, generator) -> torch.Tensor:
    """A (batch, seq) tensor of random windows of ``ids``."""
    starts = torch.randint(0, len(ids) - seq, (batch,), generator=generator)
    return torch.stack([ids[s:s + seq] for s in starts.tolist()])


def learning_rate(progress: float, peak: float, warmup: float = 0.03) -> float:
    """Linear warm-up over the first 3 % of the run, then cosine decay to 10 % of the peak."""
    if progress < warmup:
        return peak * progress / warmup
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, (progress - warmup) / (1 - warmup)))))


@torch.no_grad()
def evaluate(model, ids: torch.Tensor, seq: int, max_windows=None, autocast=None) -> float:
    """Mean next-token loss (nats/token) over consecutive windows of ``ids`` (all of them, or the first few)."""
    model.eval()
    seq = min(seq, len(ids))  # a held-out set shorter than one window is one window
    windows = ids[: len(ids) // seq * seq].view(-1, seq)[:max_windows]  # (n, seq)
    total, count = 0.0, 0
    for chunk in windows.split(8):
        with autocast or torch.autocast("cpu", enabled=False):
            loss = model(chunk.to(model.device), labels=chunk.to(model.device)).loss
        total, count = total + loss.item() * chunk.numel(), count + chunk.numel()
    model.train()
    return total / count


def export(model, keep: torch.Tensor, out: Path) -> gt.GPTJForCausalLM:
    """Put the compact vocabulary back at the real ids and write a 50400-token checkpoint (fp16) to ``out``."""
    full = gt.GPTJForCausalLM(tiny_config(50400, model.config.n_positions))
    state = {k: v.float().cpu() for k, v in model.state_dict().items()}
    wte, head_w, head_b = state.pop("transformer.wte.weight"), state.pop("lm_head.weight"), state.pop("lm_head.bias")
    state["transformer.wte.weight"] = wte.mean(0).repeat(50400, 1).index_copy(0, keep, wte)  # unseen: the mean row
    state["lm_head.weight"] = torch.zeros(50400, wte.shape[1]).index_copy(0, keep, head_w)
    state["lm_head.bias"] = torch.full((50400,), UNSEEN_BIAS).index_copy(0, keep, head_b)
    full.load_state_dict(state, strict=True)
    full.save_pretrained(out, dtype=torch.float16)
    gt.load_tokenizer().save_pretrained(out)
    tokenizer_json = out / "tokenizer.json"  # written indented (3.6 MB); compact JSON keeps the model under 45 MB
    tokenizer_json.write_text(json.dumps(json.loads(tokenizer_json.read_text()), separators=(",", ":")))
    return full


def save_state(path: Path, model, optimizer, step, elapsed, generator) -> None:
    """Everything needed to resume: weights, optimizer moments, step, time spent, data RNG."""
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                "elapsed": elapsed, "generator": generator.get_state()}, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)  # atomic: a kill mid-save leaves the previous state intact


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=85, help="time budget (stops here at the latest)")
    p.add_argument("--steps", type=int, default=None, help="step budget; the LR schedule follows whichever "
                   "budget, steps or minutes, is nearer its end")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=None, help="windows per step (default 8 on CPU, 64 on GPU)")
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", type=Path, default=Path("runs/tiny"), help="state, token cache, logs")
    p.add_argument("--out", type=Path, default=TINY)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--save-minutes", type=float, default=5, help="save state and export this often")
    p.add_argument("--stdlib", default=None, help="train on another directory of .py files (tests use this)")
    args = p.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    with (args.work / "commands.txt").open("a") as f:  # the model card lists every run that made the model
        f.write(" ".join(["python scripts/train_tiny.py"] + (argv or sys.argv[1:])) + "\n")
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    batch = args.batch or (64 if device.type == "cuda" else 8)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16)  # CPUs with AVX512-BF16 gain ~1.6x too

    train_ids, valid_ids = corpus(args.work / "tokens.pt", args.stdlib)
    keep = torch.unique(train_ids)  # the ids that occur in the training files, sorted
    compact = torch.full((50400,), -1, dtype=torch.long).index_copy_(0, keep, torch.arange(len(keep)))
    train_c = compact[train_ids]
    print(f"corpus: {len(train_ids):,} training tokens, {len(valid_ids):,} held-out; {len(keep):,} distinct ids "
          f"({(compact[valid_ids] < 0).float().mean():.3%} of held-out tokens never seen in training)")

    model = gt.GPTJForCausalLM(tiny_config(len(keep), args.seq)).to(device)
    model.init_weights()
    decay = [p for n, p in model.named_parameters() if p.dim() == 2 and "wte" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.dim() == 2 and "wte" not in n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                                  lr=args.lr, betas=(0.9, 0.95), fused=device.type == "cuda")
    generator = torch.Generator().manual_seed(args.seed)
    step, elapsed, state_path = 0, 0.0, args.work / "state.pt"
    if args.resume and state_path.exists():
        state = torch.load(state_path, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, elapsed = state["step"], state["elapsed"]
        generator.set_state(state["generator"])
        print(f"resumed at step {step}, {elapsed / 60:.1f} min in")
    valid_c = compact[valid_ids].clamp(min=0)  # for quick evals only; the final eval uses the real vocabulary
    log = (args.work / "log.jsonl").open("a")
    budget, start, last_save = args.minutes * 60, time.time() - elapsed, time.time()
    bar = tqdm(total=int(budget), initial=int(elapsed), unit="s", desc="training", dynamic_ncols=True)
    model.train()
    while (progress := max((time.time() - start) / budget, step / (args.steps or float("inf")))) < 1:
        elapsed = time.time() - start
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(progress, args.lr)
        x = batches(train_c, batch, args.seq + 1, generator).to(device)
        loss = training_loss(model, x, autocast)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        bar.update(int(time.time() - start) - bar.n)
        bar.set_postfix(loss=f"{loss.item():.3f}", tok_s=f"{step * batch * args.seq / max(elapsed, 1e-9):,.0f}")
        if time.time() - last_save > args.save_minutes * 60:
            quick = evaluate(model, valid_c, args.seq, max_windows=16, autocast=autocast)
            log.write(json.dumps({"step": step, "minutes": elapsed / 60, "loss": loss.item(), "valid": quick}) + "\n")
            log.flush()
            save_state(state_path, model, optimizer, step, time.time() - start, generator)
            export(model, keep.cpu(), args.out)
            last_save = time.time()
    bar.close()
    save_state(state_path, model, optimizer, step, time.time() - start, generator)
    export(model, keep.cpu(), args.out)
    finish(args, step, batch, time.time() - start, valid_ids)


def finish(args, step, batch, seconds, valid_ids) -> None:
    """Reload the exported checkpoint as users will (gt.load), measure the held-out loss, write the model card."""
    model, tok = gt.load(args.out)
    valid = evaluate(model, valid_ids, args.seq)
    print(f"held-out loss: {valid:.3f} nats/token ({len(valid_ids):,} tokens of held-out standard-library files)")
    samples = {}
    for temperature in (0.7, 1.0):
        torch.manual_seed(0)
        ids = tok(SAMPLE_PROMPT, return_tensors="pt").input_ids
        new_tokens = min(120, model.config.n_positions - ids.shape[1])
        out = gt.generate(model, ids, max_new_tokens=new_tokens, do_sample=True, temperature=temperature, top_p=0.95)
        samples[temperature] = tok.decode(out[0])
    hardware = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    write_card(args.out, dict(valid=valid, steps=step, tokens=step * batch * args.seq, minutes=seconds / 60,
                              hardware=hardware, commands=(args.work / "commands.txt").read_text().strip(),
                              samples=samples, n_valid=len(valid_ids)))


def write_card(out: Path, facts: dict) -> None:
    """The model card: what it is, how it was made, how good it is, what it writes."""
    samples = "\n".join(f"Temperature {t}, top-p 0.95, seed 0, prompt {SAMPLE_PROMPT!r}:\n\n```python\n{s}\n```\n"
                        for t, s in facts["samples"].items())
    (out / "README.md").write_text(f"""---
license: mit
library_name: transformers
tags: [gptj, gptj_teach, teaching]
---
# gptj_teach tiny GPT-J

A small GPT-J (model_type `gptj`, `GPTJForCausalLM`) for teaching: the real GPT-J tokenizer and 50400-token
vocabulary, 4 layers, n_embd 192, 3 heads of 64 dims with rotary on the first 16 (GPT-J 6B: 28 layers,
n_embd 4096, 16 heads of 256 with rotary on 64), 512 positions. It writes Python that looks like Python;
it knows nothing else. Weights are stored in fp16 (load them as fp32 on a CPU).

- Corpus: the `.py` files of the Python {sys.version.split()[0]} standard library (site-packages excluded),
  sorted, joined with `<|endoftext|>`; every {HELD_OUT_EVERY}th file held out.
- Commands, in order (`make tiny` retrains from scratch in one run):

```
{facts['commands']}
```

- Hardware: {facts['hardware']}; {facts['minutes']:.1f} minutes, {facts['steps']:,} steps, {facts['tokens']:,} tokens.
- Held-out loss: **{facts['valid']:.3f} nats/token** over {facts['n_valid']:,} tokens of held-out standard-library files.
- Token ids that never occur in the training files have `lm_head.bias` = {UNSEEN_BIAS:g}: the model
  practically never writes them.

Load it with `gptj_teach.load("tiny")` or `transformers.GPTJForCausalLM.from_pretrained(<this directory>)`.

## Samples

{samples}""")


if __name__ == "__main__":
    main()
