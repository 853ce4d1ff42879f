"""Checkpoints in the Hugging Face layout: written by transformers, read by us, and the other way round."""

import copy
import json
import sys
from pathlib import Path

import pytest
import torch
from helpers import make_config, make_pair

import gptj_teach as gt
from gptj_teach import reference as ref
from gptj_teach.checkpoint import CheckpointError, read_safetensors

IDS = torch.tensor([[5, 17, 33, 2, 90, 41, 7]])


@pytest.fixture(scope="module")
def reference():
    # head_dim 16: sqrt(16) is exact, so transformers' two spellings of the scaling (<= 5.23 divides by sqrt(head_dim),
    # >= 5.24 multiplies by head_dim ** -0.5) give the same bits, and loading can be checked with torch.equal
    hf, _ = make_pair(make_config("small", n_inner=72))
    with torch.no_grad():
        logits = hf(IDS).logits
    return hf, logits


def save_bin(model, path, shards=1):
    """The pre-safetensors layout: pytorch_model.bin, or shards with pytorch_model.bin.index.json."""
    model.config.save_pretrained(path)
    names = list(model.state_dict())
    if shards == 1:
        torch.save(model.state_dict(), path / "pytorch_model.bin")
        return
    weight_map = {}
    for i in range(shards):
        file = f"pytorch_model-{i + 1:05d}-of-{shards:05d}.bin"
        part = {n: model.state_dict()[n] for n in names[i::shards]}
        torch.save(part, path / file)
        weight_map.update(dict.fromkeys(part, file))
    (path / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


def save(model, path, layout):
    """``model`` written in one of the four layouts a checkpoint directory can have."""
    if layout.endswith("bin"):
        save_bin(model, path, shards=3 if layout == "sharded-bin" else 1)
    else:
        model.save_pretrained(path, max_shard_size="20KB" if layout == "sharded-safetensors" else "5GB")


@pytest.mark.parametrize("layout", ["safetensors", "sharded-safetensors", "bin", "sharded-bin"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_transformers_checkpoints_load_and_give_the_reference_logits(reference, tmp_path, layout, dtype):
    hf = copy.deepcopy(reference[0]).to(dtype)
    save(hf, tmp_path, layout)
    if layout == "sharded-safetensors":
        assert len(list(tmp_path.glob("model-*.safetensors"))) > 1
    model, tok = gt.load(tmp_path, dtype=dtype)
    with torch.no_grad():
        # eager (fp32 scores, like our plain path) without its cache, which would hand attention k and v as new
        # contiguous tensors (another BLAS call): the same ops on the same shapes and strides, bit-equal by construction
        theirs = ref.from_pretrained(tmp_path, dtype=dtype)(IDS, use_cache=False).logits
        assert torch.equal(model(IDS, output_attentions=True).logits, theirs)
    assert model.dtype == dtype and not model.training and len(tok) == 50400


def test_pytorch_model_bin_written_by_torch_save_loads(reference, tmp_path):
    hf, logits = reference
    hf.config.save_pretrained(tmp_path)
    state = dict(hf.state_dict())
    state["transformer.h.0.attn.bias"] = torch.ones(1, 1, 8, 8, dtype=torch.bool)  # legacy buffers, dropped
    state["transformer.h.0.attn.masked_bias"] = torch.tensor(-1e9)
    torch.save(state, tmp_path / "pytorch_model.bin")
    model, _ = gt.load(tmp_path)
    with torch.no_grad():
        assert (model(IDS).logits - logits).abs().max() <= 1e-5


def test_our_checkpoint_loads_in_transformers(reference, tmp_path):
    hf, logits = reference
    ours = gt.GPTJForCausalLM.from_transformers(hf)
    ours.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "gptj" and config["architectures"] == ["GPTJForCausalLM"]
    with torch.no_grad():
        reloaded = ref.from_pretrained(tmp_path)  # eager, like the reference that made `logits`
        assert torch.equal(reloaded(IDS).logits, logits)  # by construction: transformers' own code both times


def test_fp16_save_loads_back_as_fp32(reference, tmp_path):
    hf, logits = reference
    gt.GPTJForCausalLM.from_transformers(hf).save_pretrained(tmp_path, dtype=torch.float16)
    model, _ = gt.load(tmp_path)
    assert model.dtype == torch.float32
    with torch.no_grad():
        assert (model(IDS).logits - logits).abs().max() < 1e-2  # fp16 rounding of the weights only


def mapped_from(directory: Path) -> list[tuple[int, int]]:
    """The address ranges of this process's memory maps of files in ``directory`` (Linux' /proc/self/maps)."""
    ranges = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and Path(fields[5]).parent == directory:
            start, end = (int(address, 16) for address in fields[0].split("-"))
            ranges.append((start, end))
    return ranges


@pytest.mark.skipif(sys.platform != "linux", reason="reads Linux's /proc/self/maps")
@pytest.mark.parametrize("layout", ["sharded-safetensors", "bin"])
def test_weights_already_in_the_wanted_dtype_are_the_file_s_own_pages(reference, tmp_path, layout):
    save(copy.deepcopy(reference[0]).half(), tmp_path, layout)
    kept, _ = gt.load(tmp_path, dtype=torch.float16)  # the file's dtype, on the CPU: no copy
    converted, _ = gt.load(tmp_path, dtype=torch.float32)
    maps = mapped_from(tmp_path)

    def in_the_file(p):
        return any(start <= p.data_ptr() < end for start, end in maps)

    assert all(in_the_file(p) for p in kept.parameters())
    assert all(p.untyped_storage().nbytes() == p.nbytes for p in kept.parameters())  # torch.save(p) saves p alone
    assert not any(in_the_file(p) for p in converted.parameters())


@pytest.mark.parametrize("layout", ["safetensors", "bin"])
def test_the_model_outlives_the_files_it_was_loaded_from(reference, tmp_path, layout):
    hf, logits = reference
    save(hf, tmp_path, layout)
    model, _ = gt.load(tmp_path)  # fp32, like the file: the weights are views of its memory map
    for path in tmp_path.iterdir():
        path.unlink()
    with torch.no_grad():
        assert (model(IDS).logits - logits).abs().max() <= 1e-5


def test_training_and_saving_over_the_loaded_file_leave_each_other_alone(reference, tmp_path):
    """The map is copy-on-write: changing a loaded weight leaves the file as it was. And save_pretrained writes a
    new file and renames it, so the model still reads the old one (written in place, the half-size fp16 file
    would cut the map short under the model: a bus error at its next forward)."""
    hf, logits = reference
    hf.save_pretrained(tmp_path)
    model, _ = gt.load(tmp_path)
    with torch.no_grad():
        model.lm_head.bias += 1.0
        assert (gt.load(tmp_path)[0](IDS).logits - logits).abs().max() <= 1e-5  # the file is unchanged
        model.save_pretrained(tmp_path, dtype=torch.float16)
        assert (model(IDS).logits - (logits + 1.0)).abs().max() <= 1e-4
        assert (gt.load(tmp_path)[0](IDS).logits - (logits + 1.0)).abs().max() < 1e-2  # fp16 rounding only


def test_a_safetensors_tensor_at_an_unaligned_offset_is_read_right(tmp_path):
    """The format does not promise that a tensor starts at a multiple of its item size: such a tensor is copied
    into new memory (a view of the map would be misaligned, which torch's CPU kernels do not expect)."""
    values = torch.arange(6, dtype=torch.float32)
    header = json.dumps(
        {
            "odd": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},
            "x": {"dtype": "F32", "shape": [2, 3], "data_offsets": [1, 25]},
        }
    ).encode()
    header += b" " * (-len(header) % 8)  # the data starts 8-aligned, so "x" starts at an odd byte
    path = tmp_path / "model.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + bytes([7]) + values.numpy().tobytes())
    tensors = dict(read_safetensors(path))
    assert torch.equal(tensors["x"], values.view(2, 3)) and tensors["odd"].tolist() == [7]  # exact: the bytes read back
    assert tensors["x"].data_ptr() % values.itemsize == 0


def test_hub_id_goes_through_huggingface_hub(reference, tmp_path, monkeypatch):
    import huggingface_hub

    hf, logits = reference
    hf.save_pretrained(tmp_path)  # a local mirror of the "hub" repository
    calls = {}

    def list_repo_files(repo_id, revision=None):
        calls["list"] = (repo_id, revision)
        return [p.name for p in tmp_path.iterdir()] + ["README.md", "pytorch_model.bin"]

    def snapshot_download(repo_id, revision=None, allow_patterns=None):
        calls["download"] = (repo_id, revision, allow_patterns)
        return str(tmp_path)

    monkeypatch.setattr(huggingface_hub, "list_repo_files", list_repo_files)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    model, _ = gt.load("SomeOrg/gpt-j-mini", revision="float16")
    assert calls["list"] == ("SomeOrg/gpt-j-mini", "float16")
    assert calls["download"] == ("SomeOrg/gpt-j-mini", "float16", ["config.json", "model.safetensors"])
    with torch.no_grad():
        assert (model(IDS).logits - logits).abs().max() <= 1e-5


def test_hub_download_failure_is_explained(monkeypatch):
    import huggingface_hub

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(huggingface_hub, "list_repo_files", offline)
    with pytest.raises(CheckpointError, match="internet connection"):
        gt.load("EleutherAI/gpt-j-6B", revision="float16")


def test_cuda_requested_without_a_gpu_is_explained(reference, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")  # pragma: no cover
    reference[0].save_pretrained(tmp_path)
    with pytest.raises(gt.InputError, match="no CUDA GPU"):
        gt.load(tmp_path, device="cuda")


@pytest.mark.parametrize("cls_name", ["GPTJForSequenceClassification", "GPTJForQuestionAnswering"])
def test_every_head_loads_by_class_or_name(tmp_path, cls_name):
    labels = dict(num_labels=3, pad_token_id=0) if cls_name == "GPTJForSequenceClassification" else {}
    hf, _ = make_pair(make_config("small", **labels), cls_name)
    hf.save_pretrained(tmp_path)
    for cls in (cls_name, getattr(gt, cls_name)):
        ours, _ = gt.load(tmp_path, cls=cls)
        assert type(ours).__name__ == cls_name
        with torch.no_grad():
            mine, theirs = ours(IDS), hf(IDS)
        for field in ("logits", "start_logits", "end_logits"):
            if field in theirs:
                assert (mine[field] - theirs[field]).abs().max() <= 1e-5, field


def test_the_body_of_a_causal_lm_checkpoint_loads_as_gptjmodel(reference, tmp_path):
    hf, _ = reference
    hf.save_pretrained(tmp_path)
    body, _ = gt.load(tmp_path, cls=gt.GPTJModel)
    with torch.no_grad():
        assert (body(IDS).last_hidden_state - hf.transformer(IDS).last_hidden_state).abs().max() <= 1e-5


def test_a_head_the_checkpoint_lacks_is_named(reference, tmp_path):
    reference[0].save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="another head"):
        gt.load(tmp_path, cls="GPTJForQuestionAnswering")
    for cls in ("GPT2", [], None):
        with pytest.raises(gt.InputError, match="cls must be one of"):
            gt.load(tmp_path, cls=cls)
