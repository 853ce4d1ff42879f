"""How much host RAM does loading a GPT-J checkpoint take? Writes a 6B-shaped fp16 checkpoint in two layouts
(one ``pytorch_model.bin``, like the 6B's float16 branch, and sharded safetensors), loads each with
``gt.load`` in a fresh process, and prints the peak host RSS above the interpreter's baseline and the GPU memory.

    python benchmarks/load_memory.py                              # 6B shapes onto CUDA (needs ~25 GB of disk)
    python benchmarks/load_memory.py --config small --device cpu  # a smoke test anywhere

On a GPU the target is a peak of at most 3 GB above the baseline for both layouts (Colab's free tier has
12.7 GB of RAM; the weights are 12.1 GB). On the CPU the model itself lives in host RAM, so the figure to
read there is the peak minus the model's own bytes.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch
import transformers

sys.path.insert(0, str(Path(__file__).parent))
from gpu_decode import CONFIGS, build  # noqa: E402

MEASURE = """
import json, pathlib, sys, tempfile, psutil, torch, transformers, gptj_teach as gt
def high_water_mark():  # the peak RSS of this process so far (VmHWM; ru_maxrss would include the parent's)
    line = next(l for l in open("/proc/self/status") if l.startswith("VmHWM"))
    return int(line.split()[1]) * 1024
# Warm up: load a 60 kB checkpoint of the same layout first, so that the tokenizer, the library code that loading
# runs (a CUDA build of torch maps ~0.1 GB more of it) and the allocator's first arenas count in the baseline,
# not as the cost of holding the weights.
with tempfile.TemporaryDirectory() as warm:
    small = gt.GPTJForCausalLM(transformers.GPTJConfig(n_embd=32, n_head=2, rotary_dim=8, n_layer=1, vocab_size=64))
    small.save_pretrained(warm)
    if any(pathlib.Path(sys.argv[1]).glob("pytorch_model*.bin")):
        pathlib.Path(warm, "model.safetensors").unlink()
        torch.save(small.state_dict(), pathlib.Path(warm, "pytorch_model.bin"))
    del small
    gt.load(warm, dtype=torch.float16, device=sys.argv[2], progress=False)
baseline = high_water_mark()
model, _ = gt.load(sys.argv[1], dtype=torch.float16, device=sys.argv[2], progress=False)
peak = high_water_mark()
model_bytes = sum(p.nbytes for p in model.parameters())
print(json.dumps({"baseline_gb": baseline / 1e9, "peak_above_baseline_gb": (peak - baseline) / 1e9,
                  "model_gb": model_bytes / 1e9,
                  "gpu_peak_gb": torch.cuda.max_memory_allocated() / 1e9 if sys.argv[2] == "cuda" else None}))
"""


def write_checkpoints(config, root: Path) -> dict:
    """The two layouts, written once (random fp16 weights; built on the CPU)."""
    ours, theirs = build(config, torch.device("cpu"), torch.float16)
    paths = {"bin": root / "bin", "sharded-safetensors": root / "safetensors"}
    if not (paths["bin"] / "pytorch_model.bin").exists():
        paths["bin"].mkdir(parents=True, exist_ok=True)
        config.save_pretrained(paths["bin"])
        torch.save(ours.state_dict(), paths["bin"] / "pytorch_model.bin")
    if not (paths["sharded-safetensors"] / "model.safetensors.index.json").exists():
        theirs.save_pretrained(paths["sharded-safetensors"], max_shard_size="2GB")
    return paths


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", choices=CONFIGS, default="6b")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dir", type=Path, default=Path("build/load_memory"))
    args = p.parse_args(argv)
    transformers.logging.set_verbosity_error()
    config = transformers.GPTJConfig(**CONFIGS[args.config])
    paths = write_checkpoints(config, args.dir / args.config)
    results = {}
    for layout, path in paths.items():
        out = subprocess.run([sys.executable, "-c", MEASURE, str(path), args.device], capture_output=True,
                             text=True, check=True).stdout
        results[layout] = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in json.loads(out).items()}
    print(json.dumps({"config": args.config, "device": args.device, "layouts": results}, indent=2))


if __name__ == "__main__":
    main()
