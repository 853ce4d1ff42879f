"""Every intermediate activation of GPT-J by name: read them all (``run_with_cache``), or change any of them
during a forward pass (``run_with_hooks``). Built on nothing but PyTorch forward hooks.

A forward hook is a function PyTorch calls right after a module runs: ``hook(module, inputs, output)``; if it
returns something, that replaces the output. A forward *pre*-hook runs just before: ``hook(module, inputs)``,
and may replace the inputs. So to read the queries after rotary we hook the output of ``attn.rotary_q``; to read
each head's output before the heads are mixed we hook the *input* of ``attn.out_proj``. The model's own forward
is untouched: the hooks are registered, the model runs, and the hooks are removed in a ``finally``.

The names (``i`` is the layer; shapes for one batch of ``seq`` tokens; TransformerLens's name alongside)::

    name              module, read at its                shape                         TransformerLens
    embed             transformer.wte, output            (batch, seq, n_embd)          hook_embed
    h.i.resid_pre     transformer.h[i], input            (batch, seq, n_embd)          blocks.i.hook_resid_pre
    h.i.ln_1          h[i].ln_1, output                  (batch, seq, n_embd)          blocks.i.ln1.hook_normalized *
    h.i.attn.q        h[i].attn.rotary_q, output         (batch, seq, heads, head_dim) blocks.i.attn.hook_rot_q
    h.i.attn.k        h[i].attn.rotary_k, output         (batch, seq, heads, head_dim) blocks.i.attn.hook_rot_k
    h.i.attn.v        h[i].attn.v_proj, output           (batch, seq, heads, head_dim) blocks.i.attn.hook_v
    h.i.attn.pattern  h[i].attn.attn_dropout, input      (batch, heads, query, key)    blocks.i.attn.hook_pattern
    h.i.attn.z        h[i].attn.out_proj, input          (batch, seq, heads, head_dim) blocks.i.attn.hook_z
    h.i.attn.out      h[i].attn.resid_dropout, output    (batch, seq, n_embd)          blocks.i.hook_attn_out
    h.i.mlp.pre       h[i].mlp.fc_in, output             (batch, seq, n_inner)         blocks.i.mlp.hook_pre
    h.i.mlp.post      h[i].mlp.act, output               (batch, seq, n_inner)         blocks.i.mlp.hook_post
    h.i.mlp.out       h[i].mlp.dropout, output           (batch, seq, n_embd)          blocks.i.hook_mlp_out
    h.i.resid_post    transformer.h[i], output           (batch, seq, n_embd)          blocks.i.hook_resid_post
    ln_f              transformer.ln_f, output           (batch, seq, n_embd)          ln_final.hook_normalized *
    logits            lm_head, output                    (batch, seq, vocab_size)      (what the model returns)

The starred rows: TransformerLens reads a LayerNorm before its weight and bias (ours = theirs * ln.w + ln.b).
Its ``hook_q``, ``hook_k`` are *before* rotary; ours are after (its ``hook_rot_q``, ``hook_rot_k``), the vectors
whose dot products make the pattern. v and z are split into heads for you (the model keeps them as (batch, seq,
n_embd)). Because the block is parallel, ``h.i.resid_post == h.i.resid_pre + h.i.attn.out + h.i.mlp.out``: the
residual stream is a plain sum.

The pattern exists only on the plain attention path, so both functions run the model with
``output_attentions=True`` (the fused path never writes the weights down).

References: PyTorch ``nn.Module.register_forward_hook`` / ``register_forward_pre_hook``; TransformerLens
``HookedTransformer`` and ``ActivationCache`` (Nanda & Bloom, 2022), whose names the table maps.
"""

import difflib

import torch

from ..checks import check_causal_lm, describe
from ..errors import InputError, InputTypeError

LAYER_POINTS = {  # name after "h.i." -> (module inside block i, "input" or "output", split into heads?)
    "resid_pre": ("", "input", False),
    "ln_1": ("ln_1", "output", False),
    "attn.q": ("attn.rotary_q", "output", False),
    "attn.k": ("attn.rotary_k", "output", False),
    "attn.v": ("attn.v_proj", "output", True),
    "attn.pattern": ("attn.attn_dropout", "input", False),
    "attn.z": ("attn.out_proj", "input", True),
    "attn.out": ("attn.resid_dropout", "output", False),
    "mlp.pre": ("mlp.fc_in", "output", False),
    "mlp.post": ("mlp.act", "output", False),
    "mlp.out": ("mlp.dropout", "output", False),
    "resid_post": ("", "output", False),
}
MODEL_POINTS = {"embed": "transformer.wte", "ln_f": "transformer.ln_f", "logits": "lm_head"}


def hook_points(model) -> dict:
    """Every name -> (module, "input" or "output", heads to split into or None), in the order they run."""
    check_causal_lm(model)
    points = {"embed": (model.get_submodule(MODEL_POINTS["embed"]), "output", None)}
    for i, block in enumerate(model.transformer.h):
        for name, (path, where, split) in LAYER_POINTS.items():
            module = block.get_submodule(path) if path else block
            points[f"h.{i}.{name}"] = (module, where, model.config.n_head if split else None)
    points.update((name, (model.get_submodule(MODEL_POINTS[name]), "output", None)) for name in ("ln_f", "logits"))
    return points


