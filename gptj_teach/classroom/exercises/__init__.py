"""Self-checking exercises for the notebooks' "your turn" cells: ``check_<name>(your_answer)``.

One module a notebook (``rotary.py`` holds notebook 02's checks, ``sampling.py`` notebook 06's, ...) and
``grading.py``, what they all share.

Every check works the right answer out *live* with the package (``gt.gptj.tokenizer``, ``gt.gptj.rotary``,
``gt.gptj.model``, ``gt.generation.sampling``, ``gt.show.memory``, the tiny model), tries your answer on several
inputs, edge cases
included, and prints either ``✅ Right! <why it matters>`` or ``❌ Not yet: <a hint>``; it returns True or False.
It never raises, even when your function does: a crash is reported as ``❌ Not yet: your function raised ...``;
a function that runs longer than ``TIME_LIMIT`` seconds on one input (a loop that never ends) is stopped and
reported, and so is one you stop yourself with Ctrl-C (Jupyter: Kernel > Interrupt).
Hints point at the usual mistake (the half-split rotary of Llama, the KV-cache offset, forgetting the V of
the cache, ...) without giving the answer away. A function that still raises the student edition's
``NotImplementedError("Your turn: ...")`` is told that it is not written yet. Teachers: the committed notebooks
hold the solutions; ``notebooks/solutions/solutions.py`` has them too, as plain functions.
"""

from .attention import check_attention_scores, check_causal_mask, check_softmax_attention  # notebook 03
from .attention_views import (  # notebook 07
    PREVIOUS_TOKEN_TEXT,  # the text notebook 07 asks about
    check_best_head,
    check_head_scores,
    check_previous_token_head,
)
from .fine_tune import (  # nb 12
    check_add_lora,
    check_lora_linear,
    check_lora_merge,
    check_lora_parameter_count,
    check_nf4_weights_gb,
)
from .grading import TIME_LIMIT, TookTooLong
from .heads import check_last_token_index, check_lm_loss, check_logit_lens  # notebook 05b
from .induction import check_induction_score_at, check_offset_score, check_zero_heads  # notebook 11b
from .inside import (  # notebook 11
    check_copying_score,
    check_dla_term,
    check_induction_score,
    check_patch_head,
    check_zero_ablate,
)
from .model import check_first_divergent_layer, check_forward, check_parameter_count  # notebook 05
from .parallel_block import check_layer_norm, check_mlp, check_parallel_block  # notebook 04
from .rotary import check_apply_rotary_pos_emb, check_inv_frequencies, check_rotate_every_two  # notebook 02
from .sampling import check_logits_to_probs, check_top_k, check_top_p  # notebook 06
from .speed import check_kv_cache_bytes_per_token  # notebook 09
from .start_here import check_memory_fp16_gb  # notebook 00
from .tokenizer import check_bpe, check_decode, check_merge_pair  # notebook 01
from .training import (  # notebook 10
    check_initial_loss,
    check_learning_rate,
    check_next_token_loss,
    check_random_windows,
    check_train_step,
)
from .use_cases import check_truncate_at_stop  # notebook 08

__all__ = [
    "PREVIOUS_TOKEN_TEXT",
    "TIME_LIMIT",
    "TookTooLong",
    "check_add_lora",
    "check_apply_rotary_pos_emb",
    "check_attention_scores",
    "check_best_head",
    "check_bpe",
    "check_causal_mask",
    "check_copying_score",
    "check_decode",
    "check_dla_term",
    "check_first_divergent_layer",
    "check_forward",
    "check_head_scores",
    "check_induction_score",
    "check_induction_score_at",
    "check_initial_loss",
    "check_inv_frequencies",
    "check_kv_cache_bytes_per_token",
    "check_last_token_index",
    "check_layer_norm",
    "check_learning_rate",
    "check_lm_loss",
    "check_logit_lens",
    "check_logits_to_probs",
    "check_lora_linear",
    "check_lora_merge",
    "check_lora_parameter_count",
    "check_memory_fp16_gb",
    "check_merge_pair",
    "check_mlp",
    "check_next_token_loss",
    "check_nf4_weights_gb",
    "check_offset_score",
    "check_parallel_block",
    "check_parameter_count",
    "check_patch_head",
    "check_previous_token_head",
    "check_random_windows",
    "check_rotate_every_two",
    "check_softmax_attention",
    "check_top_k",
    "check_top_p",
    "check_train_step",
    "check_truncate_at_stop",
    "check_zero_ablate",
    "check_zero_heads",
]
