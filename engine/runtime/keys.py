"""Key domains: one `KeyInterner` shared by every step that must agree on key ids.

A ``key_by`` step interns keys to dense int64 ids once per batch; the window or join downstream works
on the ids and maps them back for its results. Both inputs of an interval join share one domain so
equal keys get equal ids. For int64 key columns the way back is a numpy lookup table, so a columnar
job never builds per-key Python objects.

Keys whose state is gone are forgotten: once the interner has grown to `KeyDomain.COMPACT_MIN_KEYS`
and to twice its size after the last compaction, the domain asks the operators holding key ids (the
``holders``) which ids are still live, keeps only those keys and renumbers them in their old order, and
the holders renumber their kernel state. A join keyed by order ids thus stays bounded in memory, keys
included. Compaction runs inside ``intern``, between batches of the operators, so no key id is in
flight when it happens.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence

import numpy as np

from engine import kernels
from engine.state.codec import frozen

__all__ = ["KeyDomain", "KeyHolder"]


class KeyHolder(Protocol):
    """An operator whose state refers to key ids of a domain."""

    def live_key_ids(self) -> np.ndarray: ...

    def remap_key_ids(self, mapping: np.ndarray) -> None:
        """Renumber every key id ``k`` held in state to ``mapping[k]`` (monotone on live ids)."""


class KeyDomain:
    """Interns keys of any hashable type; remembers the way back from ids to keys."""

    #: no compaction below this many interned keys (a compaction costs a pass over the live state)
    COMPACT_MIN_KEYS = 65_536

    def __init__(self) -> None:
        self.interner = kernels.KeyInterner()
        self.holders: list[KeyHolder] = []
        self.compactions = 0
        self._compact_at = self.COMPACT_MIN_KEYS
        # Valid while every key so far is an int (from an int64 column or a key callable): id -> key
        # as a numpy lookup, without Python objects.
        self._int_keys: np.ndarray | None = np.empty(0, dtype=np.int64)

    def intern(self, keys: Sequence[Any] | np.ndarray) -> np.ndarray:
        """Key ids for ``keys``; raises ``TypeError`` (from the interner) for an unhashable key."""
        if len(self.interner) >= self._compact_at:
            self.compact()
        if isinstance(keys, np.ndarray) and keys.dtype.kind in "iu" and (keys.dtype.kind == "i" or keys.dtype.itemsize < 8):
            column = keys.astype(np.int64, copy=False)
            before = len(self.interner)
            ids = self.interner.intern(column)
            if self._int_keys is not None and len(self.interner) > before:
                grown = np.empty(len(self.interner), dtype=np.int64)
                grown[: len(self._int_keys)] = self._int_keys
                grown[ids] = column
                self._int_keys = grown
            return ids
        if isinstance(keys, np.ndarray):
            keys = keys.tolist()
        before = len(self.interner)
        try:
            return self.interner.intern(keys)
        finally:
            if len(self.interner) > before:
                self._extend_int_keys(before)

    def _extend_int_keys(self, before: int) -> None:
        """Keep the numeric way back while every new key is a plain int (e.g. from a key callable);
        drop it for good once another type of key arrives."""
        if self._int_keys is None:
            return
        new = self.interner.keys_of(np.arange(before, len(self.interner), dtype=np.int64))
        if set(map(type, new)) == {int}:
            try:
                added = np.array(new, dtype=np.int64)
            except OverflowError:
                self._int_keys = None
                return
            self._int_keys = np.concatenate([self._int_keys[:before], added])
        else:
            self._int_keys = None

    def compact(self) -> None:
        """Forget the keys no holder refers to any more and renumber the live ones (order kept).

        When most keys are still live a rebuild would free little, so only the next threshold moves.
        """
        # Key ids are dense in [0, len(interner)): a mark per id finds the live ones in one pass, in
        # order (np.unique sorts, and numpy 2.4's hashes first: 10x the time for a million keys).
        marked = np.zeros(len(self.interner), dtype=bool)
        for holder in self.holders:
            marked[np.asarray(holder.live_key_ids(), dtype=np.int64)] = True
        live = np.flatnonzero(marked).astype(np.int64, copy=False)
        if len(live) > len(self.interner) // 2:
            self._compact_at = max(self.COMPACT_MIN_KEYS, 2 * len(self.interner))
            return
        mapping = np.full(len(self.interner), -1, dtype=np.int64)
        mapping[live] = np.arange(len(live), dtype=np.int64)
        for holder in self.holders:
            holder.remap_key_ids(mapping)
        if self._int_keys is not None:
            self._int_keys = self._int_keys[live]
            self.interner = kernels.KeyInterner.restore({"keys": self._int_keys})
        else:
            self.interner = kernels.KeyInterner.restore({"keys": self.interner.keys_of(live)})
        self._compact_at = max(self.COMPACT_MIN_KEYS, 2 * len(live))
        self.compactions += 1

    def keys_of(self, key_ids: np.ndarray) -> np.ndarray:
        """The keys of ``key_ids`` as a numpy column (int64 when every key was an int64, else object)."""
        if self._int_keys is not None:
            return self._int_keys[key_ids]
        keys = self.interner.keys_of(key_ids)
        column = np.empty(len(keys), dtype=object)
        try:
            column[:] = keys
        except ValueError:  # tuple keys would be read as rows: place them one by one
            for i, key in enumerate(keys):
                column[i] = key
        return column

    def __len__(self) -> int:
        return len(self.interner)

    def snapshot(self) -> dict[str, Any]:
        # All-int keys travel as one int64 array (raw buffer) instead of a list of Python ints. It is the
        # live array, not a copy: `_int_keys` is only ever replaced, never changed in place, so a
        # checkpoint written in the background sees it as it was at the cut (read-only from now on).
        if self._int_keys is not None:
            return frozen({"int_keys": self._int_keys})
        return {"interner": self.interner.snapshot(), "int_keys": None}

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Restore in place: the domain object is shared by several operators."""
        int_keys = snapshot["int_keys"]
        if int_keys is not None:
            self._int_keys = np.asarray(int_keys, dtype=np.int64)
            self.interner = kernels.KeyInterner.restore({"keys": self._int_keys})
        else:
            self._int_keys = None
            self.interner = kernels.KeyInterner.restore(snapshot["interner"])
        self._compact_at = max(self.COMPACT_MIN_KEYS, 2 * len(self.interner))
