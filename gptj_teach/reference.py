"""The reference, reached one way: ``transformers``' GPT-J through its public, model-level API.

Every parity check in the tests and notebooks compares ours with ``transformers``. That library keeps moving:
5.24 rewrote its GPT-J (sin/cos computed once per model by ``GPTJRotaryEmbedding`` and handed to each layer,
attention through a dispatch table whose default is PyTorch's fused ``sdpa`` instead of the fp32 eager path,
scores multiplied by ``head_dim ** -0.5`` instead of divided by ``sqrt(head_dim)``, the cache renamed from
``past_key_values`` to ``cache``). So nothing here calls a layer with its own signature: a layer's inputs are
swapped in and its outputs caught with PyTorch forward hooks during an ordinary call of the whole model, and
the next rewrite is met in this one file.

* ``build(config, cls)``, ``from_pretrained(path, cls)``: the reference with ``attn_implementation="eager"``,
  the path that computes scores in fp32 like ours (so half-precision results can be compared bit for bit);
  ``sharing(model)``: the reference on our model's own tensors (no second copy: the 6B on one GPU);
* ``block_outputs(hf_model, layer, x)``, ``attention_outputs(hf_model, layer, h)``: what one block (or its
  attention) makes of the hidden states you give it, caught with ``catch`` and ``swap_input``;
* ``forward_with_cache(hf_model, ids, cache)``: one step of decoding with the reference's own KV cache, passed
  under the name the installed release expects;
* ``rotate_every_two``, ``apply_rotary_pos_emb``, ``create_sinusoidal_positions``: the reference's rotary
  functions (module-level functions, the same in 4.57 and every 5.x release so far).

References: ``transformers.models.gptj.modeling_gptj``; PyTorch ``Module.register_forward_hook``.
"""

import inspect
from contextlib import contextmanager

import torch
import transformers
from transformers.models.gptj.modeling_gptj import apply_rotary_pos_emb, create_sinusoidal_positions, rotate_every_two  # noqa: F401

AUTO_CLASSES = {
    "GPTJModel": "AutoModel",
    "GPTJForCausalLM": "AutoModelForCausalLM",
    "GPTJForSequenceClassification": "AutoModelForSequenceClassification",
    "GPTJForQuestionAnswering": "AutoModelForQuestionAnswering",
}
ATTENTION = "eager"  # transformers' own fp32 path; its default became "sdpa" in 5.24


def auto_class(cls: str):
    """The ``transformers`` Auto class that builds the GPT-J class named ``cls`` (e.g. ``"GPTJForCausalLM"``)."""
    if cls not in AUTO_CLASSES:
        raise ValueError(f"cls must be one of {', '.join(AUTO_CLASSES)}, got {cls!r}")
    return getattr(transformers, AUTO_CLASSES[cls])


def build(config, cls: str = "GPTJForCausalLM", attn_implementation: str = ATTENTION):
    """A randomly initialised ``transformers`` GPT-J from ``config``, in eval mode."""
    return auto_class(cls).from_config(config, attn_implementation=attn_implementation).eval()


def from_pretrained(
    path, cls: str = "GPTJForCausalLM", dtype=torch.float32, attn_implementation: str = ATTENTION, **kwargs
):
    """A ``transformers`` GPT-J loaded from a checkpoint directory or hub id, in eval mode, in ``dtype``."""
    return auto_class(cls).from_pretrained(path, dtype=dtype, attn_implementation=attn_implementation, **kwargs).eval()


def sharing(model, cls: str = "GPTJForCausalLM", attn_implementation: str = ATTENTION):
    """A ``transformers`` GPT-J on *our* model's tensors: no second copy of the weights (6B on one GPU).

    Built on the meta device, its parameters assigned ours, its sinusoid tables (each attention layer's: a plain
    tensor attribute in 4.x, a non-persistent buffer up to 5.23; one ``rotary_emb``'s from 5.24) computed for
    real on the weights' device.
    """
    with torch.device("meta"):
        theirs = auto_class(cls).from_config(model.config, attn_implementation=attn_implementation)
    theirs.load_state_dict(model.state_dict(), assign=True, strict=False)  # legacy buffers are not ours to give
    device = next(model.parameters()).device
    for module in theirs.modules():  # setattr keeps a buffer a (non-persistent) buffer, a plain attribute plain
        table = getattr(module, "embed_positions", None)  # (n_positions, rotary_dim): the sinusoid table
        if isinstance(table, torch.Tensor) and table.is_meta:
            module.embed_positions = create_sinusoidal_positions(*table.shape).to(device)
        scale = getattr(module, "scale_attn", None)  # 4.x: sqrt(head_dim), a plain tensor attribute too
        if isinstance(scale, torch.Tensor) and scale.is_meta:
            module.scale_attn = torch.tensor(module.head_dim, dtype=torch.float32).sqrt().to(torch.get_default_dtype())
    plain = [
        (f"{name}.{key}", t)
        for name, m in theirs.named_modules()
        for key, t in vars(m).items()
        if isinstance(t, torch.Tensor)
    ]  # tensors kept as plain attributes, not parameters or buffers
    left = [name for name, t in [*theirs.named_parameters(), *theirs.named_buffers(), *plain] if t.is_meta]
    if left:
        raise RuntimeError(
            f"reference.sharing: this transformers release keeps {left[0]!r} where we do not: "
            "update gptj_teach/reference.py"
        )
    return theirs.eval()


