"""The text a GPT-J learns from here: the Python standard library's own source, split by file.

Every computer with Python has it, so training runs offline. The ``.py`` files are read in sorted order,
tokenized with GPT-J's own tokenizer and joined with ``<|endoftext|>``; every 50th file is **held out**
(never trained on), so the held-out loss measures how well the model writes code it has never seen, not how
well it remembers. The shipped tiny model was trained on exactly this split (``scripts/train_tiny.py``).

Training reads random **windows** of ``seq + 1`` tokens: the model sees tokens 0..seq-1 and is scored on
predicting tokens 1..seq (each position predicts the next one). Evaluation reads consecutive windows, so every
held-out token is scored once.

A small model spends most of its time in the output layer (n_embd x 50400). Only ~18,000 distinct ids occur in
the standard library, so training can use a **compact vocabulary** of just those ids: the same GPT-J with
``vocab_size`` = the ids seen. ``CompactVocabulary`` maps real ids to compact ones and back.

References: nanoGPT ``data/*/prepare.py`` and ``get_batch``; the GPT-2 paper's held-out evaluation.
"""

import sysconfig
import tokenize
from pathlib import Path

import torch

from ..checks import check_path, check_tensor, check_token_ids, check_tokenizer, check_whole
from ..errors import InputError, InputTypeError

HELD_OUT_EVERY = 50  # every 50th file is held out (the split of the shipped tiny model)


def stdlib_files(root=None) -> list[Path]:
    """The standard library's ``.py`` files (or those under ``root``) in sorted order, site-packages excluded."""
    root = check_path(root or sysconfig.get_paths()["stdlib"], "root")
    if not root.is_dir():
        raise InputError(f"root must be a directory of Python sources, got {str(root)!r}")
    return sorted(p for p in root.rglob("*.py") if "site-packages" not in p.relative_to(root).parts)


def split_files(files: list[Path], every: int = HELD_OUT_EVERY) -> tuple[list[Path], list[Path]]:
    """(training files, held-out files): file i is held out when i % every == every - 1. Split by *file*, so no
    function is half in training and half held out."""
    every = check_whole(every, "every", 1)
    if not isinstance(files, (list, tuple)):
        raise InputTypeError(f"files must be a list of paths (stdlib_files()), got {type(files).__name__}")
    held_out = [f for i, f in enumerate(files) if i % every == every - 1]
    return [f for i, f in enumerate(files) if i % every != every - 1], held_out


def read_source(path: Path) -> str | None:
    """A file's text, honouring its coding cookie; None for the few files that do not decode."""
    try:
        with tokenize.open(path) as f:
            return f.read()
    except (SyntaxError, UnicodeDecodeError, OSError):
        return None


def encode_files(files, tok) -> torch.Tensor:
    """Token ids of the readable files joined with <|endoftext|> (each file ends with one): 1-D int64."""
    check_tokenizer(tok)
    texts = [t for t in map(read_source, files) if t is not None]
    if not texts:
        raise InputError(f"no readable .py files among {len(files)}: pass a directory of Python sources")
    limit, tok.model_max_length = tok.model_max_length, 10**9  # whole files at once; windows are cut later
    try:
        pieces = tok(texts, add_special_tokens=False).input_ids
    finally:
        tok.model_max_length = limit
    return torch.tensor([i for piece in pieces for i in piece + [tok.eos_token_id]], dtype=torch.long)


def random_windows(ids: torch.Tensor, batch: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """(batch, length): windows of ``ids`` starting at random places drawn from ``generator``."""
    check_tensor(ids, "ids", 1)
    check_whole(length, "length", 2, len(ids) - 1)
    starts = torch.randint(0, len(ids) - length, (check_whole(batch, "batch", 1),), generator=generator)
    return torch.stack([ids[s : s + length] for s in starts.tolist()])  # (batch, length)


def consecutive_windows(ids: torch.Tensor, length: int, max_windows: int | None = None) -> torch.Tensor:
    """(n, length): ``ids`` cut into whole windows one after the other (the first ``max_windows`` of them)."""
    length = min(check_whole(length, "length", 2), len(check_tensor(ids, "ids", 1)))  # short ids: one window
    return ids[: len(ids) // length * length].view(-1, length)[:max_windows]  # (n, length)


class CompactVocabulary:
    """The ids that occur in ``train_ids`` (sorted), renumbered 0..n-1: ``encode`` real -> compact, ``decode`` back.

    Ids never seen in training encode to ``unknown`` (by default compact id 0): a model with the compact
    vocabulary cannot predict them, which costs a little on held-out text (measured in notebook 10).
    """

    def __init__(self, train_ids: torch.Tensor, full_size: int = 50400):
        self.keep = torch.unique(check_tensor(train_ids, "train_ids", 1))  # (n,) real ids, sorted
        self.full_size = full_size
        self.to_compact = torch.full((full_size,), -1, dtype=torch.long).index_copy_(
            0, self.keep, torch.arange(len(self.keep))
        )  # (full_size,): -1 for ids never seen

    def __len__(self) -> int:
        return len(self.keep)

    def encode(self, ids: torch.Tensor, unknown: int = 0) -> torch.Tensor:
        """Real ids -> compact ids, same shape; unseen ids become ``unknown``."""
        compact = self.to_compact[check_token_ids(ids, "ids", self.full_size, 0, None)]
        return compact.masked_fill(compact < 0, unknown)

    def unseen_fraction(self, ids: torch.Tensor) -> float:
        """The fraction of ``ids`` that never occur in the training ids."""
        return (self.to_compact[check_token_ids(ids, "ids", self.full_size, 0, None)] < 0).float().mean().item()

    def decode(self, compact: torch.Tensor) -> torch.Tensor:
        """Compact ids -> real ids (for the tokenizer), same shape."""
        return self.keep.to(compact.device)[check_token_ids(compact, "compact", len(self), 0, None)]
