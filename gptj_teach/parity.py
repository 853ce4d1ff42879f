"""The green/red line that ends every build-it-yourself cell: is ours equal to the reference?"""

import torch

GREEN, RED, RESET = "\033[32m", "\033[31m", "\033[0m"


def max_abs_diff(ours, theirs) -> float:
    """Largest |ours - theirs| over tensors or (nested) tuples/lists of tensors."""
    if isinstance(ours, (tuple, list)):
        return max((max_abs_diff(a, b) for a, b in zip(ours, theirs, strict=True)), default=0.0)
    return (ours.detach().float() - theirs.detach().float()).abs().max().item()


def report_parity(name: str, ours, theirs, atol: float = 1e-5) -> bool:
    """Print ``✅ name: max |diff| = 1.2e-07 (tolerance 1e-05)`` in green, or the same with ❌ in red.

    Returns the verdict.

    ours, theirs: tensors or tuples of tensors of the same shapes (a shape mismatch is a failure, not a crash).
    """
    try:
        diff = max_abs_diff(ours, theirs)
        ok = diff <= atol
        detail = f"max |diff| = {diff:.1e} (tolerance {atol:.0e})"
    except (RuntimeError, ValueError) as error:  # shapes differ, or a tuple is shorter
        ok, detail = False, f"cannot compare: {error}"
    colour, mark = (GREEN, "✅") if ok else (RED, "❌")
    print(f"{colour}{mark} {name}: {detail}{RESET}")
    return ok


def assert_parity(name: str, ours, theirs, atol: float = 1e-5) -> None:
    """``report_parity``, and raise AssertionError on a mismatch (so nbval fails the notebook)."""
    if not report_parity(name, ours, theirs, atol):
        raise AssertionError(f"{name}: ours differs from the reference by more than {atol}")


def equal_tokens(name: str, ours: torch.Tensor, theirs: torch.Tensor) -> bool:
    """Print and return whether two id tensors are identical (generation parity)."""
    ok = ours.shape == theirs.shape and torch.equal(ours.cpu(), theirs.cpu())
    colour, mark = (GREEN, "✅") if ok else (RED, "❌")
    print(
        f"{colour}{mark} {name}: {'identical' if ok else 'different'} tokens "
        f"({tuple(ours.shape)} vs {tuple(theirs.shape)})"
        f"{RESET}"
    )
    return ok
