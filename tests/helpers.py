"""Plain helpers for the tests: small random GPT-J configs, each as a transformers model and ours sharing its
weights, and a left-padded batch. Fixtures built from them live in conftest.py; import these with
``from helpers import make_config, make_pair``."""

import torch
import transformers

import gptj_teach as gt

# Odd sizes on purpose: head_dim 16 / 8 / 32, rotary on part or all of each head, n_inner not 4 x n_embd.
CONFIGS = {
    "small": dict(n_embd=48, n_head=3, rotary_dim=6, n_layer=2),
    "odd": dict(n_embd=40, n_head=5, rotary_dim=4, n_layer=3, n_inner=72),
    "full-rotary": dict(n_embd=64, n_head=2, rotary_dim=32, n_layer=1),
}


def make_config(name="small", **overrides) -> transformers.GPTJConfig:
    """A random-weights GPT-J config; vocab 97 with eos = 0 (inside the vocabulary)."""
    kwargs = dict(vocab_size=97, n_positions=64, bos_token_id=0, eos_token_id=0, **CONFIGS[name])
    return transformers.GPTJConfig(**{**kwargs, **overrides})


def make_pair(config, cls_name="GPTJForCausalLM", seed=0):
    """(transformers model, our model sharing its tensors), both in eval mode.

    The reference runs transformers' eager attention (fp32 scores, like ours): the implementation that the
    bit-equality tests compare with, whatever a release picks by default (5.24 switched the default to sdpa).
    """
    torch.manual_seed(seed)
    hf = gt.reference.build(config, cls_name)
    with torch.no_grad():  # transformers zero-inits biases; random ones make the parity test stronger
        for name, p in hf.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.02)
    return hf, getattr(gt, cls_name).from_transformers(hf).eval()


def left_padded_batch(vocab=97, seed=1):
    """Three rows of 9 tokens; rows 1 and 2 are left-padded by 3 and 5 tokens. Returns ids, mask, positions."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (3, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[1, :3] = 0
    mask[2, :5] = 0
    ids = ids.masked_fill(mask == 0, 0)
    positions = gt.gptj.model.positions_from_mask(mask)  # what transformers' generate passes (tested in test_sampling)
    return ids, mask, positions


def notebook_function(source: str, name: str):
    """A function (or class) defined as a notebook cell defines it (its __module__ is __main__)."""
    namespace = {"__name__": "__main__", "torch": torch, "gt": gt}
    exec(source, namespace)  # noqa: S102 (our own test source)
    return namespace[name]
