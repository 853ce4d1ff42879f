"""Decoding speed on the CPU: gptj_teach (eager, and compiled on a static cache) vs transformers, one run.

    python benchmarks/cpu_decode.py [--model tiny] [--new-tokens 200] [--repeats 5] [--threads N]

For greedy decoding and for sampling (temperature 0.8, top-p 0.9, top-k off, the same seed), prints JSON: the
median seconds of transformers' ``generate``, of our eager loop and of our compiled static path
(``generate(fast=True)``; compiled once, in the warm-up), the ratios transformers / ours (above 1: ours is
faster), and whether each of ours picked exactly transformers' tokens. The three are timed in turn within each
repeat, so a busy machine slows all of them alike. Targets (issue 12): eager >= 1x, compiled >= 2x.
"""

import argparse
import json
import platform
import statistics
import time

import torch
import transformers

import gptj_teach as gt

PROMPT = "import os\nimport sys\n\n\ndef main(argv):\n"
MODES = {"greedy": dict(do_sample=False), "sampled": dict(do_sample=True, temperature=0.8, top_p=0.9)}


def timed_in_turn(runs: dict, repeats: int) -> tuple[dict, dict]:
    """{name: median seconds}, {name: last result}: one warm-up call each, then `repeats` rounds of one call each."""
    results = {name: run() for name, run in runs.items()}
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            results[name] = run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}, results


def runs_for(mode: dict, ours, theirs, ids, n: int, seed: int = 0) -> dict:
    """The three ways to continue `ids` by exactly n tokens (eos is just another token), each from `seed`."""

    def seeded(fn):
        def run():
            torch.manual_seed(seed)
            return fn()

        return run

    def run_theirs():
        with torch.inference_mode():
            return theirs.generate(ids, max_new_tokens=n, top_k=0, pad_token_id=theirs.config.eos_token_id, **mode)

    return {
        "transformers": seeded(run_theirs),
        "eager": seeded(lambda: gt.generate(ours, ids, max_new_tokens=n, eos_token_id=None, **mode)),
        "compiled": seeded(lambda: gt.generate(ours, ids, max_new_tokens=n, eos_token_id=None, fast=True, **mode)),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="tiny")
    p.add_argument("--new-tokens", type=int, default=200)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    ours, tok = gt.load(args.model)
    # transformers' default attention: sdpa from 5.24 (like our fused path); 5.23 has only eager for GPT-J
    theirs = gt.reference.from_pretrained(gt.checkpoint.resolve(args.model), attn_implementation=None)
    theirs.generation_config.eos_token_id = None  # both: exactly n tokens
    ids = tok(PROMPT, return_tensors="pt").input_ids
    report = {
        "model": args.model,
        "prompt_tokens": ids.shape[1],
        "new_tokens": args.new_tokens,
        "repeats": args.repeats,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    for name, mode in MODES.items():
        seconds, out = timed_in_turn(runs_for(mode, ours, theirs, ids, args.new_tokens), args.repeats)
        report[name] = {
            **{f"{k}_s": round(v, 4) for k, v in seconds.items()},
            **{f"{k}_tokens_per_s": round(args.new_tokens / v, 1) for k, v in seconds.items()},
            "ratio_transformers_over_eager": round(seconds["transformers"] / seconds["eager"], 3),
            "ratio_transformers_over_compiled": round(seconds["transformers"] / seconds["compiled"], 3),
            "eager_identical_tokens": bool(torch.equal(out["eager"], out["transformers"])),
            "compiled_identical_tokens": bool(torch.equal(out["compiled"], out["transformers"])),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
