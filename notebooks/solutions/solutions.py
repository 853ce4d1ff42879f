"""Solutions to the notebooks' "your turn" cells, as plain functions (the teacher edition of each notebook holds
them too, in its nbgrader solution cells). Try the exercise first: the hints are there to help.

Each solution is what a learner would write in the notebook, checked the same way:

    import gptj_teach as gt
    gt.classroom.exercises.check_merge_pair(merge_pair)          # ✅ Right! ...

Run ``python notebooks/solutions/solutions.py`` to check them all. It is a .py file on purpose, so that
nbval does not execute it with the notebooks.
"""

import math

import torch

import gptj_teach as gt


# 00_start_here ----------------------------------------------------------------------------------------------
def memory_fp16_gb() -> float:
    """GB (1e9 bytes) of GPT-J 6B's weights in fp16: count the parameters from the shapes, x 2 bytes."""
    d, n_layer, vocab = 4096, 28, 50400
    per_layer = 2 * d + 4 * d * d + (d * 4 * d + 4 * d) + (4 * d * d + d)  # ln_1, q/k/v/out, fc_in, fc_out
    params = vocab * d + n_layer * per_layer + 2 * d + (d * vocab + vocab)  # wte, blocks, ln_f, lm_head (+ bias)
    return params * 2 / 1e9


# 01_tokenizer ------------------------------------------------------------------------------------------------
def merge_pair(symbols: list[str], pair: tuple[str, str]) -> list[str]:
    """Replace every occurrence of ``pair``, left to right, without overlaps, by the two symbols joined."""
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            out.append(symbols[i] + symbols[i + 1])
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


def bpe(piece: str) -> list[str]:
    """GPT-2's BPE on one pre-tokenized piece: merge the best-ranked neighbouring pair until none is known."""
    ranks, byte_to_symbol = gt.gptj.tokenizer.merge_ranks(), gt.gptj.tokenizer.bytes_to_unicode()
    symbols = [byte_to_symbol[b] for b in piece.encode("utf-8")]
    while known := [pair for pair in zip(symbols, symbols[1:]) if pair in ranks]:
        symbols = merge_pair(symbols, min(known, key=ranks.get))
    return symbols


def decode(ids: list[int]) -> str:
    """ids -> token strings -> byte symbols -> bytes -> UTF-8 text (all bytes together)."""
    symbol_to_byte = {s: b for b, s in gt.gptj.tokenizer.bytes_to_unicode().items()}
    id_to_token = {i: t for t, i in gt.gptj.tokenizer.bpe_files()[0].items()}
    return bytes(symbol_to_byte[s] for i in ids for s in id_to_token[i]).decode("utf-8", errors="replace")


# 02_rotary ---------------------------------------------------------------------------------------------------
def rotate_every_two(x: torch.Tensor) -> torch.Tensor:
    """(x0, x1, x2, x3, ...) -> (-x1, x0, -x3, x2, ...): adjacent pairs, not the two halves."""
    even, odd = x[..., 0::2], x[..., 1::2]  # (..., d // 2) each
    return torch.stack((-odd, even), dim=-1).flatten(-2)  # (..., d // 2, 2) -> (..., d)


def inv_frequencies(rotary_dim: int) -> torch.Tensor:
    """theta_i = 10000 ** (-2i / d), one per adjacent pair."""
    return 1.0 / 10000 ** (torch.arange(0, rotary_dim, 2) / rotary_dim)


def apply_rotary_pos_emb(x: torch.Tensor, sin: torch.Tensor, cos: torch.Tensor) -> torch.Tensor:
    """x * cos + rotate_every_two(x) * sin, each angle repeated for both dims of its pair, broadcast over heads."""
    sin = sin.repeat_interleave(2, dim=-1)[:, :, None]  # (batch, seq, 1, rot)
    cos = cos.repeat_interleave(2, dim=-1)[:, :, None]
    return x * cos + rotate_every_two(x) * sin


# 03_attention ------------------------------------------------------------------------------------------------
def causal_mask(q_len: int, kv_len: int) -> torch.Tensor:
    """True where query i (at position kv_len - q_len + i) may attend key j: j <= its position."""
    return torch.ones(q_len, kv_len, dtype=torch.bool).tril(diagonal=kv_len - q_len)


