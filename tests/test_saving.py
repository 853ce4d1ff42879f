"""save_pretrained is all or nothing, and load reads one checkpoint or refuses: never old weights, never half."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from helpers import make_config, make_pair
from safetensors.torch import load_file, save_file

import gptj_teach as gt
from gptj_teach.errors import CheckpointError, GPTJTeachError

IDS = torch.tensor([[5, 17, 33, 2, 90]])


def model_of(seed=0, **overrides):
    return make_pair(make_config("small", **overrides), seed=seed)[1]


def shard(directory):
    """Turn the model.safetensors that save_pretrained wrote into two shards and an index, as transformers does."""
    state = load_file(directory / "model.safetensors")
    (directory / "model.safetensors").unlink()
    names, weight_map = list(state), {}
    for i, part in enumerate((names[::2], names[1::2])):
        file = f"model-{i + 1:05d}-of-00002.safetensors"
        save_file({n: state[n] for n in part}, str(directory / file), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, file))
    (directory / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


def assert_same_weights(model, other):
    assert model.state_dict().keys() == other.state_dict().keys()
    assert all(torch.equal(a, other.state_dict()[name]) for name, a in model.state_dict().items())  # exact: copies


@pytest.mark.parametrize("old", ["sharded-safetensors", "bin"])
def test_saving_over_another_layout_leaves_only_the_new_weights(tmp_path, old):
    model_of(seed=1).save_pretrained(tmp_path)
    if old == "sharded-safetensors":
        shard(tmp_path)
    else:
        torch.save(load_file(tmp_path / "model.safetensors"), tmp_path / "pytorch_model.bin")
        (tmp_path / "model.safetensors").unlink()
    new = model_of(seed=2)
    new.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    assert_same_weights(gt.load(tmp_path)[0], new)
    theirs = gt.reference.from_pretrained(tmp_path)  # what transformers reads: the new weights too
    with torch.no_grad():  # eager without its cache (which would make k and v new contiguous tensors: another BLAS
        # call) runs our plain path's ops on the same shapes and strides: bit-equal by construction
        assert torch.equal(theirs(IDS, use_cache=False).logits, new(IDS, output_attentions=True).logits)


def test_load_refuses_a_directory_with_two_layouts_of_one_format(tmp_path):
    model_of().save_pretrained(tmp_path)
    shard(tmp_path)
    model_of(seed=3).save_pretrained(tmp_path / "other")
    (tmp_path / "other" / "model.safetensors").rename(tmp_path / "model.safetensors")  # whole and sharded
    with pytest.raises(CheckpointError, match="two checkpoints"):
        gt.load(tmp_path)


def test_load_refuses_an_index_that_names_missing_shards(tmp_path):
    model_of().save_pretrained(tmp_path)
    shard(tmp_path)
    (tmp_path / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing, first 'model-00002-of-00002.safetensors'"):
        gt.load(tmp_path)


def test_saving_into_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(GPTJTeachError, match="is a file"):
        model_of().save_pretrained(tmp_path / "file")


@pytest.mark.parametrize("failure", [OSError("No space left on device"), KeyboardInterrupt()])
def test_a_save_that_fails_leaves_the_old_checkpoint_and_no_work_files(tmp_path, monkeypatch, failure):
    old = model_of(seed=1)
    old.save_pretrained(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def full_disk(*args, **kwargs):
        raise failure

    monkeypatch.setattr(gt.saving, "save_file", full_disk)
    with pytest.raises(type(failure)):
        model_of(seed=2, n_layer=1).save_pretrained(tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing left, nothing changed
    assert_same_weights(gt.load(tmp_path)[0], old)


def test_the_next_save_clears_the_work_folder_a_killed_save_left(tmp_path):
    (tmp_path / gt.saving.WORK).mkdir(parents=True)
    (tmp_path / gt.saving.WORK / "model.safetensors").write_bytes(b"half a file")
    model_of().save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]


# The child builds a model, then saves it over the checkpoint in argv[1]; publish (the renames) is replaced by
# "say so and wait", so the parent's SIGKILL lands after every byte is written and before anything is renamed.
CHILD = """
import json, sys, time, torch, transformers
import gptj_teach as gt
def wait_for_the_kill(work, path):
    open(sys.argv[3], "w").close()
    time.sleep(600)
gt.saving.publish = wait_for_the_kill
torch.manual_seed(7)
gt.GPTJForCausalLM(transformers.GPTJConfig(**json.loads(sys.argv[2]))).init_weights().save_pretrained(sys.argv[1])
"""


def test_a_save_killed_mid_way_leaves_the_old_checkpoint_loadable(tmp_path):
    """Over the same config and over a different one (2 layers over 4): both children run at once, to save time."""
    old = model_of(seed=1, n_layer=4)
    cases = {"same config": old.config.to_dict(), "different config": make_config("small", n_layer=2).to_dict()}
    children = {}
    for case, config in cases.items():
        directory, ready = tmp_path / case, tmp_path / f"{case}.ready"
        old.save_pretrained(directory)
        children[case] = subprocess.Popen([sys.executable, "-c", CHILD, str(directory), json.dumps(config), str(ready)])
    try:
        deadline = time.time() + 120
        while not all((tmp_path / f"{case}.ready").exists() for case in cases) and time.time() < deadline:
            assert all(child.poll() is None for child in children.values()), "a child ended before the kill"
            time.sleep(0.05)
    finally:
        for child in children.values():
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
    for case in cases:
        assert (tmp_path / case / gt.saving.WORK / "model.safetensors").exists(), f"{case}: killed too early"
        assert_same_weights(gt.load(tmp_path / case)[0], old)
