"""nbgrader's hidden tests: the answer graded is the learner's own, and the check that grades it is the package's.

A graded cell asserts ``gt.classroom.exercises.check_x(my_x)``. In the notebook a learner could pass that with no
work: ``my_x = R.x`` (the package's own function), ``def my_x(a): return R.x(a)``, or
``gt.classroom.exercises.check_x = lambda f: True``. The graded cell's hidden block (written by
``python -m gptj_teach.classroom.hidden_tests``, removed from the student edition, put back by nbgrader's autograde)
runs ``verify("check_x", my_x)``, which fails the cell when

- the check ``gt.classroom.exercises.check_x`` is not the function of that name in the package's source file;
- ``my_x`` was not defined in the notebook (its ``__module__`` is not ``__main__``): the package's or a library's
  function;
- ``my_x`` runs one of the package's answers to this exercise (``REFERENCES``; seen with ``sys.setprofile`` on
  every input, however it reached it: an alias, a lambda, a module's ``forward``);
- the real check, run again, says no.

It does not stop a learner who reads this file and patches ``verify`` itself or the package's source on their
machine (nbgrader grades in the teacher's environment, so a changed source file does not travel), nor copying a
classmate's notebook. It makes the honest answer the easiest one.
"""

import contextlib
import importlib
import io
import pkgutil

from .exercises import grading

# the package's answers to each exercise: a learner's function that runs one of them did not do the exercise
REFERENCES = {
    "check_merge_pair": ["gptj_teach.gptj.tokenizer:merge_pair"],
    "check_bpe": ["gptj_teach.gptj.tokenizer:bpe_steps", "gptj_teach.gptj.tokenizer:encode_and_show_work"],
    "check_decode": ["transformers.tokenization_utils_base:PreTrainedTokenizerBase.decode"],
    "check_inv_frequencies": ["gptj_teach.gptj.rotary:inv_frequencies"],
    "check_rotate_every_two": ["gptj_teach.gptj.rotary:rotate_every_two"],
    "check_apply_rotary_pos_emb": ["gptj_teach.gptj.rotary:apply_rotary_pos_emb"],
    "check_attention_scores": [
        "gptj_teach.gptj.attention:attention_weights",
        "gptj_teach.gptj.attention:plain_attention",
    ],
    "check_causal_mask": ["gptj_teach.gptj.model:make_mask"],
    "check_softmax_attention": [
        "gptj_teach.gptj.attention:attention_weights",
        "gptj_teach.gptj.attention:plain_attention",
        "gptj_teach.gptj.attention:fused_attention",
    ],
    "check_layer_norm": ["torch.nn.modules.normalization:LayerNorm.forward", "torch.nn.functional:layer_norm"],
    "check_mlp": ["gptj_teach.gptj.block:GPTJMLP.forward"],
    "check_parallel_block": ["gptj_teach.gptj.block:GPTJBlock.forward"],
    "check_forward": [
        "gptj_teach.gptj.model:GPTJForCausalLM.forward",
        "gptj_teach.gptj.model:GPTJModel.forward",
        "gptj_teach.api:GPTJForCausalLM.forward",
        "gptj_teach.api:GPTJModel.forward",
    ],
    "check_parameter_count": [
        "gptj_teach.gptj.model:GPTJForCausalLM.__init__",
        "gptj_teach.gptj.sizes:parameter_count",
    ],
    "check_lm_loss": ["gptj_teach.gptj.model:next_token_loss"],
    "check_top_k": ["gptj_teach.generation.sampling:top_k_filter"],
    "check_top_p": ["gptj_teach.generation.sampling:top_p_filter", "gptj_teach.generation.fast_top_p:top_p_among_best"],
    "check_logits_to_probs": [
        "gptj_teach.generation.sampling:logits_to_probs",
        "gptj_teach.generation.sampling:next_token",
    ],
    "check_next_token_loss": ["gptj_teach.gptj.model:next_token_loss"],
    "check_learning_rate": ["gptj_teach.train.loop:learning_rate"],
    "check_random_windows": ["gptj_teach.train.corpus:random_windows"],
    "check_dla_term": ["gptj_teach.interpret.circuits:dla_term"],
    "check_induction_score": ["gptj_teach.interpret.circuits:induction_score"],
    "check_induction_score_at": ["gptj_teach.interpret.circuits:induction_score"],
    "check_offset_score": ["gptj_teach.interpret.circuits:offset_score"],
    "check_zero_ablate": ["gptj_teach.interpret.circuits:zero_ablate"],
    "check_zero_heads": ["gptj_teach.interpret.circuits:zero_heads"],
    "check_patch_head": ["gptj_teach.interpret.circuits:patch_head"],
    "check_copying_score": ["gptj_teach.interpret.circuits:copying_score"],
    "check_lora_linear": ["gptj_teach.train.lora:LoRALinear.__init__", "gptj_teach.train.lora:LoRALinear.forward"],
    "check_add_lora": ["gptj_teach.train.lora:add_lora"],
}


