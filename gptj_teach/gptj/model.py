"""The whole GPT-J: token embedding -> n_layer parallel blocks -> final LayerNorm, and three heads on top.

* ``GPTJModel``: ``wte`` (vocab_size x n_embd) -> ``h`` (the blocks) -> ``ln_f``; no position table
  (positions enter through rotary inside attention).
* ``GPTJForCausalLM``: + ``lm_head`` (n_embd -> vocab_size, **with a bias**, unlike GPT-2's tied head);
  ``labels`` give the next-token loss (labels are shifted inside, like ``transformers``).
* ``GPTJForSequenceClassification``: + ``score`` (no bias), read at the rightmost non-pad token.
* ``GPTJForQuestionAnswering``: + ``qa_outputs``, start and end logits for every token.

Parameter names equal the keys of a ``transformers`` GPT-J state dict, so a reference checkpoint loads with
``load_state_dict``. This file is the model and nothing else: the classes the package hands out
(``gt.GPTJForCausalLM``, what ``gt.load`` returns) are these with every input checked first (``api.py``), and
loading, saving and the compiled decode live outside this folder. Outputs have the fields of ``transformers``'
output classes (``outputs.py``), so tools written
for it accept ours. The KV cache (``cache.py``) goes in and out as ``cache`` (the name ``transformers`` uses
since 5.24); ``past_key_values``, the older name, is readable on an output too.

References: ``transformers.models.gptj.modeling_gptj``; nanoGPT ``model.py`` for the shape of the code.
"""

import torch
from torch import nn
from torch.nn import functional as F

from .block import GPTJBlock
from .cache import DynamicCache, KVCache
from .outputs import (
    BaseModelOutputWithPast,
    CausalLMOutputWithPast,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutputWithPast,
)
from .rotary import fixed_pos_embedding
from .sizes import rotary_dim


def make_mask(
    attention_mask: torch.Tensor | None, slots: torch.Tensor, kv_len: int, dtype: torch.dtype
) -> torch.Tensor:
    """The additive attention mask: a query may see a key when the key is not after it (causal) and is not
    padding.

    slots: (q_len,) where each query token sits in the cache (0, 1, 2, ... without one); kv_len: how many keys
    attention sees; attention_mask: (batch, kv_len) of 0/1, or None. Returns (batch or 1, 1, q_len, kv_len): 0
    where allowed, the most negative ``dtype`` number elsewhere (like ``transformers``; -inf would turn a fully
    padded row into nan).
    """
    keys = torch.arange(kv_len, device=slots.device)  # (kv_len,) the slot of each key
    allowed = (keys[None, :] <= slots[:, None])[None, None]  # (1, 1, q_len, kv_len): causal
    if attention_mask is not None:
        allowed = allowed & attention_mask[:, None, None, :].bool()  # (batch, 1, q_len, kv_len)
    zeros = torch.zeros(allowed.shape, dtype=dtype, device=slots.device)
    return zeros.masked_fill(~allowed, torch.finfo(dtype).min)


def positions_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Rotary positions that skip padding: (batch, seq) -> (batch, seq), 0 at each row's first real token.

    A left-padded prompt then gets the positions it would have alone. Padding gets 1 (any value will do: it
    is masked). This is what ``transformers``' ``generate`` passes; its plain forward, like ours, counts
    padding (positions 0, 1, 2, ... of the cache), so pass these to the forward of a left-padded batch.
    """
    positions = attention_mask.long().cumsum(-1) - 1  # (batch, seq)
    return positions.masked_fill(attention_mask == 0, 1)


class GPTJPreTrained(nn.Module):
    """What every GPT-J class shares: initial weights, device and dtype."""

    @torch.no_grad()
    def init_weights(self, std: float = 0.02) -> "GPTJPreTrained":
        """Random weights the GPT-2 / GPT-J way, for training from scratch: every matrix and the embedding drawn
        from N(0, std), biases 0, LayerNorms the identity (weight 1, bias 0). Uses the global torch generator,
        so ``torch.manual_seed`` first makes it repeatable. Returns the model."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=std)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
            if isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype


class GPTJModel(GPTJPreTrained):
    """The GPT-J body. ``forward`` returns ``last_hidden_state`` (batch, seq, n_embd) and optional extras."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.drop = nn.Dropout(config.embd_pdrop)
        self.h = nn.ModuleList(GPTJBlock(config, layer_idx) for layer_idx in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.rotary_dim = rotary_dim(config)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        position_ids: torch.Tensor | None = None,
        use_cache: bool = False,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ) -> BaseModelOutputWithPast:
        """input_ids: (batch, seq); attention_mask: (batch, cached + seq) 0/1; cache: a ``DynamicCache`` or
        ``StaticCache`` (``cache.py``), the ``.cache`` of an earlier output, updated in place; position_ids:
        (batch, seq), by default each token's slot in the cache (0, 1, 2, ... after the cached ones), as in
        ``transformers``: for a left-padded batch pass ``positions_from_mask``."""
        cache = DynamicCache() if cache is None and use_cache else cache
        batch, seq = input_ids.shape
        x = self.drop(self.wte(input_ids))  # (batch, seq, n_embd)
        slots = torch.arange(seq, device=x.device) if cache is None else cache.slots_for(seq, x.device)  # (seq,)
        position_ids = (slots[None] if position_ids is None else position_ids).expand(batch, -1)  # (batch, seq)
        mask = make_mask(attention_mask, slots, seq if cache is None else cache.key_length(seq), x.dtype)
        rotation = fixed_pos_embedding(position_ids, self.rotary_dim, x.dtype)  # sin, cos: the same in every layer
        hidden, attentions = [], []
        for block in self.h:
            hidden.append(x)
            x, weights = block(x, position_ids, mask, cache, output_attentions, rotation)
            attentions.append(weights)
        x = self.ln_f(x)
        return BaseModelOutputWithPast(
            last_hidden_state=x,
            cache=cache if use_cache else None,
            hidden_states=tuple(hidden) + (x,) if output_hidden_states else None,
            attentions=tuple(attentions) if output_attentions else None,
        )


class GPTJForCausalLM(GPTJPreTrained):
    """GPT-J with its language-model head: ``logits = lm_head(transformer(ids))``, (batch, seq, vocab_size)."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.transformer = GPTJModel(config)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        position_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        use_cache: bool = False,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        logits_to_keep: int = 0,
    ) -> CausalLMOutputWithPast:
        """labels: (batch, seq), usually ``input_ids`` itself; -100 marks positions to ignore.
        logits_to_keep: compute the logits of the last this many positions only (0: all). Generation needs
        the last one: for a 2,000-token prompt on GPT-J 6B that skips a (2000, 50400) matmul and 400 MB."""
        out = self.transformer(
            input_ids, attention_mask, cache, position_ids, use_cache, output_attentions, output_hidden_states
        )
        hidden = out.last_hidden_state[:, -logits_to_keep:] if logits_to_keep else out.last_hidden_state
        logits = self.lm_head(hidden)  # (batch, seq or logits_to_keep, vocab_size)
        loss = None if labels is None else next_token_loss(logits, labels)
        return CausalLMOutputWithPast(
            loss=loss, logits=logits, cache=out.cache, hidden_states=out.hidden_states, attentions=out.attentions
        )


