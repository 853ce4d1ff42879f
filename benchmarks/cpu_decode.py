"""Greedy decoding speed on the CPU: gptj_teach vs transformers, same weights, same tokens, one run.

    python benchmarks/cpu_decode.py [--model tiny] [--new-tokens 200] [--repeats 5] [--threads N]

Prints JSON: the median seconds of each library for the same greedy continuation, the ratio
transformers / gptj_teach (above 1: ours is faster), and whether the tokens are identical.
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


def timed(fn, repeats: int):
    """(median seconds, last result) over `repeats` calls after one warm-up call."""
    fn()
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


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
    theirs = transformers.GPTJForCausalLM.from_pretrained(gt.checkpoint.resolve(args.model)).eval()
    ids = tok(PROMPT, return_tensors="pt").input_ids
    n = args.new_tokens

    def run_ours():
        return gt.generate(ours, ids, max_new_tokens=n, eos_token_id=None)  # exactly n tokens

    theirs.generation_config.eos_token_id = None  # both: exactly n tokens, eos is just another token

    def run_theirs():
        with torch.inference_mode():
            return theirs.generate(ids, max_new_tokens=n, do_sample=False, pad_token_id=tok.eos_token_id)

    t_theirs, out_theirs = timed(run_theirs, args.repeats)
    t_ours, out_ours = timed(run_ours, args.repeats)
    print(json.dumps({
        "model": args.model, "prompt_tokens": ids.shape[1], "new_tokens": n, "repeats": args.repeats,
        "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__, "transformers": transformers.__version__,
        "transformers_s": round(t_theirs, 4), "gptj_teach_s": round(t_ours, 4),
        "gptj_teach_tokens_per_s": round(n / t_ours, 1), "transformers_tokens_per_s": round(n / t_theirs, 1),
        "ratio_transformers_over_gptj_teach": round(t_theirs / t_ours, 3),
        "identical_tokens": bool(torch.equal(out_ours, out_theirs)),
    }, indent=2))


if __name__ == "__main__":
    main()
