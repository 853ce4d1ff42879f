"""GPT-J-6B decode speed on one GPU: transformers vs gptj_teach (eager and fast), the same tensors, one run.

    python benchmarks/gpu_decode.py                  # GPT-J-6B shapes, random fp16 weights, CUDA
    python benchmarks/gpu_decode.py --config small --device cpu --dtype float32   # a smoke test anywhere

Prints JSON: copy bandwidth and the roofline tokens/s (a decode step must read every weight but the input
embedding once), decode tokens/s of transformers and of ours (eager, fast), prefill time for 512 tokens,
peak GPU memory at 2048 tokens of context, the ratios, the top-1 agreement of our logits with transformers'
over a 512-token prompt (overall, and where transformers' top-1 margin exceeds 0.05), and whether our fast
and eager greedy decodes agree.
"""

import argparse
import json
import statistics
import time

import torch
import transformers

import gptj_teach as gt

CONFIGS = {
    "6b": {},
    "small": dict(n_embd=256, n_head=4, rotary_dim=16, n_layer=2, n_positions=2048),
    "medium": dict(n_embd=1536, n_head=12, rotary_dim=32, n_layer=12, n_positions=2048),
}


def build(config, device, dtype):
    """Ours on the meta device -> to_empty -> random init (seconds for 6B), and transformers on the same tensors."""
    with torch.device("meta"):
        ours = gt.GPTJForCausalLM(config)
    ours.to_empty(device=device)
    with torch.no_grad():
        for name, p in ours.named_parameters():
            if "ln" in name:
                p.fill_(1.0 if name.endswith("weight") else 0.0)
            else:
                p.normal_(0, 0.02)
    ours.to(dtype).eval()
    # the same tensors (no second copy); transformers on its default attention path (sdpa from 5.24, eager before)
    return ours, gt.reference.sharing(ours, attn_implementation=None)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, repeats=3):
    fn()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def copy_bandwidth(device, gigabytes=1.0):
    """Bytes moved per second by a device-to-device copy (read + write)."""
    src = torch.empty(int(gigabytes * 1e9) // 2, dtype=torch.float16, device=device)
    dst = torch.empty_like(src)
    seconds = timed(lambda: dst.copy_(src), device, repeats=5)
    return 2 * src.nbytes / seconds


@torch.inference_mode()
def top1_agreement(ours, theirs, ids):
    a, b = ours(ids).logits[0].float(), theirs(ids).logits[0].float()  # (seq, vocab)
    top2 = b.topk(2, dim=-1).values
    confident = (top2[:, 0] - top2[:, 1]) > 0.05
    same = a.argmax(-1) == b.argmax(-1)
    return same.float().mean().item(), same[confident].float().mean().item(), int(confident.sum())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", choices=CONFIGS, default="6b")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="float16")
    p.add_argument("--prompt", type=int, default=128)
    p.add_argument("--new", type=int, default=256)
    args = p.parse_args(argv)
    transformers.logging.set_verbosity_error()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    config = transformers.GPTJConfig(**CONFIGS[args.config])
    ours, theirs = build(config, device, dtype)
    g = torch.Generator().manual_seed(0)
    prompt = torch.randint(0, 50256, (1, args.prompt), generator=g).to(device)
    long_prompt = torch.randint(0, 50256, (1, 512), generator=g).to(device)
    theirs.generation_config.eos_token_id = None
    n = args.new

    def hf_decode():
        with torch.inference_mode():
            return theirs.generate(prompt, max_new_tokens=n, do_sample=False, pad_token_id=0)

    eager_ids = gt.generate(ours, prompt, max_new_tokens=n, eos_token_id=None)
    fast_ids = gt.generate(ours, prompt, max_new_tokens=n, eos_token_id=None, fast=True)  # compiles
    t_hf = timed(hf_decode, device)
    t_eager = timed(lambda: gt.generate(ours, prompt, max_new_tokens=n, eos_token_id=None), device)
    t_fast = timed(lambda: gt.generate(ours, prompt, max_new_tokens=n, eos_token_id=None, fast=True), device)
    with torch.inference_mode():
        prefill_hf = timed(lambda: theirs(long_prompt), device)
        prefill_ours = timed(lambda: ours(long_prompt), device)
    weight_bytes = sum(p.nbytes for name, p in ours.named_parameters() if "wte" not in name)
    bandwidth = copy_bandwidth(device) if device.type == "cuda" else None
    peak = None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        context = torch.randint(0, 50256, (1, 2048 - n), generator=g).to(device)
        gt.generate(ours, context, max_new_tokens=n, eos_token_id=None, fast=True)
        peak = torch.cuda.max_memory_allocated() / 1e9
    overall, confident, n_confident = top1_agreement(ours, theirs, long_prompt)
    roofline = bandwidth / weight_bytes if bandwidth else None
    result = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "config": args.config,
        "dtype": args.dtype,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "prompt_tokens": args.prompt,
        "new_tokens": n,
        "weights_read_per_token_gb": round(weight_bytes / 1e9, 2),
        "copy_bandwidth_tb_s": round(bandwidth / 1e12, 3) if bandwidth else None,
        "roofline_tokens_per_s": round(roofline, 1) if roofline else None,
        "transformers_tokens_per_s": round(n / t_hf, 1),
        "ours_eager_tokens_per_s": round(n / t_eager, 1),
        "ours_fast_tokens_per_s": round(n / t_fast, 1),
        "fast_over_transformers": round(t_hf / t_fast, 2),
        "fast_over_roofline": round((n / t_fast) / roofline, 3) if roofline else None,
        "prefill_512_ms": {"transformers": round(prefill_hf * 1e3, 2), "ours": round(prefill_ours * 1e3, 2)},
        "peak_gpu_gb_at_2048_context": round(peak, 2) if peak else None,
        "top1_agreement_512": {
            "overall": round(overall, 4),
            "margin_over_0.05": round(confident, 4),
            "positions_with_margin": n_confident,
        },
        "fast_equals_eager_greedy": bool(torch.equal(fast_ids, eager_ids)),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
