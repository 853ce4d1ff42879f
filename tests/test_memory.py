"""gt.show.memory against the models themselves: parameter counts, weight bytes and KV-cache bytes are measured on
real transformers / gptj_teach models (random small configs; the 6B shape on the meta device)."""

import matplotlib
import matplotlib.pyplot as plt
import pytest
import torch
import transformers
from helpers import CONFIGS, make_config

import gptj_teach as gt

matplotlib.use("Agg")
memory = gt.show.memory


def numel(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", list(CONFIGS))
def test_parameter_count_equals_transformers_and_ours(name):
    config = make_config(name)
    assert memory.parameter_count(config) == numel(transformers.GPTJForCausalLM(config))
    assert memory.parameter_count(config) == numel(gt.GPTJForCausalLM(config))


def test_parameter_count_of_the_6b_on_the_meta_device():
    config = transformers.GPTJConfig()  # the defaults are GPT-J 6B's shape
    with torch.device("meta"):
        theirs, ours = numel(transformers.GPTJForCausalLM(config)), numel(gt.GPTJForCausalLM(config))
    assert memory.parameter_count() == memory.parameter_count(config) == theirs == ours
    assert round(theirs / 1e9, 2) == 6.05  # "6B": 6.05e9 on the GPT-J model card


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_weights_bytes_equal_the_bytes_of_the_parameters(dtype):
    model = gt.GPTJForCausalLM(make_config("odd")).to(dtype)
    assert memory.weights_bytes(model.config, dtype) == sum(p.numel() * p.element_size() for p in model.parameters())


def test_bytes_per_number():
    dtypes = (torch.float32, torch.float16, torch.bfloat16, torch.int8)
    assert [memory.bytes_per_number(d) for d in dtypes] == [4, 2, 2, 1]
    assert all(memory.bytes_per_number(d) == torch.empty((), dtype=d).element_size() for d in dtypes)
    with pytest.raises(ValueError, match="dtype must be one of"):
        memory.bytes_per_number(torch.float64)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("name", list(CONFIGS))
@torch.no_grad()
def test_kv_cache_bytes_equal_the_size_of_past_key_values(name, dtype):
    config = make_config(name)
    model = gt.GPTJForCausalLM(config).to(dtype).eval()
    batch, seq = 3, 7
    past = model(torch.randint(1, 97, (batch, seq)), use_cache=True).past_key_values
    assert len(past) == config.n_layer and all(len(layer) == 2 for layer in past)  # K and V per layer
    measured = sum(t.numel() * t.element_size() for layer in past for t in layer)
    assert memory.kv_cache_bytes(config, dtype, context=seq, batch=batch) == measured
    assert memory.kv_cache_bytes_per_token(config, dtype) * batch * seq == measured


def test_the_6b_facts_the_notebooks_teach():
    p16, p32 = memory.plan(dtype=torch.float16), memory.plan(dtype=torch.float32)
    t4, colab = memory.GPUS_GB["T4"], memory.COLAB_FREE_RAM_GB
    assert round(p16.weights_gb, 1) == 12.1 and p16.weights_gb < t4 < p32.weights_gb  # fp16 fits a T4, fp32 doesn't
    assert round(p32.load_fp32_naive_gb) == 48 and p32.load_fp32_naive_gb > colab
    assert p16.run_gb < t4  # fp16 weights + a full 2048-token KV cache still fit a T4
    assert p32.train_adam_fp32_gb > memory.GPUS_GB["A100 80GB / H100"]  # Adam fp32 does not fit one 80 GB GPU


def test_plan_numbers_are_consistent():
    config = transformers.GPTJConfig()
    params = memory.parameter_count(config)
    for dtype in (torch.float32, torch.float16, torch.bfloat16, torch.int8):
        p = memory.plan(config, dtype=dtype, context=100, batch=3)
        kv_dtype = torch.float16 if dtype == torch.int8 else dtype  # int8 weights keep an fp16 cache
        assert p.parameters == params
        assert p.weights_gb == params * memory.bytes_per_number(dtype) / 1e9
        assert p.kv_cache_gb == 3 * 100 * 2 * config.n_layer * config.n_embd * memory.bytes_per_number(kv_dtype) / 1e9
        assert p.run_gb == pytest.approx(p.weights_gb + p.kv_cache_gb)
        assert p.load_fp32_naive_gb == pytest.approx(2 * params * 4 / 1e9)  # random init + state dict
        assert p.train_adam_fp32_gb == pytest.approx(4 * params * 4 / 1e9)  # weights, grads, 2 Adam moments
    assert memory.plan(batch=2).kv_cache_gb == pytest.approx(2 * memory.plan().kv_cache_gb)
    assert memory.plan(context=1024).kv_cache_gb == pytest.approx(memory.plan().kv_cache_gb / 2)


def test_plot_plan_draws_five_bars_and_the_reference_lines():
    ax = memory.plot_plan(make_config("small"), context=16)
    assert len(ax.patches) == 5
    heights = [bar.get_height() for bar in ax.patches]
    p32 = memory.plan(make_config("small"), torch.float32, context=16)
    assert heights[0] == pytest.approx(p32.load_fp32_naive_gb) and heights[-1] == pytest.approx(p32.train_adam_fp32_gb)
    levels = sorted(line.get_ydata()[0] for line in ax.get_lines())
    assert levels == sorted([*memory.GPUS_GB.values(), memory.COLAB_FREE_RAM_GB])
    plt.close(ax.figure)