def check_names(names, points, n_layer: int) -> None:
    """Refuse a name that is not a hook point, with the closest real names and the full list."""
    for name in names:
        if name not in points:
            close = difflib.get_close_matches(str(name), list(points), n=3)
            raise InputError(
                f"no activation is named {name!r}"
                + (f" (did you mean {', '.join(close)}?)" if close else "")
                + f"; the names are: embed, h.<layer>.<{'|'.join(LAYER_POINTS)}>, ln_f, "
                f"logits, with <layer> in 0..{n_layer - 1}"
            )


def edited(fn, x, heads, name):
    """Call fn on one activation x; return the tensor that replaces x, or None for no change.

    With ``heads`` set, fn sees x split into heads: (batch, seq, n_embd) -> (batch, seq, heads, head_dim).
    """
    seen = x if heads is None else x.unflatten(-1, (heads, -1))  # (batch, seq, heads, head_dim)
    new = fn(seen)
    if new is None:
        return None
    if not (
        isinstance(new, torch.Tensor)
        and new.shape == seen.shape
        and new.dtype == seen.dtype
        and new.device == seen.device
    ):
        raise InputError(
            f"the hook on {name!r} must return None or a tensor of shape {tuple(seen.shape)} in "
            f"{seen.dtype} on {seen.device} (the activation's own), got {describe(new)}"
            + (f" on {new.device}" if isinstance(new, torch.Tensor) else "")
        )
    return new.reshape(x.shape)  # (batch, seq, n_embd) again where it was split


def torch_hook(fn, where, heads, name):
    """Wrap fn(activation) as the PyTorch hook of the right kind for a point read at its input or output."""
    if where == "input":

        def pre_hook(module, inputs):  # inputs: the positional arguments; the activation is the first
            new = edited(fn, inputs[0], heads, name)
            return None if new is None else (new, *inputs[1:])

        return pre_hook

    def hook(module, inputs, output):  # a block returns (x, weights): x is the residual
        x = output[0] if isinstance(output, tuple) else output
        new = edited(fn, x, heads, name)
        if new is None or not isinstance(output, tuple):
            return new
        return (new, *output[1:])

    return hook


def run(model, input_ids, pairs: list):
    """Register one hook per (name, fn) pair, in order; run the model; remove every hook, whatever happens.

    Returns the logits. The plain attention path (``output_attentions=True``) is the one where a pattern exists.
    """
    points = hook_points(model)
    check_names([name for name, _ in pairs], points, model.config.n_layer)
    handles = []
    try:
        for name, fn in pairs:  # PyTorch calls a module's hooks in the order they were registered
            module, where, heads = points[name]
            register = module.register_forward_pre_hook if where == "input" else module.register_forward_hook
            handles.append(register(torch_hook(fn, where, heads, name)))
        return model(input_ids, output_attentions=True).logits
    finally:
        for handle in handles:
            handle.remove()


def check_hooks(hooks) -> list:
    """hooks as a list of (name, function) pairs; a clear error for anything that is not {name: function}."""
    if hooks is None:
        return []
    if not isinstance(hooks, dict) or not all(callable(fn) for fn in hooks.values()):
        raise InputTypeError("hooks must be a dict {name: function}, e.g. {'h.0.attn.z': fn}")
    return list(hooks.items())


def check_name_list(names) -> list:
    """names as a list: one name (a str), or a list or tuple of them."""
    if isinstance(names, str):
        return [names]
    if not isinstance(names, (list, tuple)) or not all(isinstance(name, str) for name in names):
        raise InputTypeError(
            f"names must be a name such as 'h.0.attn.pattern' or a list of them, got {describe(names)}"
        )
    return list(names)


def run_with_hooks(model, input_ids, hooks: dict):
    """Run the model with ``hooks``, {name: fn}: each fn(activation) returns its replacement (same shape), or None
    to leave it as it is. Returns the logits (batch, seq, vocab_size). Example, zero-ablate head 1 of layer 0::

        def zero_head_1(z):  # z: (batch, seq, heads, head_dim)
            z = z.clone()
            z[:, :, 1] = 0
            return z
        logits = run_with_hooks(model, ids, {"h.0.attn.z": zero_head_1})
    """
    return run(model, input_ids, check_hooks(hooks))


def run_with_cache(model, input_ids, names=None, hooks=None):
    """Run the model once and keep every activation (or only those in ``names``), after ``hooks`` (as in
    ``run_with_hooks``) have changed what they change.

    Returns (logits (batch, seq, vocab_size), cache): cache is a dict {name: tensor}, names and shapes in the
    table at the top of this module, in the order they are computed. The tensors are detached.
    """
    pairs = check_hooks(hooks)
    points = hook_points(model)
    names = list(points) if names is None else check_name_list(names)
    check_names(names, points, model.config.n_layer)
    cache = {}

    def keep(name):
        def store(x):
            cache[name] = x.detach()  # returns None: the activation is left unchanged

        return store

    logits = run(model, input_ids, pairs + [(name, keep(name)) for name in names])
    return logits, {name: cache[name] for name in points if name in cache}
