"""How long and how much host RAM does loading a GPT-J checkpoint take? Writes a 6B-shaped fp16 checkpoint in
two layouts (one ``pytorch_model.bin``, like the 6B's float16 branch, and sharded safetensors), loads each with
``gt.load`` in a fresh process with the files dropped from the page cache first (``posix_fadvise``, so the
disk is read for real), runs a first forward pass, and prints the seconds to the first logits, the peak host
RSS above the interpreter's baseline, and the GPU memory. For comparison, in the same run: ``transformers``'
``from_pretrained`` plus its first forward pass on the safetensors.

Both map the file when its dtype is the one asked for on the CPU: loading returns before the disk is read, and
the first forward pass reads the weights. So the figure compared is the time to the first logits.

The three loads run ``--repeats`` times, each round in another order (the disk, or a cache behind it, may
serve a file faster right after another process read it), and the medians are compared.

    python benchmarks/load_memory.py --device cpu                 # 6B shapes on the CPU (~25 GB of disk)
    python benchmarks/load_memory.py                              # onto CUDA
    python benchmarks/load_memory.py --config small --device cpu  # a smoke test anywhere

Targets (issue 12): sharded safetensors no slower than the .bin; on the CPU the peak minus the model's own
bytes <= 0.6 GB; the time to the first logits within 1.5x of transformers'. On a GPU: a peak of at most
3 GB above the baseline (Colab's free tier has 12.7 GB of RAM; the weights are 12.1 GB).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import torch
import transformers
from safetensors.torch import save_file

import gptj_teach as gt

sys.path.insert(0, str(Path(__file__).parent))
from gpu_decode import CONFIGS  # noqa: E402

# The forward both libraries' loads are timed to (the same three tokens, finished on the GPU too).
FIRST_FORWARD = """
def first_forward(model):
    with torch.inference_mode():
        model(torch.tensor([[1, 2, 3]], device=sys.argv[2]))
    if sys.argv[2] == "cuda":
        torch.cuda.synchronize()
"""

MEASURE = (
    """
import json, pathlib, sys, tempfile, time, torch, transformers, gptj_teach as gt
def high_water_mark():  # the peak RSS of this process so far (VmHWM; ru_maxrss would include the parent's)
    line = next(l for l in open("/proc/self/status") if l.startswith("VmHWM"))
    return int(line.split()[1]) * 1024
"""
    + FIRST_FORWARD
    + """
# Warm up: load a 60 kB checkpoint of the same layout first and run it, so that the tokenizer, the library code
# that loading and the forward run (a CUDA build of torch maps ~0.1 GB more of it) and the allocator's first
# arenas count in the baseline, not as the cost of holding the weights.
with tempfile.TemporaryDirectory() as warm:
    small = gt.GPTJForCausalLM(transformers.GPTJConfig(n_embd=32, n_head=2, rotary_dim=8, n_layer=1, vocab_size=64))
    small.save_pretrained(warm)
    if any(pathlib.Path(sys.argv[1]).glob("pytorch_model*.bin")):
        pathlib.Path(warm, "model.safetensors").unlink()
        torch.save(small.state_dict(), pathlib.Path(warm, "pytorch_model.bin"))
    del small
    first_forward(gt.load(warm, dtype=torch.float16, device=sys.argv[2], progress=False)[0])
baseline = high_water_mark()
start = time.perf_counter()
model, _ = gt.load(sys.argv[1], dtype=torch.float16, device=sys.argv[2], progress=False)
loaded = time.perf_counter() - start
first_forward(model)
seconds = time.perf_counter() - start
peak = high_water_mark()  # after the first forward: a mapped file's pages count once they are read
model_bytes = sum(p.nbytes for p in model.parameters())
print(json.dumps({"load_s": loaded, "load_and_first_forward_s": seconds, "baseline_gb": baseline / 1e9,
                  "peak_above_baseline_gb": (peak - baseline) / 1e9, "model_gb": model_bytes / 1e9,
                  "peak_minus_model_gb": (peak - baseline - model_bytes) / 1e9,
                  "gpu_peak_gb": torch.cuda.max_memory_allocated() / 1e9 if sys.argv[2] == "cuda" else None}))
"""
)

# transformers maps safetensors too: from_pretrained returns soon, and the first forward reads the pages.
MEASURE_TRANSFORMERS = (
    """
import json, sys, tempfile, time, torch, transformers
transformers.logging.set_verbosity_error()
"""
    + FIRST_FORWARD
    + """
with tempfile.TemporaryDirectory() as warm:  # warm up as for ours: the code loading and the forward run, imported once
    transformers.GPTJForCausalLM(transformers.GPTJConfig(n_embd=32, n_head=2, rotary_dim=8, n_layer=1,
                                                         vocab_size=64)).save_pretrained(warm)
    first_forward(transformers.GPTJForCausalLM.from_pretrained(warm, dtype=torch.float16, device_map=sys.argv[2]))
