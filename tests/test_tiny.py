"""The shipped tiny GPT-J: a plain Hugging Face checkpoint that both libraries load to the same logits."""

import json
import subprocess
import sys
from pathlib import Path

import torch
import transformers

import gptj_teach as gt
from gptj_teach import reference as ref
from gptj_teach.checkpoint import TINY

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "import os\n\n\ndef read_lines(path):\n"


def test_checkpoint_is_a_small_plain_gptj():
    config = json.loads((TINY / "config.json").read_text())
    assert config["model_type"] == "gptj" and config["architectures"] == ["GPTJForCausalLM"]
    assert config["vocab_size"] == 50400 and config["n_positions"] >= 512
    assert config["n_embd"] // config["n_head"] == 64 and config["rotary_dim"] == 16
    assert sum(f.stat().st_size for f in TINY.iterdir()) <= 45e6


def test_both_libraries_load_it_to_the_same_logits_and_greedy_tokens():
    ours, tok = gt.load("tiny")
    assert ours.dtype == torch.float32 and not ours.training and ours.device.type == "cpu"
    theirs = ref.from_pretrained(TINY, dtype="auto")  # eager attention: fp32 scores, like our plain path
    assert theirs.dtype == torch.float32  # config.json says float32; the file stores fp16
    ids = tok(PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        reference = theirs(ids).logits  # |logits| reach ~20 on this trained model
        assert (ours(ids, output_attentions=True).logits - reference).abs().max() <= 1e-5  # the plain path
        assert (ours(ids).logits - reference).abs().max() <= 1e-4  # the fused path: fp32 rounding, ~1e-5 here
        expected = theirs.generate(ids, max_new_tokens=40, do_sample=False, pad_token_id=tok.eos_token_id)
    # token ids, not logits: the fused path's logits are ~1e-5 from eager's (above), and no pick here is that close to a
    # tie (logits perturbed by 1e-4 at every step give these tokens too, greedy and sampled below)
    assert torch.equal(gt.generate(ours, ids, max_new_tokens=40), expected)


def test_seeded_sampling_picks_transformers_tokens_on_the_full_vocabulary():
    """50400 logits: top-p reads the nucleus off the best candidates (fast_top_p.top_p_among_best) on most steps."""
    ours, tok = gt.load("tiny")
    theirs = ref.from_pretrained(TINY, dtype="auto")
    ids = tok(PROMPT, return_tensors="pt").input_ids
    for seed, settings in enumerate([dict(temperature=0.8, top_p=0.9), dict(temperature=1.2, top_p=0.5, top_k=40)]):
        torch.manual_seed(seed)
        expected = theirs.generate(
            ids, max_new_tokens=60, do_sample=True, pad_token_id=tok.eos_token_id, **{"top_k": 0, **settings}
        )
        torch.manual_seed(seed)
        assert torch.equal(gt.generate(ours, ids, max_new_tokens=60, do_sample=True, **settings), expected)


def test_auto_tokenizer_loads_it_offline():
    tok = transformers.AutoTokenizer.from_pretrained(TINY)
    assert len(tok) == 50400 and tok("Hello world").input_ids == [15496, 995]


def test_it_has_learnt_python():
    model, tok = gt.load("tiny")
    ids = tok(PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        loss = model(ids, labels=ids).loss.item()
    assert loss < 3.5  # an untrained model of this vocabulary scores ~10.8 nats per token


def test_model_card_reports_the_training():
    card = (TINY / "README.md").read_text()
    for fact in ("Held-out loss", "Command", "Hardware", "Corpus", "Temperature 0.7"):
        assert fact in card, fact


def test_training_script_runs_end_to_end_on_a_few_files(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(60):  # 60 small "files": every 50th is held out
        (corpus / f"m{i:02d}.py").write_text(f'def f{i}(x):\n    """Add {i}."""\n    return x + {i}\n' * 3)
    out = tmp_path / "tiny"
    result = subprocess.run(
        [
            sys.executable,
            ROOT / "scripts" / "train_tiny.py",
            "--stdlib",
            corpus,
            "--minutes",
            "0.05",
            "--seq",
            "32",
            "--batch",
            "2",
            "--work",
            tmp_path / "work",
            "--out",
            out,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "held-out loss" in result.stdout
    model, _ = gt.load(out)
    assert model.config.vocab_size == 50400 and (out / "README.md").exists()
    assert (model.lm_head.bias == -20.0).sum() > 50000  # ids never seen in training are never sampled