def next_token_loss(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of predicting token t+1 from position t: the logits at t are scored against labels[t+1].

    logits (batch, seq, vocab), labels (batch, seq), usually the input ids themselves; -100 marks a label to skip.
    reduction: "mean" (one number, what training minimises) or "none" (batch, seq - 1), one loss per prediction.
    References: ``transformers``' ``ForCausalLMLoss`` (it shifts the same way).
    """
    return cross_entropy(logits[:, :-1], labels[:, 1:], reduction)  # the last position has nothing to predict


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """-log softmax(logits)[target] at each position, in fp32: logits (batch, seq, vocab) against the targets
    (batch, seq) *at the same positions* (already shifted); -100 marks a target to skip."""
    losses = F.cross_entropy(
        logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100, reduction=reduction
    )  # (batch * seq, vocab) against (batch * seq,)
    return losses.view(targets.shape) if reduction == "none" else losses


class GPTJForSequenceClassification(GPTJPreTrained):
    """GPT-J + ``score`` (no bias) read at the rightmost non-pad token: logits (batch, num_labels)."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.transformer = GPTJModel(config)
        self.score = nn.Linear(config.n_embd, config.num_labels, bias=False)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ) -> SequenceClassifierOutputWithPast:
        """labels: (batch,) class ids (cross-entropy), floats for num_labels == 1 (regression) or (batch, num_labels)
        multi-hot floats (binary cross-entropy), the three cases of ``transformers``."""
        pad = getattr(self.config, "pad_token_id", None)  # unset, it is no attribute at all in some 5.x releases
        out = self.transformer(
            input_ids, attention_mask, None, position_ids, False, output_attentions, output_hidden_states
        )
        logits = self.score(out.last_hidden_state)  # (batch, seq, num_labels)
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)  # (seq,)
        last = -1 if pad is None else (positions * (input_ids != pad)).argmax(-1)  # (batch,) rightmost non-pad
        pooled = logits[torch.arange(input_ids.shape[0], device=logits.device), last]  # (batch, num_labels)
        loss = None if labels is None else classification_loss(pooled, labels)
        return SequenceClassifierOutputWithPast(
            loss=loss, logits=pooled, hidden_states=out.hidden_states, attentions=out.attentions
        )


def classification_loss(pooled: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Regression (one label), single-label (integer labels) or multi-label (float labels) loss."""
    if pooled.shape[-1] == 1:
        return F.mse_loss(pooled.squeeze(), labels.squeeze().to(pooled.dtype))
    if not labels.dtype.is_floating_point:
        return F.cross_entropy(pooled, labels.view(-1))
    return F.binary_cross_entropy_with_logits(pooled, labels)


class GPTJForQuestionAnswering(GPTJPreTrained):
    """GPT-J + ``qa_outputs``: for every token a score for "the answer starts here" and "ends here"."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.transformer = GPTJModel(config)
        self.qa_outputs = nn.Linear(config.n_embd, 2)  # start, end (transformers 5.24 fixed it at 2, as here)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        start_positions: torch.Tensor | None = None,
        end_positions: torch.Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ) -> QuestionAnsweringModelOutput:
        """start_positions, end_positions: (batch,) token indices; positions past the end are ignored in the loss."""
        out = self.transformer(
            input_ids, attention_mask, None, position_ids, False, output_attentions, output_hidden_states
        )
        start, end = self.qa_outputs(out.last_hidden_state).split(1, dim=-1)  # (batch, seq, 1) each
        start, end = start.squeeze(-1).contiguous(), end.squeeze(-1).contiguous()  # (batch, seq)
        loss = None
        if start_positions is not None:
            ignored = start.shape[1]  # an answer outside the input cannot be scored
            loss = (
                F.cross_entropy(start, start_positions.view(-1).clamp(0, ignored), ignore_index=ignored)
                + F.cross_entropy(end, end_positions.view(-1).clamp(0, ignored), ignore_index=ignored)
            ) / 2
        return QuestionAnsweringModelOutput(
            loss=loss, start_logits=start, end_logits=end, hidden_states=out.hidden_states, attentions=out.attentions
        )