def cache_of(output):
    """The KV cache of a ``transformers`` output, under whichever name this release gives it."""
    fields = output.keys()  # a ModelOutput is a dict of the fields that were set
    return output["cache"] if "cache" in fields else output.get("past_key_values")


@contextmanager
def catch(hf_model, *names: str):
    """Catch what the named submodules (``"transformer.h.0.attn"``, ...) output while the block runs.

    Yields a dict name -> list of outputs, one per call (the first element when a module returns a tuple).
    """
    caught = {name: [] for name in names}

    def hook_for(name):
        def hook(module, args, output):
            caught[name].append(output[0] if isinstance(output, tuple) else output)

        return hook

    handles = [hf_model.get_submodule(name).register_forward_hook(hook_for(name)) for name in names]
    try:
        yield caught
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def swap_input(module, x: torch.Tensor):
    """While the block runs, ``module`` reads ``x`` instead of the hidden states it is handed."""

    def swap(module, args, kwargs):  # the hidden states arrive first, by position or by name
        return ((x, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": x})

    handle = module.register_forward_pre_hook(swap, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


def cache_argument_name(hf_model) -> str:
    """``"cache"`` from transformers 5.24 on, ``"past_key_values"`` before (5.24 still takes it, with a warning)."""
    return "cache" if "cache" in inspect.signature(hf_model.forward).parameters else "past_key_values"


def forward_with_cache(hf_model, input_ids, cache=None, **kwargs):
    """One call of the reference with its KV cache. Returns (output, the cache to pass to the next call)."""
    out = hf_model(input_ids, use_cache=True, **{cache_argument_name(hf_model): cache}, **kwargs)
    return out, cache_of(out)


@torch.no_grad()
def block_outputs(hf_model, layer: int, x: torch.Tensor, attention_mask=None, position_ids=None) -> dict:
    """Run the reference's block ``layer`` on hidden states ``x`` (batch, seq, n_embd) and catch what it makes.

    The whole model runs as usual (on placeholder token ids of x's shape, with ``attention_mask`` and
    ``position_ids`` if given) while the block reads ``x``. Returns ``attn`` and ``mlp``, what the two branches
    make of ``ln_1(x)``, ``block``, the block's output ``x + attn + mlp`` (each (batch, seq, n_embd)), and the
    attention ``weights`` (batch, heads, seq, seq).
    """
    prefix = block_name(hf_model, layer)
    names = {"attn": f"{prefix}.attn", "mlp": f"{prefix}.mlp", "block": prefix}
    with swap_input(hf_model.get_submodule(prefix), x), catch(hf_model, *names.values()) as caught:
        out = run_body(hf_model, x, attention_mask, position_ids)
    return {key: caught[name][0] for key, name in names.items()} | {"weights": out.attentions[layer]}


@torch.no_grad()
def attention_outputs(hf_model, layer: int, h: torch.Tensor, attention_mask=None, position_ids=None):
    """The reference's attention of ``layer`` on ``h`` (batch, seq, n_embd), what it reads after ``ln_1``.

    Returns (output (batch, seq, n_embd), weights (batch, heads, seq, seq)).
    """
    prefix = f"{block_name(hf_model, layer)}.attn"
    with swap_input(hf_model.get_submodule(prefix), h), catch(hf_model, prefix) as caught:
        out = run_body(hf_model, h, attention_mask, position_ids)
    return caught[prefix][0], out.attentions[layer]


def block_name(hf_model, layer: int) -> str:
    """The submodule name of block ``layer``: ``transformer.h.3`` in a model with a head, ``h.3`` in the body."""
    return f"h.{layer}" if hf_model.base_model is hf_model else f"{hf_model.base_model_prefix}.h.{layer}"


def run_body(hf_model, x, attention_mask, position_ids):
    """The reference's body (``transformer``) on placeholder ids of x's (batch, seq), with attention weights."""
    ids = torch.zeros(x.shape[:2], dtype=torch.long, device=x.device)  # (batch, seq); hooks swap in x
    return hf_model.base_model(ids, attention_mask=attention_mask, position_ids=position_ids, output_attentions=True)
