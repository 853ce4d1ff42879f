"""The KV cache: the keys and values of every token seen so far, one pair per layer.

Generating token ``t`` needs the keys and values of tokens ``0 .. t``. Those of the earlier tokens do not
change (a token only attends backwards), so the model keeps them instead of recomputing them every step:
attention calls ``cache.update(k, v, layer)`` with this step's keys and values (batch, heads, new, head_dim)
and gets back all of them so far (batch, heads, keys, head_dim). Two caches with that one method:

* ``DynamicCache`` grows by concatenation: simple, exactly as long as the text (the teaching default);
* ``StaticCache`` is allocated once at its final length, ``max_len``, and written in place at the slots the
  caller names with ``seek``. Every step then has the same shapes, which is what a compiled step with CUDA
  graphs needs (``fast.py``); the slots not yet written are hidden by the causal mask, since a query at slot
  ``t`` may only look at keys at slots ``<= t``.

Either reads like a tuple of ``(keys, values)`` per layer: ``cache[0][0].shape`` is layer 0's keys.

References: ``transformers`` ``DynamicCache`` / ``StaticCache`` (the same ``update``); gpt-fast ``KVCache``.
"""

import torch

from .sizes import head_dim


class KVCache:
    """What both caches share: per layer one keys and one values tensor, read like a tuple of pairs."""

    def __init__(self):
        self.keys: list[torch.Tensor] = []  # per layer: (batch, heads, length, head_dim)
        self.values: list[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.keys[layer], self.values[layer]

    def __iter__(self):
        return iter(zip(self.keys, self.values))


class DynamicCache(KVCache):
    """A cache that grows with the text: ``update`` appends this step's keys and values (``torch.cat``)."""

    @classmethod
    def from_pairs(cls, pairs) -> "DynamicCache":
        """A cache holding the given ``(keys, values)`` per layer, e.g. a tuple from an older call."""
        cache = cls()
        cache.keys, cache.values = [k for k, _ in pairs], [v for _, v in pairs]
        return cache

    def update(self, k: torch.Tensor, v: torch.Tensor, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Append k, v (batch, heads, new, head_dim) to ``layer``'s; return all (batch, heads, length, head_dim)."""
        if layer == len(self.keys):  # the first call for this layer
            self.keys.append(k)
            self.values.append(v)
        else:
            self.keys[layer] = torch.cat([self.keys[layer], k], dim=2)  # (batch, heads, length + new, head_dim)
            self.values[layer] = torch.cat([self.values[layer], v], dim=2)
        return self.keys[layer], self.values[layer]

    @property
    def length(self) -> int:
        """How many tokens the cache holds."""
        return self.keys[0].shape[2] if self.keys else 0

    def slots_for(self, new: int, device: torch.device | str) -> torch.Tensor:
        """Where the next ``new`` tokens go: right after the cached ones. (new,) int64."""
        return torch.arange(self.length, self.length + new, device=device)

    def key_length(self, new: int) -> int:
        """How many keys attention sees once ``new`` more tokens are stored."""
        return self.length + new

    def advance(self, attention_mask: torch.Tensor) -> torch.Tensor:
        """Make room for one more token per row: the mask (batch, keys) gains a column for it."""
        return torch.cat([attention_mask, attention_mask.new_ones(attention_mask.shape[0], 1)], dim=1)


class StaticCache(KVCache):
    """A cache allocated once, (batch, heads, max_len, head_dim) per layer, written in place at ``slots``.

    ``seek(slots)`` names the slots the next call's tokens go to: ``torch.arange(prompt_length)`` for a
    prompt, then one slot per generated token. Reading it gives the whole buffers, unwritten slots included.
    """

    def __init__(self, config, batch: int, max_len: int, dtype, device):
        super().__init__()
        shape = (batch, config.n_head, max_len, head_dim(config))  # (batch, heads, max_len, head_dim)
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(config.n_layer)]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(config.n_layer)]
        self.slots = torch.zeros(0, dtype=torch.long, device=device)  # (new,): where update writes

    @classmethod
    def of(cls, keys: list, values: list, slots: torch.Tensor) -> "StaticCache":
        """A cache over existing buffers (batch, heads, max_len, head_dim) per layer, writing at ``slots``."""
        cache = cls.__new__(cls)  # no new buffers
        cache.keys, cache.values, cache.slots = keys, values, slots
        return cache

    def seek(self, slots: torch.Tensor) -> None:
        """Write the next call's tokens at these slots: (new,) int64, on the cache's device."""
        self.slots = slots

    def update(self, k: torch.Tensor, v: torch.Tensor, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Write k, v (batch, heads, new, head_dim) at ``slots`` in place; return the whole buffers."""
        self.keys[layer].index_copy_(2, self.slots, k)  # (batch, heads, max_len, head_dim)
        self.values[layer].index_copy_(2, self.slots, v)
        return self.keys[layer], self.values[layer]

    @property
    def max_len(self) -> int:
        """The length every buffer was allocated with."""
        return self.keys[0].shape[2]

    def slots_for(self, new: int, device: torch.device | str) -> torch.Tensor:
        """The slots named by ``seek`` (one per new token; checked by the model)."""
        return self.slots

    def key_length(self, new: int) -> int:
        """Attention always sees all ``max_len`` slots; the mask hides those not written yet."""
        return self.max_len

    def advance(self, attention_mask: torch.Tensor) -> torch.Tensor:
        """Make room for one more token: it goes to the slot after the last one written. The mask (batch,
        max_len) already covers every slot, so it comes back unchanged."""
        self.seek(self.slots[-1:] + 1)
        return attention_mask
