"""Notebook 01, The tokenizer: the checks of its "your turn" cells."""

import functools
import operator

from ...gptj import tokenizer
from .grading import _first_failure, _verdict


@functools.lru_cache(maxsize=1)
def _tokenizer():
    return tokenizer.load_tokenizer()


def check_merge_pair(fn) -> bool:
    """Notebook 01: fn(symbols: list[str], pair: tuple[str, str]) -> list[str], every occurrence merged."""
    hallo = [tokenizer.bytes_to_unicode()[b] for b in " Hallo".encode()]
    cases = [
        (hallo, ("l", "l")),
        (list("abab"), ("a", "b")),
        (list("aaa"), ("a", "a")),
        (list("aaaa"), ("a", "a")),
        (list("xab"), ("a", "b")),
        (list("ab"), ("b", "a")),
        (["ab", "c", "ab", "c"], ("ab", "c")),
        (list("xyz"), ("a", "b")),
        (["a"], ("a", "b")),
        ([], ("a", "b")),
    ]

    def diagnose(got, expected, args):
        if not isinstance(got, list):
            return f"return a list of str, not a {type(got).__name__}"
        overlap = " (pairs are merged left to right and never overlap)" if args[1][0] == args[1][1] else ""
        return f"for symbols={args[0]!r}, pair={args[1]!r} your function returned {got!r}{overlap}"

    hint = _first_failure(fn, cases, tokenizer.merge_pair, lambda got, exp: got == exp, diagnose)
    if hint is None:  # it gives the right lists: does it leave its input alone?
        symbols = list("abab")
        fn(symbols, ("a", "b"))
        hint = None if symbols == list("abab") else "build and return a new list; do not change `symbols` in place"
    return _verdict(hint is None, "BPE is this one merge, repeated in rank order until no known pair is left.", hint)


def _bpe_leftmost(piece: str) -> list[str]:
    """The usual wrong BPE loop: merge the leftmost known pair instead of the best-ranked one."""
    ranks, symbols = tokenizer.merge_ranks(), [tokenizer.bytes_to_unicode()[b] for b in piece.encode("utf-8")]
    while known := [pair for pair in zip(symbols, symbols[1:]) if pair in ranks]:
        symbols = tokenizer.merge_pair(symbols, known[0])
    return symbols


def check_bpe(fn) -> bool:
    """Notebook 01: fn(piece: str) -> its BPE tokens (list of str of byte symbols), as GPT-2's merges give."""
    cases = [(" Hallo",), ("Hello",), (" tokenizer",), (" lowest",), ("aaaa",), ("\n   ",), (" 😀",), ("x",)]

    def diagnose(got, expected, args):
        piece = args[0]
        symbols = [tokenizer.bytes_to_unicode()[b] for b in piece.encode("utf-8")]
        if not isinstance(got, list):
            return f"return a list of str (the tokens), not a {type(got).__name__}"
        if "".join(got) != "".join(symbols):
            return (
                f"for {piece!r} your tokens do not spell the piece's byte symbols {''.join(symbols)!r}: start "
                "from byte_to_symbol[b] for each byte b of piece.encode('utf-8') (a space becomes 'Ġ')"
            )
        if got == symbols:
            return f"for {piece!r} nothing was merged: repeat while some neighbouring pair is in `ranks`"
        if got == _bpe_leftmost(piece):
            return (
                f"for {piece!r} you merged the leftmost known pair first; merge the pair with the LOWEST rank "
                "(min(known, key=ranks.get)), wherever it is"
            )
        if got in tokenizer.bpe_steps(piece):
            return f"for {piece!r} you stopped too early: keep merging until no neighbouring pair is in `ranks`"
        return f"for {piece!r} your function returned {got!r}"

    hint = _first_failure(fn, cases, lambda piece: tokenizer.bpe_steps(piece)[-1], operator.eq, diagnose)
    return _verdict(hint is None, "That loop is all of BPE: the best-ranked pair, merged, until none is left.", hint)


def check_decode(fn) -> bool:
    """Notebook 01: fn(ids: list[int]) -> the text, as the real tokenizer decodes it."""
    tok = _tokenizer()
    texts = ["Hello world!", "  def f(x):\n        return x", "héllo 😀 wörld", "Grüße", ""]
    cases = [(tok(text).input_ids,) for text in texts]
    symbol_to_byte = {s: b for b, s in tokenizer.bytes_to_unicode().items()}

    def diagnose(got, expected, args):
        ids = args[0]
        if not isinstance(got, str):
            return f"return a str, not a {type(got).__name__}"
        pieces = tok.convert_ids_to_tokens(ids)
        if got == "".join(pieces):
            return (
                "you joined the tokens' byte symbols (like 'Ġ' for a space): map each symbol back to its byte, "
                "then decode all the bytes as UTF-8"
            )
        one_by_one = "".join(
            bytes(symbol_to_byte[s] for s in piece).decode("utf-8", errors="replace") for piece in pieces
        )
        if got == one_by_one:
            return (
                "you decoded each token on its own: a character such as an emoji can be split over two tokens, "
                "so join the bytes of ALL tokens first, then decode them once"
            )
        return f"for ids={ids} your function returned {got!r}, the tokenizer gives {expected!r}"

    hint = _first_failure(fn, cases, lambda ids: tok.decode(ids), operator.eq, diagnose)
    return _verdict(hint is None, "Every byte has a symbol, so decode(encode(text)) == text for any text.", hint)
