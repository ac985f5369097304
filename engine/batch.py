"""The columnar micro-batch that flows between operators.

A `Batch` holds, for ``n`` records of one input partition, in record order:

* ``ts``: int64 event timestamps;
* ``wm``: int64, the watermark in force *before* each record (the per-record rule of SEMANTICS.md,
  computed at the source and carried through the chain so late decisions never depend on batch size);
* ``key_ids``: int64 dense key ids once the stream is keyed (``None`` before ``key_by``);
* ``columns``: named numpy columns (the data itself on the columnar path, e.g. from ``ArraySource``);
* ``records``: the Python records, when the stream carries them (``None`` on the columnar path; they
  are built from ``columns`` only when a step asks for them, e.g. a ``map`` callable or a ``CollectSink``);
* ``origin``/``partition``: the source step and partition the batch derives from (multi-input
  operators bound each record's watermark by the *other* origins only, so two streams split from one
  source stay batch-size invariant when joined or merged again);
* ``watermark``: the emitting operator's watermark after this batch (an empty batch only moves it);
* ``idle``: the emitter has had no input for its idle timeout and should not hold watermarks back.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

__all__ = ["Batch", "columns_to_records"]

_EMPTY_I64 = np.empty(0, dtype=np.int64)
_EMPTY_I64.flags.writeable = False


@functools.lru_cache(maxsize=256)
def _rows_builder(names: tuple[str, ...]) -> Callable[[list[list[Any]]], list[dict[str, Any]]]:
    """A function ``(column lists) -> [{names[0]: v0, ...}, ...]`` compiled as one list comprehension
    over a dict display.

    Window results and columnar records are turned into dicts by the hundred thousand; a comprehension
    with a dict display is about twice as fast as ``dict(zip(names, row))`` per row. The names only ever
    enter the generated source as ``repr`` literals.
    """
    args = ", ".join(f"v{i}" for i in range(len(names)))
    body = ", ".join(f"{name!r}: v{i}" for i, name in enumerate(names))
    namespace: dict[str, Any] = {}
    exec(f"def build(lists):\n    return [{{{body}}} for {args}, in zip(*lists)]", namespace)  # noqa: S102
    return namespace["build"]


def columns_to_records(columns: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Turn named columns into a list of dicts (Python scalars), one per row."""
    if not columns:
        return []
    names = tuple(columns)
    lists = [columns[name].tolist() for name in names]
    if not all(isinstance(name, str) for name in names):
        return [dict(zip(names, row)) for row in zip(*lists)]
    return _rows_builder(names)(lists)


class Batch:
    """A micro-batch; see the module docstring. Arrays are never mutated in place once built."""

    __slots__ = ("ts", "wm", "key_ids", "columns", "_records", "origin", "partition", "watermark", "idle")

    def __init__(
        self,
        ts: np.ndarray,
        wm: np.ndarray,
        *,
        key_ids: np.ndarray | None = None,
        columns: dict[str, np.ndarray] | None = None,
        records: list | None = None,
        origin: str | None = None,
        partition: int = 0,
        watermark: int = INT64_MIN,
        idle: bool = False,
    ) -> None:
        self.ts = ts
        self.wm = wm
        self.key_ids = key_ids
        self.columns = columns if columns is not None else {}
        self._records = records
        self.origin = origin
        self.partition = partition
        self.watermark = watermark
        self.idle = idle

    @classmethod
    def empty(
        cls, watermark: int, *, origin: str | None = None, partition: int = 0, idle: bool = False, keyed: bool = False
    ) -> Batch:
        """A batch with no records that only carries a watermark (and idleness) downstream."""
        return cls(
            _EMPTY_I64, _EMPTY_I64, key_ids=_EMPTY_I64 if keyed else None, records=[],
            origin=origin, partition=partition, watermark=watermark, idle=idle,
        )

    def emptied(self, watermark: int | None = None, *, keyed: bool = False) -> Batch:
        """An empty batch with this batch's origin and idleness (and its watermark unless given)."""
        return Batch.empty(
            self.watermark if watermark is None else watermark, origin=self.origin, partition=self.partition,
            idle=self.idle, keyed=keyed,
        )

    def replace(self, **changes: Any) -> Batch:
        """A copy with some attributes replaced (arrays are shared, not copied)."""
        fields = {
            "key_ids": self.key_ids, "columns": self.columns, "records": self._records, "origin": self.origin,
            "partition": self.partition, "watermark": self.watermark, "idle": self.idle,
        }
        fields.update(changes)
        ts = fields.pop("ts", self.ts)
        wm = fields.pop("wm", self.wm)
        return Batch(ts, wm, **fields)

    def __len__(self) -> int:
        return len(self.ts)

    def __repr__(self) -> str:
        kind = "records" if self._records is not None else f"columns {sorted(self.columns)}"
        return f"<Batch n={len(self)} {kind} partition={self.partition} watermark={self.watermark}>"

    @property
    def has_records(self) -> bool:
        """True when the batch carries Python records (rather than only columns)."""
        return self._records is not None

    @property
    def records(self) -> list:
        """The records; on the columnar path they are built (as dicts) from the columns on first use."""
        if self._records is None:
            self._records = columns_to_records(self.columns)
        return self._records

    def take(self, index: np.ndarray) -> Batch:
        """The records selected by ``index`` (a bool mask or int positions), in that order."""
        records = None
        if self._records is not None:
            if index.dtype == np.bool_:
                records = [r for r, keep in zip(self._records, index.tolist()) if keep]
            else:
                source = self._records
                records = [source[i] for i in index.tolist()]
        return Batch(
            self.ts[index],
            self.wm[index],
            key_ids=None if self.key_ids is None else self.key_ids[index],
            columns={name: col[index] for name, col in self.columns.items()},
            records=records,
            origin=self.origin,
            partition=self.partition,
            watermark=self.watermark,
            idle=self.idle,
        )

    def with_records(self, records: list, index: np.ndarray | None = None, *, keep_keys: bool = False) -> Batch:
        """A record-carrying batch of new ``records``; row ``j`` takes its time (and key when
        ``keep_keys``) from input row ``index[j]`` (or row ``j`` when ``index`` is None)."""
        ts, wm = (self.ts, self.wm) if index is None else (self.ts[index], self.wm[index])
        key_ids = None
        if keep_keys and self.key_ids is not None:
            key_ids = self.key_ids if index is None else self.key_ids[index]
        return Batch(
            ts, wm, key_ids=key_ids, records=records, origin=self.origin, partition=self.partition,
            watermark=self.watermark, idle=self.idle,
        )
