"""run_with_cache / run_with_hooks against TransformerLens's own GPT-J (an independent implementation), and the
laws an intervention must obey: an identity hook changes nothing, a zero-ablated head changes only what it feeds.

TransformerLens 3.9.0's ``HookedTransformer`` is built here without the hub: a config with GPT-J's settings and
the weights of a ``transformers`` GPT-J converted by TransformerLens's own ``convert_gptj_weights``, loaded with
every processing step (LayerNorm folding, centring) off so that its activations mean what ours mean. Tests that
import it carry the ``crosscheck`` marker (CI's lowest-versions run, whose transformers it cannot use, leaves
them out).
"""

import re

import pytest
import torch
from helpers import make_config, make_pair

import gptj_teach as gt
from gptj_teach.interpret.activations import run_with_cache, run_with_hooks

HOOKED_DEPRECATION = "ignore:HookedTransformer is deprecated:DeprecationWarning"  # 3.9.0 says so; we pin it
TOLERANCE = 1e-4  # fp32, the acceptance bound; measured maxima are printed by -s


def documented_names(n_layer: int) -> dict:
    """Our name -> (TransformerLens's name, starred: theirs is before the LayerNorm's weight and bias), read
    from the table in ``activations``' docstring: the table the docs show is the one the tests use."""
    rows = re.findall(r"^    (\S+) .* (\S+\.hook_\w+|hook_embed)( \*)?$", gt.interpret.activations.__doc__, re.M)
    assert len(rows) == 14, rows
    table = {}
    for ours, theirs, star in rows:
        layers = range(n_layer) if ours.startswith("h.i.") else [None]
        for i in layers:
            table[ours.replace(".i.", f".{i}.")] = (theirs.replace(".i.", f".{i}."), bool(star))
    return table