# the package's answer to each exercise with the learner's signature, as the notebook spells it: what
# ``gt.classroom.fallback`` uses in the later cells of an unfilled notebook (hidden_tests writes that line)
FALLBACKS = {
    "check_merge_pair": "gt.gptj.tokenizer.merge_pair",
    "check_bpe": "lambda piece, verbose=False: gt.gptj.tokenizer.bpe_steps(piece)[-1]",
    "check_decode": "lambda ids: gt.classroom.exercises.tokenizer._tokenizer().decode(ids)",
    "check_inv_frequencies": "gt.gptj.rotary.inv_frequencies",
    "check_rotate_every_two": "gt.gptj.rotary.rotate_every_two",
    "check_apply_rotary_pos_emb": "gt.gptj.rotary.apply_rotary_pos_emb",
    "check_attention_scores": "gt.classroom.exercises.attention._reference_scores",
    "check_causal_mask": "gt.classroom.exercises.attention._reference_causal_mask",
    "check_softmax_attention": "gt.gptj.attention.plain_attention",
    "check_layer_norm": "lambda x, ln: ln(x)",
    "check_mlp": "lambda h, m: m(h)",
    "check_parallel_block": "lambda block, *args: block(*args)[0]",
    "check_parameter_count": "gt.gptj.sizes.parameter_count",
    "check_forward": "lambda model, ids: model(ids).logits",
    "check_first_divergent_layer": "gt.classroom.exercises.model._reference_first_divergent_layer",
    "check_lm_loss": "gt.gptj.model.next_token_loss",
    "check_last_token_index": "gt.classroom.exercises.heads._reference_last_token_index",
    "check_logit_lens": "gt.classroom.exercises.heads._reference_logit_lens",
    "check_top_k": "gt.generation.sampling.top_k_filter",
    "check_top_p": "gt.generation.sampling.top_p_filter",
    "check_logits_to_probs": "gt.generation.sampling.logits_to_probs",
    "check_head_scores": "gt.classroom.exercises.attention_views._reference_head_scores",
    "check_best_head": "gt.classroom.exercises.attention_views._reference_best_head",
    "check_truncate_at_stop": "lambda text, stop: text.partition(stop)[0]",
    "check_next_token_loss": "gt.gptj.model.next_token_loss",
    "check_learning_rate": "gt.train.loop.learning_rate",
    "check_random_windows": "gt.train.corpus.random_windows",
    "check_train_step": "gt.classroom.exercises.training._train_step_reference",
    "check_dla_term": "gt.interpret.circuits.dla_term",
    "check_induction_score": "gt.interpret.circuits.induction_score",
    "check_induction_score_at": "lambda pattern, start, n: gt.interpret.circuits.induction_score(pattern, n, start)",
    "check_offset_score": "gt.interpret.circuits.offset_score",
    "check_zero_ablate": "gt.interpret.circuits.zero_ablate",
    "check_zero_heads": "gt.interpret.circuits.zero_heads",
    "check_patch_head": "gt.interpret.circuits.patch_head",
    "check_copying_score": "gt.interpret.circuits.copying_score",
    "check_lora_merge": "lambda weight, A, B, alpha, r: weight + alpha / r * B @ A",
    "check_lora_linear": "gt.train.lora.LoRALinear",
    "check_add_lora": "lambda model, r, alpha: gt.train.lora.add_lora(model, r, alpha, layer=MyLoRALinear)",
}


def _code(name: str):
    """The code object of "module:Qualified.name"."""
    module, _, qualname = name.partition(":")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return _function_code(obj)


def _function_code(value):
    """The code object of a function, or of a method as a class body holds it (None for anything else)."""
    function = getattr(value, "__func__", value)  # a classmethod or staticmethod
    return getattr(getattr(function, "__wrapped__", function), "__code__", None)


def _class_attributes(cls: type) -> list:
    """The attributes of ``cls`` and of every base it inherits from (a method can come from any of them)."""
    return [value for klass in cls.__mro__ for value in vars(klass).values()]


def package_check(name: str):
    """The check ``name`` as the package's source defines it (None if no exercise module defines it there)."""
    from . import exercises

    for info in pkgutil.iter_modules(exercises.__path__):
        module = importlib.import_module(f"{exercises.__name__}.{info.name}")
        check = vars(module).get(name)
        if callable(check) and getattr(getattr(check, "__code__", None), "co_filename", None) == module.__file__:
            return check
    return None


def _refusal(name: str, answer) -> str | None:
    """Why the answer (or the check graded) is not honest; None when nothing is wrong but maybe the answer itself."""
    from . import exercises

    check = package_check(name)
    if check is None or getattr(exercises, name, None) is not check:
        return f"gt.classroom.exercises.{name} is not the package's check: run the notebook without replacing it"
    yours = getattr(answer, "yours", answer)  # gt.classroom.fallback's wrapper: the learner's own function
    if not callable(yours):
        return None
    module = getattr(yours, "__module__", type(yours).__module__)
    if module != "__main__":
        return f"your answer is {module}'s {getattr(yours, '__qualname__', yours)!r}, not a function of this notebook"
    return None


def verify(name: str, answer) -> bool:
    """The hidden test of the graded cell of check ``name``: True when ``answer`` is the learner's own and passes
    the package's check; else prints ``❌ Not yet: <why>`` and returns False. Silent when all is well."""
    hint = _refusal(name, answer)
    if hint is None:
        seen, codes = set(), {_code(reference) for reference in REFERENCES.get(name, [])}
        yours = getattr(answer, "yours", answer)
        if isinstance(yours, type):  # a class: a method taken from the package's answer runs outside the watch below
            seen |= {code for code in map(_function_code, _class_attributes(yours)) if code in codes}
        graded = grading._watched(yours, codes, seen) if callable(yours) else yours
        with contextlib.redirect_stdout(io.StringIO()) as said:  # its verdict is the visible assert's, said already
            ok = package_check(name)(graded)
        if seen:
            hint = "your function runs the package's own answer to this exercise: write it yourself"
        elif not ok:
            hint = said.getvalue().strip().removeprefix("❌ Not yet: ") or "the package's check says no"
    return grading._verdict(hint is None, "", hint) if hint else True
