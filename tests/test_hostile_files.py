"""Checkpoint files written to mislead, and the command line abused: a clear error or a correct load, never a
traceback, and never memory the file cannot justify."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import make_config, make_pair
from safetensors.torch import load_file, save_file

import gptj_teach as gt
from gptj_teach.errors import CheckpointError

IDS = torch.tensor([[5, 17, 33, 2, 90]])
CLI = str(Path(sys.executable).with_name("gptj-teach"))  # the installed console script


@pytest.fixture
def saved(tmp_path, model):
    model.save_pretrained(tmp_path)
    return tmp_path


def write_safetensors(path: Path, header: dict, data: bytes = b"") -> None:
    """A safetensors file by hand: 8 bytes of header length, the JSON header, the data."""
    text = json.dumps(header).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + data)


MEASURE = """
import sys, gptj_teach as gt
def peak(): return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) * 1024
gt.load(sys.argv[2])  # a sound checkpoint first: the code that loading runs counts in the baseline
baseline = peak()
try:
    gt.load(sys.argv[1])
except gt.CheckpointError as error:
    print(peak() - baseline, error)
"""


def test_a_header_that_claims_3_gb_is_refused_before_any_allocation(saved, model, tmp_path_factory):
    sound = model.save_pretrained(tmp_path_factory.mktemp("sound"))
    write_safetensors(
        saved / "model.safetensors",
        {"transformer.wte.weight": {"dtype": "F32", "shape": [97, 8_000_000], "data_offsets": [0, 3_104_000_000]}},
        b"\0" * 16,
    )
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, str(saved), str(sound)], capture_output=True, text=True, timeout=120
    )
    grown, message = out.stdout.split(" ", 1)
    assert "truncated or corrupt" in message and "transformer.wte.weight" in message
    assert int(grown) < 100e6, f"refusing the file took {int(grown) / 1e6:.0f} MB"


@pytest.mark.parametrize(
    "header, data, words",
    [
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 4, "truncated or corrupt"),
        ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8, "truncated or corrupt"),
        ({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, b"\0" * 8, "malformed"),
        ({"a": {"dtype": "F32", "shape": "2", "data_offsets": [0, 8]}}, b"\0" * 8, "malformed"),
        ({"a": {"dtype": "F32", "shape": [2]}}, b"\0" * 8, "malformed"),
        ({"a": [1, 2]}, b"", "malformed"),
        ({"a": {"dtype": "F8_E8M0", "shape": [2], "data_offsets": [0, 2]}}, b"\0" * 2, "F8_E8M0"),
        ({"a": {"dtype": "C64", "shape": [1], "data_offsets": [0, 8]}}, b"\0" * 8, "C64"),
    ],
)
def test_malformed_safetensors_headers_are_named(saved, header, data, words):
    write_safetensors(saved / "model.safetensors", header, data)
    with pytest.raises(CheckpointError, match=words):
        gt.load(saved)


def test_a_header_length_past_the_end_of_the_file(saved):
    (saved / "model.safetensors").write_bytes((2**60).to_bytes(8, "little") + b"{}")
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        gt.load(saved)


def test_float8_weights_load_like_their_float32_values(saved, model):
    state = {name: t.to(torch.float8_e4m3fn) for name, t in model.state_dict().items()}
    save_file(state, str(saved / "model.safetensors"))
    loaded, _ = gt.load(saved)
    expected = make_pair(make_config("small"))[1]
    expected.load_state_dict({name: t.float() for name, t in state.items()})
    assert torch.equal(loaded(IDS).logits, expected(IDS).logits)  # the same model on the same weights: the same bits


@pytest.mark.parametrize(
    "change",
    [
        {"n_embd": "big"},
        {"n_layer": -1},
        {"n_head": 0},
        {"rotary_dim": 3},
        {"n_embd": 47},
        {"vocab_size": 1.5},
        {"layer_norm_epsilon": "tiny"},
    ],
)
def test_config_fields_of_the_wrong_type_or_size(saved, change):
    config = json.loads((saved / "config.json").read_text())
    (saved / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(CheckpointError, match="config.json"):
        gt.load(saved)


@pytest.mark.parametrize("text", ["[1, 2]", '"gptj"', "{", "\xff"])
def test_config_that_is_not_a_json_object(saved, text):
    (saved / "config.json").write_text(text, encoding="latin-1")
    with pytest.raises(CheckpointError, match="config.json"):
        gt.load(saved)


@pytest.fixture
def sharded(saved):
    state = load_file(saved / "model.safetensors")
    names = list(state)
    (saved / "model.safetensors").unlink()
    weight_map = {}
    for i, part in enumerate((names[::2], names[1::2])):
        file = f"model-{i + 1:05d}-of-00002.safetensors"
        save_file({n: state[n] for n in part}, str(saved / file))
        weight_map.update(dict.fromkeys(part, file))
    (saved / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return saved, weight_map


@pytest.mark.parametrize(
    "index, words",
    [
        ([], "shard index"),
        ({"weight_map": []}, "weight_map"),
        ({"weight_map": {}}, "weight_map"),
        ({"weight_map": {"lm_head.bias": 3}}, "plain file names"),
        ({"weight_map": {"lm_head.bias": "../../etc/passwd"}}, "plain file names"),
        ({"metadata": {}}, "shard index"),
    ],
)
def test_shard_indexes_of_the_wrong_shape(sharded, index, words):
    directory, _ = sharded
    (directory / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match=words):
        gt.load(directory)


def test_a_truncated_shard(sharded):
    directory, weight_map = sharded
    shard = directory / sorted(set(weight_map.values()))[1]
    shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="truncated"):
        gt.load(directory)


def test_an_old_format_pytorch_model_bin_loads(saved, model):
    """torch.save before torch 1.6 wrote a plain pickle, not a zip: transformers loads those, so do we."""
    (saved / "model.safetensors").unlink()
    torch.save(model.state_dict(), saved / "pytorch_model.bin", _use_new_zipfile_serialization=False)
    loaded, _ = gt.load(saved)
    assert torch.equal(loaded(IDS).logits, model(IDS).logits)  # the same model on the same weights: the same bits


@pytest.mark.parametrize("content, words", [([1, 2], "not a state dict"), ({"lm_head.bias": 3}, "holds tensors")])
def test_pytorch_model_bin_that_is_not_a_state_dict(saved, content, words):
    (saved / "model.safetensors").unlink()
    torch.save(content, saved / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=words):
        gt.load(saved)


class Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/gptj_teach_pwned",))


def test_a_pickle_that_would_run_code_is_refused(saved):
    (saved / "model.safetensors").unlink()
    torch.save({"lm_head.bias": Payload()}, saved / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="cannot read"):
        gt.load(saved)
    assert not Path("/tmp/gptj_teach_pwned").exists()


def run_cli(*args, **kwargs):
    return subprocess.run([CLI, *args], capture_output=True, timeout=300, **kwargs)


@pytest.mark.parametrize(
    "args",
    [
        ["generate"],
        ["generate", "x", "--max-new-tokens", "abc"],
        ["generate", "x", "--top-p", "2"],
        ["generate", "x", "--temperature", "nan"],
        ["generate", "x", "--temperature", "-1"],
        ["generate", "x", "--seed", "-1"],
        ["generate", "x", "--top-k", "-3"],
        ["generate", "x", "--device", "cuda:9"],
        ["generate", "x", "--device", "floppy"],
        ["generate", "x", "--model", "/no/such/dir"],
        ["generate", "x", "--max-new-tokens", "100000"],
        ["generate", ""],
        ["frobnicate"],
    ],
)
def test_cli_refuses_bad_arguments_in_one_line(args, monkeypatch, capsys):
    """In this process (a fresh interpreter per case spent 6 s importing torch): an exception that escaped main
    would fail the test here as a traceback would in a terminal. The next test runs the real program."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    try:
        code = gt.cli.main(args)
    except SystemExit as exit:  # argparse's own refusals: usage and one line, exit status 2
        code = exit.code
    err = capsys.readouterr().err
    assert code == 2 and "error" in err, (code, err)


def test_cli_refuses_bytes_that_are_not_text():
    out = run_cli(b"generate", b"def \xff\xfe():")
    assert out.returncode == 2 and b"not valid text" in out.stderr and b"Traceback" not in out.stderr, out.stderr


def test_cli_stops_quietly_when_the_reader_goes_away():
    """`gptj-teach generate ... | head -c 1`: a closed pipe ends the program with 0, like other Unix tools."""
    process = subprocess.Popen(
        [CLI, "generate", "def f():", "--max-new-tokens", "300", "--seed", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert len(process.stdout.read(1)) == 1
    process.stdout.close()  # the reader goes away
    stderr = process.stderr.read()
    assert process.wait(timeout=300) == 0, stderr
    assert b"Traceback" not in stderr and b"BrokenPipe" not in stderr, stderr


def test_cli_is_installed_as_a_console_script():
    assert shutil.which(CLI), CLI
