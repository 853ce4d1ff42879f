"""Bad input gets a clear error raised by gptj_teach itself, never an IndexError from inside torch."""

import json

import pytest
import torch
from helpers import make_config

import gptj_teach as gt
from gptj_teach.checkpoint import CheckpointError


@pytest.mark.parametrize(
    "ids, error, message",
    [
        (torch.tensor([[1, 2, 97]]), ValueError, "outside the vocabulary"),
        (torch.tensor([[1, -3, 2]]), ValueError, "outside the vocabulary"),
        (torch.tensor([[1.0, 2.0]]), TypeError, "integer ids"),
        (torch.tensor([1, 2, 3]), ValueError, r"shape \(batch, seq\)"),
        (torch.zeros(1, 0, dtype=torch.long), ValueError, "empty"),
        (torch.ones(1, 65, dtype=torch.long), ValueError, "n_positions"),
        ([[1, 2, 3]], TypeError, "torch.Tensor"),
    ],
)
def test_bad_input_ids(model, ids, error, message):
    with pytest.raises(error, match=message):
        model(ids)


def test_cache_plus_new_tokens_past_n_positions(model):
    out = model(torch.ones(1, 60, dtype=torch.long), use_cache=True)
    with pytest.raises(ValueError, match="n_positions"):
        model(torch.ones(1, 5, dtype=torch.long), past_key_values=out.past_key_values)


@pytest.mark.parametrize(
    "mask, message", [(torch.ones(1, 4), "shape"), (torch.ones(2, 5), "shape"), (torch.full((1, 5), 2), "only 0")]
)
def test_bad_attention_mask(model, mask, message):
    with pytest.raises(ValueError, match=message):
        model(torch.ones(1, 5, dtype=torch.long), attention_mask=mask)


def test_config_that_is_not_gptj():
    from transformers import GPT2Config

    with pytest.raises(ValueError, match="GPT-J"):
        gt.GPTJForCausalLM(GPT2Config())


def test_config_with_rotary_dim_too_large():
    with pytest.raises(ValueError, match="rotary_dim"):
        gt.GPTJForCausalLM(make_config(rotary_dim=18))  # head_dim is 16


def test_missing_directory():
    with pytest.raises(CheckpointError, match="no such directory"):
        gt.load("./no/such/checkpoint")


def test_directory_without_config(tmp_path):
    with pytest.raises(CheckpointError, match="config.json"):
        gt.load(tmp_path)


def test_config_of_another_model_type(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(CheckpointError, match="not GPT-J"):
        gt.load(tmp_path)


@pytest.fixture
def saved(tmp_path, model):
    model.save_pretrained(tmp_path)
    return tmp_path


def test_directory_without_weights(saved):
    (saved / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no weights"):
        gt.load(saved)


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_truncated_weights_file(saved, fmt):
    path = saved / "model.safetensors"
    if fmt == "bin":
        torch.save(dict(gt.load(saved)[0].state_dict()), saved / "pytorch_model.bin")
        path.unlink()
        path = saved / "pytorch_model.bin"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        gt.load(saved)


def test_weights_that_do_not_match_the_config_name_the_key(saved):
    config = json.loads((saved / "config.json").read_text())
    config["n_inner"] = 100
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"'transformer\.h\.0\.mlp\.fc_in\.(weight|bias)' has shape"):
        gt.load(saved)


def test_weights_of_a_base_model_are_explained(tmp_path, model):
    from safetensors.torch import save_file

    model.config.save_pretrained(tmp_path)
    body = {k.removeprefix("transformer."): v for k, v in model.state_dict().items() if k.startswith("transformer.")}
    save_file(body, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match="lack the 'transformer.' prefix"):
        gt.load(tmp_path)


def test_missing_weight_is_named(saved):
    from safetensors.torch import load_file, save_file

    state = load_file(saved / "model.safetensors")
    del state["lm_head.bias"]
    save_file(state, str(saved / "model.safetensors"))
    with pytest.raises(CheckpointError, match="'lm_head.bias'"):
        gt.load(saved)
