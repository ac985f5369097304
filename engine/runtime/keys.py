"""Key domains: one `KeyInterner` shared by every step that must agree on key ids.

A ``key_by`` step interns keys to dense int64 ids once per batch; the window or join downstream works
on the ids and maps them back for its results. Both inputs of an interval join share one domain so
equal keys get equal ids. For int64 key columns the way back is a numpy lookup table, so a columnar
job never builds per-key Python objects.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from engine import kernels

__all__ = ["KeyDomain"]


class KeyDomain:
    """Interns keys of any hashable type; remembers the way back from ids to keys."""

    def __init__(self) -> None:
        self.interner = kernels.KeyInterner()
        # Valid while every key so far came from an int64 column: id -> key without Python objects.
        self._int_keys: np.ndarray | None = np.empty(0, dtype=np.int64)

    def intern(self, keys: Sequence[Any] | np.ndarray) -> np.ndarray:
        """Key ids for ``keys``; raises ``TypeError`` (from the interner) for an unhashable key."""
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
            # Keys that are not from an int64 column arrived (perhaps before an unhashable one made the
            # interner raise): map back through the interner from now on.
            if len(self.interner) > before:
                self._int_keys = None

    def keys_of(self, key_ids: np.ndarray) -> np.ndarray:
        """The keys of ``key_ids`` as a numpy column (int64 when every key was an int64, else object)."""
        if self._int_keys is not None:
            return self._int_keys[key_ids]
        keys = self.interner.keys_of(key_ids)
        column = np.empty(len(keys), dtype=object)
        for i, key in enumerate(keys):  # element-wise: tuples must stay one object, not become rows
            column[i] = key
        return column

    def __len__(self) -> int:
        return len(self.interner)

    def snapshot(self) -> dict[str, Any]:
        return {"interner": self.interner.snapshot(), "int_keys": self._int_keys}

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Restore in place: the domain object is shared by several operators."""
        self.interner = kernels.KeyInterner.restore(snapshot["interner"])
        int_keys = snapshot["int_keys"]
        self._int_keys = None if int_keys is None else np.asarray(int_keys, dtype=np.int64)