def hooked_transformer(hf, fold_ln=False):
    """TransformerLens's GPT-J with the weights of ``hf`` (a transformers GPTJForCausalLM), fp32, CPU, eval."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformer_lens.pretrained.weight_conversions.gptj import convert_gptj_weights

    c = hf.config
    cfg = HookedTransformerConfig(
        d_model=c.n_embd,
        d_head=c.n_embd // c.n_head,
        n_heads=c.n_head,
        d_mlp=c.n_inner or 4 * c.n_embd,
        n_layers=c.n_layer,
        n_ctx=c.n_positions,
        eps=c.layer_norm_epsilon,
        d_vocab=c.vocab_size,
        act_fn=c.activation_function,
        use_attn_scale=True,
        parallel_attn_mlp=True,
        positional_embedding_type="rotary",
        rotary_dim=c.rotary_dim,
        rotary_adjacent_pairs=True,
        normalization_type="LNPre" if fold_ln else "LN",
        original_architecture="GPTJForCausalLM",
        dtype=torch.float32,
        device="cpu",
    )
    tl = HookedTransformer(cfg)
    tl.load_and_process_state_dict(
        convert_gptj_weights(hf, cfg),
        fold_ln=fold_ln,
        center_writing_weights=fold_ln,
        center_unembed=fold_ln,
        fold_value_biases=False,
    )
    return tl.eval()


def random_pair(name, seed=0):
    """A transformers GPT-J with random weights and ours on the same tensors. Every weight is drawn (LayerNorms and
    biases too), large enough that the patterns are peaked rather than uniform: a wrong rotary would show."""
    hf, ours = make_pair(make_config(name), seed=seed)
    with torch.no_grad():
        for p_name, p in hf.named_parameters():
            if ".ln_" in p_name and p_name.endswith("weight"):
                p.normal_(1.0, 0.3)
            else:
                p.normal_(0.0, 1.0 if "wte" in p_name else 0.3 if p.ndim == 1 else p.shape[-1] ** -0.5)
    return hf, ours


def compare_with_transformer_lens(ours, hf, ids):
    """Max |ours - theirs| per kind of activation (the part of our name after the layer) and for the logits."""
    tl = hooked_transformer(hf)
    with torch.no_grad():
        logits, cache = run_with_cache(ours, ids)
        their_logits, theirs = tl.run_with_cache(ids)
    diffs = {"logits": (logits - their_logits).abs().max().item()}
    for name, (their_name, starred) in documented_names(ours.config.n_layer).items():
        want = theirs[their_name]
        if starred:  # TransformerLens hooks a LayerNorm before its affine step
            ln = their_name.rsplit(".", 1)[0]
            want = want * tl.get_submodule(ln).w + tl.get_submodule(ln).b
        kind = re.sub(r"^h\.\d+\.", "", name)
        diffs[kind] = max(diffs.get(kind, 0.0), (cache[name] - want).abs().max().item())
    return diffs


@pytest.mark.crosscheck
@pytest.mark.filterwarnings(HOOKED_DEPRECATION)
def test_every_activation_equals_transformer_lens_on_the_tiny_checkpoint(tiny, tiny_hf):
    (model, tok), hf = tiny, tiny_hf
    g = torch.Generator().manual_seed(0)
    code = tok("import os\nfor line in open(os.devnull):\n    print(line)\n", return_tensors="pt").input_ids
    for ids in (code, torch.randint(0, model.config.vocab_size, (2, 256), generator=g)):
        diffs = compare_with_transformer_lens(model, hf, ids)
        print("tiny", tuple(ids.shape), {k: f"{v:.1e}" for k, v in diffs.items()})
        assert len(diffs) == 15 and max(diffs.values()) <= TOLERANCE, diffs


@pytest.mark.crosscheck
@pytest.mark.filterwarnings(HOOKED_DEPRECATION)
@pytest.mark.parametrize("name", ["small", "odd", "full-rotary"])
def test_every_activation_equals_transformer_lens_on_a_random_config(name):
    hf, ours = random_pair(name)
    ids = torch.randint(0, ours.config.vocab_size, (3, 40), generator=torch.Generator().manual_seed(1))
    diffs = compare_with_transformer_lens(ours, hf, ids)
    print(name, {k: f"{v:.1e}" for k, v in diffs.items()})
    assert len(diffs) == 15 and max(diffs.values()) <= TOLERANCE, diffs


def test_identity_hooks_leave_the_logits_bit_equal(tiny):
    model, tok = tiny
    ids = tok("def add(a, b):\n    return a + b\n", return_tensors="pt").input_ids
    names = gt.interpret.activations.hook_points(model)
    with torch.no_grad():
        plain = model(ids, output_attentions=True).logits
        # bit-equal by construction: the same plain-path forward, hooks handing back the same values (a clone keeps
        # the strides), so the same ops on the same shapes
        assert torch.equal(run_with_hooks(model, ids, {name: (lambda x: x) for name in names}), plain)
        assert torch.equal(run_with_hooks(model, ids, {name: (lambda x: x.clone()) for name in names}), plain)
        logits, cache = run_with_cache(model, ids)
    assert torch.equal(logits, plain) and list(cache) == list(names)
    torch.testing.assert_close(logits, model(ids).logits)  # the fused path: equal up to rounding


def test_the_cache_matches_the_models_own_outputs(tiny):
    """hidden_states, attentions and the parallel block's sum, read from the model's own forward."""
    model, tok = tiny
    ids = tok("x = [i * i for i in range(10)]\n", return_tensors="pt").input_ids
    with torch.no_grad():
        out = model(ids, output_attentions=True, output_hidden_states=True)
        _, cache = run_with_cache(model, ids)
    n = model.config.n_layer  # both runs take the plain path: the same ops on the same shapes, so the same bits
    for i in range(n):
        assert torch.equal(cache[f"h.{i}.resid_pre"], out.hidden_states[i])
        assert torch.equal(cache[f"h.{i}.attn.pattern"], out.attentions[i])
        parts = cache[f"h.{i}.attn.out"] + cache[f"h.{i}.mlp.out"] + cache[f"h.{i}.resid_pre"]
        assert torch.equal(parts, cache[f"h.{i}.resid_post"])  # the block adds in this order
    assert torch.equal(cache["ln_f"], out.hidden_states[n]) and torch.equal(cache["embed"], cache["h.0.resid_pre"])


def no_hooks_left(model) -> bool:
    return not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_unknown_names_and_wrong_models_are_refused_clearly(tiny, tiny_hf):
    (model, tok), hf = tiny, tiny_hf
    ids = tok("pass", return_tensors="pt").input_ids
    with pytest.raises(gt.InputError, match=r"'h\.0\.attn\.q_rot'.*did you mean .*h\.0\.attn\.q,.*resid_pre\|ln_1"):
        run_with_cache(model, ids, names=["h.0.attn.q_rot"])
    with pytest.raises(gt.InputError, match=r"'h\.4\.mlp\.out'.*<layer> in 0\.\.3"):
        run_with_hooks(model, ids, {"h.4.mlp.out": lambda x: x})
    with pytest.raises(gt.InputTypeError, match="from_transformers"):
        run_with_cache(hf, ids)
    with pytest.raises(gt.InputTypeError, match="GPTJModel"):
        run_with_cache(model.transformer, ids)
    with pytest.raises(gt.InputTypeError, match=r"dict \{name: function\}"):
        run_with_hooks(model, ids, [("embed", lambda x: x)])
    assert list(run_with_cache(model, ids, names="ln_f")[1]) == ["ln_f"]  # one name alone is fine


def test_a_hook_that_breaks_leaves_no_hook_behind(tiny):
    model, tok = tiny
    ids = tok("pass", return_tensors="pt").input_ids
    with pytest.raises(gt.InputError, match=r"'h\.1\.attn\.z' must return None or a tensor of shape \(1, 1, 3, 64\)"):
        run_with_hooks(model, ids, {"h.0.ln_1": lambda x: None, "h.1.attn.z": lambda z: z[..., :8]})
    with pytest.raises(ZeroDivisionError):
        run_with_cache(model, ids, hooks={"h.2.mlp.post": lambda x: 1 / 0})
    assert no_hooks_left(model)
