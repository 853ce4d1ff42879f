"""The offline GPT-J tokenizer: GPT-2's BPE files plus 143 extra tokens."""

from hypothesis import assume, given, settings
from hypothesis import strategies as st

import gptj_teach as gt
from gptj_teach.gptj.tokenizer import bpe_steps, encode_and_show_work, pretokenize

TOK = gt.load_tokenizer()


def test_hello_world_and_sizes():
    assert TOK("Hello world").input_ids == [15496, 995]
    assert len(TOK) == 50400
    assert TOK.eos_token_id == 50256 and TOK.eos_token == "<|endoftext|>"


def test_extra_tokens_have_ids_50257_to_50399():
    ids = TOK.convert_tokens_to_ids([f"<|extratoken_{i}|>" for i in range(1, 144)])
    assert ids == list(range(50257, 50400))
    assert TOK.decode([50300]) == "<|extratoken_44|>"


def test_matches_the_transformers_gpt2_tokenizer_built_from_the_same_files(tmp_path):
    from transformers import AutoTokenizer

    TOK.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    text = "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)  # 漢字 é 🙂"
    assert reloaded(text).input_ids == TOK(text).input_ids
    assert len(reloaded) == 50400


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_encode_decode_round_trips_any_text(text):
    assert TOK.decode(TOK(text).input_ids) == text


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60))
def test_hand_built_bpe_equals_the_tokenizer(text):
    # the law holds for ordinary text: the tokenizer matches its special tokens ("<|endoftext|>", the extra
    # tokens) before BPE, and the hand-built pipeline teaches BPE only (hypothesis draws these strings from our code)
    assume("<|endoftext|>" not in text and "<|extratoken_" not in text)
    by_hand = [i for piece in encode_and_show_work(text) for i in piece["ids"]]
    assert by_hand == TOK(text).input_ids


def test_bpe_steps_show_the_merges_of_hallo():
    steps = bpe_steps(" Hallo")
    assert steps[0] == ["Ġ", "H", "a", "l", "l", "o"]
    assert steps[-1] == ["ĠHall", "o"]
    assert all(len(b) == len(a) - 1 or len(b) < len(a) for a, b in zip(steps, steps[1:]))
    assert pretokenize("Hello world!") == ["Hello", " world", "!"]
