"""Streamed loading: host RAM holds the model plus about one tensor, never the checkpoint a second time."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import transformers

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from load_memory import MEASURE  # noqa: E402


@pytest.mark.parametrize("layout", ["bin", "safetensors"])
def test_peak_host_memory_while_loading_stays_near_the_model_size(tmp_path, layout):
    config = transformers.GPTJConfig(n_embd=1024, n_head=8, rotary_dim=32, n_layer=12, n_positions=256)
    model = transformers.GPTJForCausalLM(config).half()  # ~0.51 GB of fp16 weights
    if layout == "bin":
        config.save_pretrained(tmp_path)
        torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    else:
        model.save_pretrained(tmp_path, max_shard_size="200MB")
    del model
    out = subprocess.run([sys.executable, "-c", MEASURE, str(tmp_path), "cpu"], capture_output=True, text=True,
                         check=True, timeout=300).stdout
    figures = json.loads(out)
    overhead = figures["peak_above_baseline_gb"] - figures["model_gb"]  # beyond the model's own bytes
    largest_tensor_gb = 50400 * 1024 * 2 / 1e9
    assert overhead < figures["model_gb"] / 2, figures  # a second copy of the checkpoint would be ~model_gb
    assert overhead < 3 * largest_tensor_gb + 0.05, figures