start = time.perf_counter()
model = transformers.GPTJForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float16, device_map=sys.argv[2])
loaded = time.perf_counter() - start
first_forward(model)
print(json.dumps({"load_s": loaded, "load_and_first_forward_s": time.perf_counter() - start}))
"""
)


def drop_page_cache(directory: Path) -> None:
    """Ask the kernel to forget the cached pages of every file here, so that the next read comes from disk
    (written back first: the kernel keeps dirty pages, so a file written a moment ago would stay cached)."""
    for path in directory.iterdir():
        with open(path, "rb") as f:
            os.fsync(f.fileno())
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def fresh_process(script: str, *args) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}  # a local directory: no request to the hub, even to check
    return json.loads(
        subprocess.run(
            [sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True, check=True, env=env
        ).stdout
    )


def random_state(config) -> dict:
    """Random fp16 weights with the shapes of ``GPTJForCausalLM(config)``, made one tensor at a time (the model
    itself is built on the meta device: only the final dict holds memory, once)."""
    with torch.device("meta"):
        shapes = {name: t.shape for name, t in gt.GPTJForCausalLM(config).state_dict().items()}
    generator = torch.Generator().manual_seed(0)
    return {name: (torch.randn(shape, generator=generator) * 0.02).half() for name, shape in shapes.items()}


def write_checkpoints(config, root: Path) -> dict:
    """The two layouts, written once from one random fp16 state dict (12.1 GB for the 6B)."""
    paths = {"bin": root / "bin", "sharded-safetensors": root / "safetensors"}
    if all(
        (paths[k] / f).exists()
        for k, f in (("bin", "pytorch_model.bin"), ("sharded-safetensors", "model.safetensors.index.json"))
    ):
        return paths
    state = random_state(config)
    for path in paths.values():
        path.mkdir(parents=True, exist_ok=True)
        config.save_pretrained(path)
    torch.save(state, paths["bin"] / "pytorch_model.bin")
    shards, size = [[]], 0
    for name, tensor in state.items():  # 2 GB shards, like save_pretrained(max_shard_size="2GB")
        if size + tensor.nbytes > 2e9 and shards[-1]:
            shards.append([])
            size = 0
        shards[-1].append(name)
        size += tensor.nbytes
    weight_map = {}
    for i, names in enumerate(shards, 1):
        file = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file({n: state[n] for n in names}, str(paths["sharded-safetensors"] / file), metadata={"format": "pt"})
        weight_map |= {n: file for n in names}
    index = {"metadata": {"total_size": sum(t.nbytes for t in state.values())}, "weight_map": weight_map}
    (paths["sharded-safetensors"] / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    return paths


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", choices=CONFIGS, default="6b")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dir", type=Path, default=Path("build/load_memory"))
    p.add_argument("--repeats", type=int, default=3, help="rounds of the three loads, each round in another order")
    args = p.parse_args(argv)
    transformers.logging.set_verbosity_error()
    config = transformers.GPTJConfig(**CONFIGS[args.config])
    paths = write_checkpoints(config, args.dir / args.config)
    loads = {
        "bin": (MEASURE, paths["bin"]),
        "sharded-safetensors": (MEASURE, paths["sharded-safetensors"]),
        "transformers-sharded-safetensors": (MEASURE_TRANSFORMERS, paths["sharded-safetensors"]),
    }
    runs = {name: [] for name in loads}
    for round_ in range(args.repeats):
        names = list(loads)[round_ % len(loads) :] + list(loads)[: round_ % len(loads)]  # none always follows one
        for name in names:
            script, path = loads[name]
            drop_page_cache(path)
            runs[name].append(fresh_process(script, path, args.device))
            print(name, json.dumps({k: round(v, 2) for k, v in runs[name][-1].items() if v is not None}), flush=True)
    first_logits = {
        name: statistics.median(r["load_and_first_forward_s"] for r in results) for name, results in runs.items()
    }
    ratios = {
        "safetensors_over_bin": first_logits["sharded-safetensors"] / first_logits["bin"],
        "ours_over_transformers": first_logits["sharded-safetensors"]
        / first_logits["transformers-sharded-safetensors"],
    }
    peaks = {name: max(r["peak_minus_model_gb"] for r in runs[name]) for name in ("bin", "sharded-safetensors")}
    print(
        json.dumps(
            {
                "config": args.config,
                "device": args.device,
                "repeats": args.repeats,
                "median_seconds_to_first_logits": {k: round(v, 2) for k, v in first_logits.items()},
                "max_peak_minus_model_gb": {k: round(v, 3) for k, v in peaks.items()},
                "ratios": {k: round(v, 3) for k, v in ratios.items()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
