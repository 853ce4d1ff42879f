"""Train the tiny GPT-J shipped in gptj_teach/checkpoints/tiny/ on the Python standard library's source.

    python scripts/train_tiny.py --minutes 88.5          # CPU, 2 cores: as long as the shipped model trained
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
import sys
import time
from pathlib import Path

import torch
from transformers import GPTJConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import gptj_teach as gt  # noqa: E402
from gptj_teach.checkpoint import TINY  # noqa: E402
from gptj_teach.train.corpus import HELD_OUT_EVERY, CompactVocabulary, encode_files, split_files, stdlib_files  # noqa: E402
from gptj_teach.train.loop import History, Recipe, adamw, evaluate, fit  # noqa: E402

UNSEEN_BIAS = -20.0  # lm_head.bias of token ids that never occur in the training files
SAMPLE_PROMPT = "import os\nimport sys\n\n\ndef main("


def corpus(cache: Path, stdlib=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(training ids, held-out ids): every 50th file held out. Cached in ``cache``."""
    if cache.exists():
        data = torch.load(cache, weights_only=True)
        return data["train"], data["valid"]
    train, valid = split_files(stdlib_files(stdlib))
    tok = gt.load_tokenizer()
    data = {"train": encode_files(train, tok), "valid": encode_files(valid, tok)}
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save(data, cache)
    return data["train"], data["valid"]


def tiny_config(vocab_size=50400, n_positions=512) -> GPTJConfig:
    """GPT-J's shape, scaled down: 4 layers, 3 heads of 64 dims, rotary on 16 of them."""
    return GPTJConfig(
        vocab_size=vocab_size,
        n_positions=n_positions,
        n_embd=192,
        n_layer=4,
        n_head=3,
        rotary_dim=16,
        n_inner=None,
        embd_pdrop=0.0,
        resid_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=50256,
        eos_token_id=50256,
        architectures=["GPTJForCausalLM"],
    )


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


def save_state(path: Path, model, optimizer, history, generator) -> None:
    """Everything needed to resume: weights, optimizer moments, step, time spent, data RNG."""
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": history.step,
            "elapsed": history.seconds,
            "generator": generator.get_state(),
        },
        path.with_suffix(".tmp"),
    )
    path.with_suffix(".tmp").replace(path)  # atomic: a kill mid-save leaves the previous state intact


def resume(path: Path, model, optimizer, generator) -> History:
    """Load the state ``save_state`` wrote; the History to go on from."""
    state = torch.load(path, weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    generator.set_state(state["generator"])
    print(f"resumed at step {state['step']}, {state['elapsed'] / 60:.1f} min in")
    return History(step=state["step"], seconds=state["elapsed"])


def arguments(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=88.5, help="time budget (stops here at the latest)")
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="step budget; the LR schedule follows whichever budget, steps or minutes, is nearer its end",
    )
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
    return p.parse_args(argv)


def main(argv=None):
    args = arguments(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    with (args.work / "commands.txt").open("a") as f:  # the model card lists every run that made the model
        f.write(" ".join(["python scripts/train_tiny.py"] + [str(a) for a in (argv or sys.argv[1:])]) + "\n")
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    recipe = Recipe(
        steps=args.steps,
        minutes=args.minutes,
        batch=args.batch or (64 if device.type == "cuda" else 8),
        seq=args.seq,
        lr=args.lr,
    )
    train_ids, valid_ids = corpus(args.work / "tokens.pt", args.stdlib)
    vocab = CompactVocabulary(train_ids)
    print(
        f"corpus: {len(train_ids):,} training tokens, {len(valid_ids):,} held-out; {len(vocab):,} distinct ids "
        f"({vocab.unseen_fraction(valid_ids):.3%} of held-out tokens never seen in training)"
    )

    model = gt.GPTJForCausalLM(tiny_config(len(vocab), args.seq)).to(device).init_weights()
    optimizer = adamw(model, args.lr, recipe.weight_decay)
    generator = torch.Generator().manual_seed(args.seed)
    state_path = args.work / "state.pt"
    history = resume(state_path, model, optimizer, generator) if args.resume and state_path.exists() else None
    log, last_save = (args.work / "log.jsonl").open("a"), [time.time()]

    def on_eval(history):  # log every evaluation; save and export every few minutes
        log.write(
            json.dumps(
                {
                    "step": history.step,
                    "minutes": history.seconds / 60,
                    "loss": history.train[-1][1],
                    "valid": history.valid[-1][1],
                }
            )
            + "\n"
        )
        log.flush()
        if time.time() - last_save[0] > args.save_minutes * 60:
            save_state(state_path, model, optimizer, history, generator)
            export(model, vocab.keep, args.out)
            last_save[0] = time.time()

    history = fit(
        model, optimizer, recipe, vocab.encode(train_ids), vocab.encode(valid_ids), generator, history, on_eval=on_eval
    )
    save_state(state_path, model, optimizer, history, generator)
    export(model, vocab.keep, args.out)
    finish(args, history.step, recipe.batch, history.seconds, valid_ids)


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
    write_card(
        args.out,
        dict(
            valid=valid,
            steps=step,
            tokens=step * batch * args.seq,
            minutes=seconds / 60,
            hardware=hardware,
            commands=(args.work / "commands.txt").read_text().strip(),
            samples=samples,
            n_valid=len(valid_ids),
        ),
    )


def write_card(out: Path, facts: dict) -> None:
    """The model card: what it is, how it was made, how good it is, what it writes."""
    samples = "\n".join(
        f"Temperature {t}, top-p 0.95, seed 0, prompt {SAMPLE_PROMPT!r}:\n\n```python\n{s}\n```\n"
        for t, s in facts["samples"].items()
    )
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
{facts["commands"]}
```

- Hardware: {facts["hardware"]}; {facts["minutes"]:.1f} minutes, {facts["steps"]:,} steps, {facts["tokens"]:,} tokens.
- Held-out loss: **{facts["valid"]:.3f} nats/token** over {facts["n_valid"]:,} tokens of held-out standard-library
  files.
- Token ids that never occur in the training files have `lm_head.bias` = {UNSEEN_BIAS:g}: the model
  practically never writes them.

Load it with `gptj_teach.load("tiny")` or `transformers.GPTJForCausalLM.from_pretrained(<this directory>)`.

## Samples

{samples}""")


if __name__ == "__main__":
    main()
