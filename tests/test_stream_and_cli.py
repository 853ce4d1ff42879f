"""Streaming never shows a broken character; the command line streams text and explains bad input."""

import subprocess
import sys

import pytest
import torch

import gptj_teach as gt

TOK = gt.load_tokenizer()


@pytest.fixture(scope="module")
def byte_model():
    """A GPT-J that recites ``MULTIBYTE`` token after token, several of its characters spread over 2-3 tokens.

    Attention and MLP outputs are zeroed, so the next token depends on the current one only; each token has a
    one-hot embedding, and its lm_head row points at the token that follows it in the text (and wraps around).
    """
    chain = TOK(MULTIBYTE).input_ids
    assert len(set(chain)) == len(chain) <= 32
    config = gt.checkpoint.GPTJConfig(vocab_size=50400, n_embd=32, n_head=2, rotary_dim=8, n_layer=1, n_positions=128)
    model = gt.GPTJForCausalLM(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.transformer.ln_f.weight.fill_(1.0)
        model.lm_head.bias.fill_(-30.0)
        for i, token in enumerate(chain):
            model.transformer.wte.weight[token, i] = 1.0
            after = chain[(i + 1) % len(chain)]
            model.lm_head.weight[after] = 3.0 * model.transformer.ln_f(model.transformer.wte.weight[token])
            model.lm_head.bias[after] = 0.0
    return model


MULTIBYTE = "漢字 é 🙂 naïve ∑"


@pytest.mark.parametrize("seed", range(3))
def test_every_streamed_piece_is_valid_text_and_they_join_to_the_decode(byte_model, seed):
    pieces = list(gt.stream(byte_model, TOK, "漢", max_new_tokens=35, do_sample=True, temperature=0.7, seed=seed))
    assert pieces and all("\ufffd" not in p for p in pieces)  # never half a character
    assert any(len(p.encode()) > len(p) for p in pieces)  # multi-byte characters did come through
    torch.manual_seed(seed)
    ids = TOK("漢", return_tensors="pt").input_ids
    new = gt.generate(byte_model, ids, max_new_tokens=35, do_sample=True, temperature=0.7)[0, ids.shape[1] :]
    assert "".join(pieces) == TOK.decode(new)
    assert len(pieces) < len(new)  # some tokens were held back until their character was complete


SETTINGS = [dict(), dict(do_sample=True), dict(do_sample=True, temperature=1.8, top_k=20, top_p=0.95)]


@pytest.mark.parametrize("settings", SETTINGS, ids=["greedy default", "sample", "sample filtered"])
def test_generate_and_stream_give_the_same_tokens_under_the_same_seed_and_settings(settings):
    """A random model (its next token is not a function of the current one, unlike byte_model's) whose eos gets
    a bias that makes it likely, so that both loops meet it and stop."""
    config = gt.checkpoint.GPTJConfig(
        vocab_size=50400,
        n_embd=32,
        n_head=2,
        rotary_dim=8,
        n_layer=2,
        n_positions=128,
        eos_token_id=TOK(" the").input_ids[0],
    )
    torch.manual_seed(0)
    model = gt.GPTJForCausalLM(config).eval().init_weights(std=0.4)
    with torch.no_grad():
        model.lm_head.bias[config.eos_token_id] = 12.0
    ids, stopped = TOK("The cat", return_tensors="pt").input_ids, 0
    for seed in range(4):
        pieces = list(gt.stream(model, TOK, "The cat", 40, seed=seed, **settings))
        new = gt.generate(model, ids, 40, seed=seed, **settings)[0, ids.shape[1] :].tolist()
        if config.eos_token_id in new:  # generate fills a finished row with eos; stream stops at the first
            new, stopped = new[: new.index(config.eos_token_id) + 1], stopped + 1
        assert "".join(pieces) == TOK.decode(new), f"seed {seed}"
    assert stopped > 0  # the stop at eos was exercised


def test_stream_stops_at_eos_on_the_fast_path_too(byte_model):
    """The fast loop reads 'all finished' every 16 steps only; stream stops at the first eos itself, so the text
    is the eager loop's: the recited text up to the eos token."""
    chain = TOK(MULTIBYTE).input_ids
    eager = "".join(gt.stream(byte_model, TOK, "漢", 30, eos_token_id=chain[6]))
    assert eager == "".join(gt.stream(byte_model, TOK, "漢", 30, eos_token_id=chain[6], fast=True))
    assert eager.endswith(TOK.decode(chain[6])) and len(eager) < len(MULTIBYTE)


def test_a_character_split_over_tokens_is_held_back_until_complete():
    ids = TOK("漢").input_ids
    assert len(ids) > 1 and TOK.decode(ids[:1]).endswith("\ufffd")  # the premise: one token is not a character


@pytest.mark.parametrize("prompt, error", [(123, TypeError), (b"bytes", TypeError), ("", ValueError)])
def test_stream_refuses_bad_prompts(byte_model, prompt, error):
    with pytest.raises(error):
        next(gt.stream(byte_model, TOK, prompt))


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "gptj_teach", *args], capture_output=True, text=True, timeout=300)


def test_cli_generates_from_a_checkpoint_directory(tmp_path, byte_model):
    byte_model.save_pretrained(tmp_path)
    result = run_cli("generate", MULTIBYTE, "--model", str(tmp_path), "--max-new-tokens", "8", "--seed", "0")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(MULTIBYTE) and len(result.stdout) > len(MULTIBYTE) + 1


def test_cli_explains_bad_input_without_a_traceback(tmp_path):
    result = run_cli("generate", "x", "--model", str(tmp_path / "missing"))
    assert result.returncode == 2
    assert "no such directory" in result.stderr and "Traceback" not in result.stderr
    result = run_cli("generate", "x", "--model", str(tmp_path / "missing"), "--temperature", "0")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    # the settings are checked before the model is looked for: a bad value stops before any loading
    result = run_cli("generate", "x", "--model", str(tmp_path / "missing"), "--top-p", "1.5")
    assert result.returncode == 2 and "top_p must be in (0, 1]" in result.stderr
    assert "no such directory" not in result.stderr and "Traceback" not in result.stderr
    result = run_cli("generate", "x", "--model", str(tmp_path / "missing"), "--top-p", "1.5", "--greedy")
    assert "no such directory" in result.stderr  # greedy: top-p plays no part, so it is not refused