def attention_scores(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """q k^T / sqrt(head_dim), in fp32 whatever the dtype of q and k."""
    return q.float() @ k.float().transpose(-1, -2) / math.sqrt(q.shape[-1])  # (batch, heads, q_len, kv_len)


def softmax_attention(q, k, v, mask):
    """(weights @ v, weights): softmax in fp32, weights cast back to q's dtype."""
    weights = torch.softmax(attention_scores(q, k) + mask, dim=-1).to(q.dtype)
    return weights @ v, weights


# 04_parallel_block -------------------------------------------------------------------------------------------
def parallel_block(block, x, position_ids, mask):
    """x + attn(ln_1(x)) + mlp(ln_1(x)): one LayerNorm feeds both branches."""
    h = block.ln_1(x)
    attn_out = block.attn(h, position_ids, mask)[0]  # block.attn returns (output, kv cache, weights)
    return attn_out + block.mlp(h) + x


def layer_norm(x: torch.Tensor, ln) -> torch.Tensor:
    """(x - mean) / sqrt(biased variance + eps) * weight + bias, over the last dim."""
    mean = x.mean(-1, keepdim=True)
    var = x.var(-1, keepdim=True, unbiased=False)
    return (x - mean) / torch.sqrt(var + ln.eps) * ln.weight + ln.bias


def mlp(h: torch.Tensor, m) -> torch.Tensor:
    """fc_out(gelu_new(fc_in(h)))."""
    return m.fc_out(gt.gptj.block.gelu_new(m.fc_in(h)))


# 05_model_and_checkpoint -------------------------------------------------------------------------------------
def parameter_count(config) -> int:
    """wte, then per block ln_1, q/k/v/out (no biases), fc_in and fc_out (with biases); ln_f; lm_head with its bias."""
    d, vocab, inner = config.n_embd, config.vocab_size, config.n_inner or 4 * config.n_embd
    layer_norm = 2 * d  # a weight and a bias
    block = layer_norm + 4 * d * d + (d * inner + inner) + (inner * d + d)  # ln_1, attention, MLP
    return vocab * d + config.n_layer * block + layer_norm + (d * vocab + vocab)  # wte, blocks, ln_f, lm_head


def forward(model, ids: torch.Tensor) -> torch.Tensor:
    """wte -> blocks (positions 0.., causal mask) -> ln_f -> lm_head."""
    body, seq = model.transformer, ids.shape[1]
    mask = gt.gptj.model.make_mask(None, torch.arange(seq, device=ids.device), seq, torch.float32)
    position_ids = torch.arange(seq, device=ids.device)[None]  # (1, seq)
    x = body.wte(ids)  # (batch, seq, n_embd)
    for block in body.h:
        x = block(x, position_ids, mask)[0]
    return model.lm_head(body.ln_f(x))  # (batch, seq, vocab)


def first_divergent_layer(ours, ref, tol: float) -> int | None:
    """The index of the first hidden state (0: the embedding) whose largest |ours - ref| is more than tol."""
    for index, (a, b) in enumerate(zip(ours, ref, strict=True)):
        if (a - b).abs().max() > tol:
            return index
    return None  # every layer agrees


# 05b_heads_and_logit_lens ------------------------------------------------------------------------------------
def last_token_index(input_ids: torch.Tensor, pad_token_id: int) -> torch.Tensor:
    """The rightmost non-pad position of each row: the largest index among the real tokens."""
    positions = torch.arange(input_ids.shape[1], device=input_ids.device)  # (seq,)
    return (positions * (input_ids != pad_token_id)).argmax(dim=-1)  # (batch,)


def lm_loss(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the logits at t against the token at t + 1."""
    return torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())


def logit_lens(model, hidden: torch.Tensor) -> torch.Tensor:
    """(batch, seq, n_embd) residual stream -> (batch, seq, vocab): the model's read-out, ln_f then lm_head."""
    return model.lm_head(model.transformer.ln_f(hidden))


# 06_sampling -------------------------------------------------------------------------------------------------
def top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the most likely tokens until their probability reaches p; the rest become -inf."""
    sorted_logits, order = torch.sort(logits, descending=True)  # (..., vocab), most likely first
    mass_before = sorted_logits.softmax(-1).cumsum(-1) - sorted_logits.softmax(-1)  # mass of the better ones
    drop_sorted = mass_before >= p  # p is already reached without this token
    drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))


def top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep each row's k highest scores; the others become -inf."""
    kth_best = torch.topk(logits, k).values[..., -1:]  # (..., 1)
    return logits.masked_fill(logits < kth_best, float("-inf"))


def logits_to_probs(logits, temperature, k, p):
    """Temperature, then top-k (0: off), then top-p, then softmax."""
    logits = logits / temperature
    if k:
        logits = top_k(logits, k)
    return torch.softmax(top_p(logits, p) if p < 1 else logits, dim=-1)


# 07_attention_visualization ----------------------------------------------------------------------------------
def previous_token_head(model, tok, text: str) -> tuple[int, int]:
    """The (layer, head) whose attention from each token to the one just before it is highest on average."""
    ids = tok(text, return_tensors="pt").input_ids  # (1, seq)
    with torch.no_grad():
        attentions = model(ids, output_attentions=True).attentions  # per layer: (1, heads, seq, seq)
    scores = torch.stack([a[0].diagonal(offset=-1, dim1=-2, dim2=-1).mean(-1) for a in attentions])  # (layer, head)
    layer, head = divmod(scores.argmax().item(), scores.shape[1])
    return layer, head


def head_scores(attentions):
    """Mean weight on the previous token and on the first token, over queries 1 .. T-1: each (layers, heads)."""
    maps = torch.stack([a[0] for a in attentions])  # (layers, heads, query, key)
    return maps.diagonal(offset=-1, dim1=-2, dim2=-1).mean(-1), maps[:, :, 1:, 0].mean(-1)


def best_head(scores: torch.Tensor) -> tuple[int, int]:
    """(layer, head) of the highest score."""
    return divmod(scores.argmax().item(), scores.shape[1])


# 08_use_cases ------------------------------------------------------------------------------------------------
def truncate_at_stop(text: str, stop: str) -> str:
    """Everything before the first ``stop``; the whole text when it never occurs."""
    index = text.find(stop)
    return text if index == -1 else text[:index]


# 09_speed_and_precision --------------------------------------------------------------------------------------
def kv_cache_bytes_per_token() -> int:
    """GPT-J 6B in fp16: per token, every layer caches a key and a value vector of n_embd numbers."""
    n_layer, n_embd, fp16_bytes = 28, 4096, 2
    return 2 * n_layer * n_embd * fp16_bytes


# 11_inside_gptj and 11b_induction_head_forms ----------------------------------------------------------------
def dla_term(term, scale, ln_weight, direction):
    """One component's share of a logit difference through ln_f, its scale frozen: (...)."""
    centred = term - term.mean(dim=-1, keepdim=True)  # ln_f centres the whole sum: centre each term
    return (centred / scale * ln_weight) @ direction


def induction_score(pattern, n):
    """(heads,): mean attention from each query of the second copy (the last n positions) to the key n - 1 back."""
    seq = pattern.shape[-1]
    queries = torch.arange(seq - n, seq, device=pattern.device)  # the second copy
    return pattern[:, :, queries, queries - n + 1].mean(dim=(0, 2))


def zero_ablate(z, head):
    """A copy of z (batch, seq, heads, head_dim) with ``head``'s output zeroed."""
    z = z.clone()
    z[:, :, head] = 0.0
    return z


def copying_score(ov, k):
    """The fraction of rows of ov (tokens, tokens) whose own token is among the row's k largest logits."""
    top = ov.topk(k, dim=1).indices  # (tokens, k)
    return (top == torch.arange(ov.shape[0])[:, None]).any(dim=1).float().mean().item()


def patch_head(z, clean_z, head, pos):
    """A copy of z with ``head`` at ``pos`` taken from the clean run."""
    z = z.clone()
    z[:, pos, head] = clean_z[:, pos, head]
    return z


def offset_score(pattern, back):
    """(heads,): mean attention from each query q >= back to the key q - back."""
    queries = torch.arange(back, pattern.shape[-1], device=pattern.device)
    return pattern[:, :, queries, queries - back].mean(dim=(0, 2))


def induction_score_at(pattern, start, n):
    """(heads,): the induction score of a repeat whose first copy begins at ``start``."""
    queries = torch.arange(start + n, start + 2 * n, device=pattern.device)  # the second copy
    return pattern[:, :, queries, queries - n + 1].mean(dim=(0, 2))


def zero_heads(z, heads):
    """A copy of z (batch, seq, heads, head_dim) with every head in ``heads`` zeroed."""
    z = z.clone()
    z[:, :, list(heads)] = 0.0
    return z


# 10_train_your_own and 12_fine_tune ---------------------------------------------------------------------------
def initial_loss() -> float:
    """Nats per token of a model that gives each of GPT-J's 50400 tokens the same probability: -ln(1 / 50400)."""
    return math.log(50400)


def next_token_loss(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the logits at position t against the token at t + 1."""
    scores, targets = logits[:, :-1], ids[:, 1:]  # (batch, seq - 1, vocab), (batch, seq - 1)
    return torch.nn.functional.cross_entropy(scores.reshape(-1, scores.shape[-1]), targets.reshape(-1))


def random_windows(ids: torch.Tensor, batch: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """(batch, length): windows ids[s:s + length] at starts drawn from the generator, s in [0, len(ids) - length]."""
    starts = torch.randint(0, len(ids) - length + 1, (batch,), generator=generator)  # (batch,)
    return torch.stack([ids[s : s + length] for s in starts.tolist()])


def learning_rate(progress: float, peak: float, warmup: float, floor: float) -> float:
    """Linear warm-up to peak, then cosine down to floor x peak."""
    if progress < warmup:
        return peak * progress / warmup
    decay = min(1.0, (progress - warmup) / (1 - warmup))
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * decay)))


def train_step(model, optimizer, x: torch.Tensor, lr: float, clip: float) -> float:
    """One step on x (batch, seq + 1): learning rate, zero_grad, forward, loss, backward, clip, step."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    loss = next_token_loss(model(x).logits, x)  # logits (batch, seq + 1, vocab); the last position unused
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    return loss.item()


def lora_merge(weight: torch.Tensor, A: torch.Tensor, B: torch.Tensor, alpha: float, r: int) -> torch.Tensor:
    """W + (alpha / r) B A: the adapter folded into the weight."""
    return weight + alpha / r * (B @ A)  # (out, r) @ (r, in) -> (out, in)


class LoRALinear(torch.nn.Module):
    """A frozen nn.Linear plus a trainable rank-r update: base(x) + (alpha / r) x A^T B^T."""

    def __init__(self, base: torch.nn.Linear, r: int, alpha: float):
        super().__init__()
        self.r, self.alpha, self.scale = r, alpha, alpha / r
        self.base = base.requires_grad_(False)
        self.A = torch.nn.Parameter(torch.empty(r, base.in_features))  # (r, in): random, as in peft
        torch.nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        self.B = torch.nn.Parameter(torch.zeros(base.out_features, r))  # (out, r): zero, so the layer starts as base

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scale * (x @ self.A.T @ self.B.T)  # (..., in) -> (..., r) -> (..., out)

    def merged(self) -> torch.nn.Linear:
        linear = torch.nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None)
        linear.load_state_dict(self.base.state_dict())
        with torch.no_grad():
            linear.weight.copy_(lora_merge(self.base.weight, self.A, self.B, self.alpha, self.r))
        return linear


def add_lora(model, r: int, alpha: float, targets=("q_proj", "v_proj")):
    """Freeze the model, wrap each target of every block in a LoRALinear, leave the new score head trainable."""
    model.requires_grad_(False)
    for block in model.transformer.h:
        for name in targets:
            setattr(block.attn, name, LoRALinear(getattr(block.attn, name), r, alpha))
    model.score.requires_grad_(True)
    return model


def lora_parameter_count() -> int:
    """Rank-8 LoRA on q_proj and v_proj of the tiny model's 4 layers (n_embd 192), plus the score head (192 x 2)."""
    return 4 * 2 * (8 * 192 + 192 * 8) + 192 * 2


def nf4_weights_gb() -> float:
    """GPT-J 6B in NF4: 4 bits a weight plus one fp32 absmax per block of 64 weights = 4.5 bits."""
    return 6_050_882_784 * (4 + 32 / 64) / 8 / 1e9


if __name__ == "__main__":
    import gptj_teach as gt

    model, tok = gt.load("tiny")
    ex = gt.classroom.exercises
    head = previous_token_head(model, tok, ex.PREVIOUS_TOKEN_TEXT)
    results = [
        ex.check_memory_fp16_gb(memory_fp16_gb()),
        ex.check_merge_pair(merge_pair),
        ex.check_rotate_every_two(rotate_every_two),
        ex.check_causal_mask(causal_mask),
        ex.check_parallel_block(parallel_block),
        ex.check_last_token_index(last_token_index),
        ex.check_top_p(top_p),
        ex.check_previous_token_head(head),
        ex.check_truncate_at_stop(truncate_at_stop),
        ex.check_kv_cache_bytes_per_token(kv_cache_bytes_per_token()),
    ]
    print(f"{sum(results)} of {len(results)} solutions pass")
