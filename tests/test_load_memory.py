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


@pytest.mark.parametrize("stored", [torch.float16, torch.float32])
@pytest.mark.parametrize("layout", ["bin", "safetensors"])
def test_peak_host_memory_while_loading_stays_near_the_model_size(tmp_path, layout, stored):
    """MEASURE loads in fp16 and runs a first forward pass. An fp16 file is mapped and used as it is (its pages
    count once they are read); an fp32 file is converted tensor by tensor, and the pages of each are handed back
    to the OS: without that, the 1 GB file would stay in the process's RAM beside the 0.5 GB model."""
    config = transformers.GPTJConfig(n_embd=1024, n_head=8, rotary_dim=32, n_layer=12, n_positions=256)
    model = transformers.GPTJForCausalLM(config).to(stored)  # ~0.51 GB of fp16 weights, or twice that in fp32
    if layout == "bin":
        config.save_pretrained(tmp_path)
        torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    else:
        model.save_pretrained(tmp_path, max_shard_size="5GB")  # one file: a shard read to its end is unmapped anyway
    del model
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, str(tmp_path), "cpu"], capture_output=True, text=True, check=True, timeout=300
    ).stdout
    figures = json.loads(out)
    overhead = figures["peak_above_baseline_gb"] - figures["model_gb"]  # beyond the model's own bytes
    largest_tensor_gb = 50400 * 1024 * 2 / 1e9
    assert overhead < figures["model_gb"] / 2, figures  # a second copy of the checkpoint would be ~model_gb
    assert overhead < 3 * largest_tensor_gb + 0.05, figures
