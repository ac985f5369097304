"""In-memory connectors: Python collections and numpy columns in, lists and numpy columns out.

* `CollectionSource`: a sequence (or iterable) of records: dicts, msgspec Structs or objects with
  attributes. One partition; its position is the index of the next record.
* `ArraySource`: a dict of equal-length 1-D numpy arrays (fields are the dict keys), read as column
  slices without creating Python objects: the fully columnar path.
* `CollectSink`: appends every record to ``.results``.
* `ArraySink`: keeps the columns of every batch; ``.columns()`` concatenates them per field, so a
  columnar job (window results included) never builds per-record Python objects.
* `PrintSink`: prints records (for example jobs and debugging).

Sinks here are at-least-once: after a failure or cancellation they keep what was written so far
(``abort`` discards nothing), and a restarted job may write some records again.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any, AsyncIterator, Iterable, Sequence, TextIO

import numpy as np

from engine.batch import Batch
from engine.errors import FlowDefinitionError
from engine.io import Sink, Source, SourceChunk

__all__ = ["ArraySink", "ArraySource", "CollectSink", "CollectionSource", "PrintSink"]


def _batch_size(value: Any, owner: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FlowDefinitionError(f"{owner}: batch_size must be a positive int, got {value!r}")
    return value


class CollectionSource(Source):
    """Reads ``records`` in order, ``batch_size`` at a time (the run's ``batch_size`` overrides it).

    A sequence can be read again by every run; any other iterable is consumed once.
    """

    default_batch_size = 1024

    def __init__(self, records: Iterable[Any], batch_size: int = 1024) -> None:
        self._records = records
        self.batch_size = _batch_size(batch_size, "CollectionSource")
        self._is_sequence = isinstance(records, Sequence)
        self._position = 0
        self._start = 0
        self._run_batch_size = self.batch_size

    def describe(self) -> str:
        size = f"{len(self._records)} records, " if self._is_sequence else ""  # type: ignore[arg-type]
        return f"CollectionSource({size}batch_size={self.batch_size})"

    async def open(self, batch_size: int | None = None) -> None:
        self._run_batch_size = self.batch_size if batch_size is None else _batch_size(batch_size, "CollectionSource")
        self._position = self._start

    async def read(self) -> AsyncIterator[SourceChunk]:
        size = self._run_batch_size
        if self._is_sequence:
            records: Sequence[Any] = self._records  # type: ignore[assignment]
            while self._position < len(records):
                chunk = records[self._position : self._position + size]
                if type(chunk) is not list:  # a list slice is already a fresh list; copy other sequences
                    chunk = list(chunk)
                self._position += len(chunk)
                yield SourceChunk(0, records=chunk, position=self._position)
            return
        iterator = iter(self._records)
        for _ in range(self._position):  # resume after a seek by skipping what was read before
            next(iterator, None)
        chunk: list[Any] = []
        for record in iterator:
            chunk.append(record)
            if len(chunk) == size:
                self._position += size
                yield SourceChunk(0, records=chunk, position=self._position)
                chunk = []
        if chunk:
            self._position += len(chunk)
            yield SourceChunk(0, records=chunk, position=self._position)

    def position(self) -> dict[int, Any]:
        return {0: self._position}

    def seek(self, positions: dict[int, Any]) -> None:
        self._start = int(positions.get(0, 0))


class ArraySource(Source):
    """Reads a dict of equal-length 1-D numpy arrays as column slices (views, no copies)."""

    columnar = True
    default_batch_size = 65_536

    def __init__(self, columns: dict[str, np.ndarray], batch_size: int = 65_536) -> None:
        if not isinstance(columns, dict) or not columns:
            raise FlowDefinitionError("ArraySource needs a non-empty dict of field name -> 1-D numpy array")
        lengths = {}
        for name, column in columns.items():
            if not isinstance(name, str):
                raise FlowDefinitionError(f"ArraySource field names must be strings, got {name!r}")
            if not isinstance(column, np.ndarray) or column.ndim != 1:
                raise FlowDefinitionError(f"ArraySource field {name!r} must be a 1-D numpy array, got {type(column).__name__}")
            lengths[name] = len(column)
        if len(set(lengths.values())) > 1:
            raise FlowDefinitionError(f"ArraySource columns must have equal lengths, got {lengths}")
        self._columns = dict(columns)
        self._length = next(iter(lengths.values()))
        self.batch_size = _batch_size(batch_size, "ArraySource")
        self._run_batch_size = self.batch_size
        self._position = 0
        self._start = 0

    def describe(self) -> str:
        return f"ArraySource({self._length} rows, fields {sorted(self._columns)}, batch_size={self.batch_size})"

    def fields(self) -> dict[str, np.dtype]:
        return {name: column.dtype for name, column in self._columns.items()}

    async def open(self, batch_size: int | None = None) -> None:
        self._run_batch_size = self.batch_size if batch_size is None else _batch_size(batch_size, "ArraySource")
        self._position = self._start

    async def read(self) -> AsyncIterator[SourceChunk]:
        size = self._run_batch_size
        while self._position < self._length:
            stop = min(self._position + size, self._length)
            chunk = {name: column[self._position : stop] for name, column in self._columns.items()}
            self._position = stop
            yield SourceChunk(0, columns=chunk, position=stop)

    def position(self) -> dict[int, Any]:
        return {0: self._position}

    def seek(self, positions: dict[int, Any]) -> None:
        self._start = int(positions.get(0, 0))


class CollectSink(Sink):
    """Appends every record it receives to ``results`` (cleared when a run opens it)."""

    def __init__(self) -> None:
        self.results: list[Any] = []

    async def open(self) -> None:
        self.results = []

    async def write(self, batch: Batch) -> None:
        self.results.extend(batch.records)


def _record_columns(records: list) -> dict[str, np.ndarray]:
    """Columns from Python records: fields of dicts/Structs/dataclasses, else one ``value`` column."""
    import dataclasses

    import msgspec

    first = records[0]
    if isinstance(first, msgspec.Struct):
        records = [msgspec.structs.asdict(r) for r in records]
    elif dataclasses.is_dataclass(first) and not isinstance(first, type):
        records = [dataclasses.asdict(r) for r in records]
    elif not isinstance(first, dict):
        return {"value": _column([r for r in records])}
    names = list(records[0])
    return {name: _column([r.get(name) for r in records]) for name in names}


def _column(values: list) -> np.ndarray:
    try:
        column = np.asarray(values)
        if column.ndim == 1 and column.dtype.kind in "biufUM":
            return column
    except (ValueError, TypeError):
        pass
    column = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        column[i] = value
    return column


class ArraySink(Sink):
    """Keeps the columns of every batch; ``columns()`` returns them concatenated per field.

    Columnar batches (from ``ArraySource`` and from window results) are kept as numpy arrays without
    creating Python objects; record batches are converted (dict/Struct fields, else a ``value`` column).
    """

    columnar = True

    def __init__(self) -> None:
        self._chunks: list[dict[str, np.ndarray]] = []

    async def open(self) -> None:
        self._chunks = []

    async def write(self, batch: Batch) -> None:
        if batch.columns:  # columnar path: keep the arrays as they are
            self._chunks.append(dict(batch.columns))
        else:
            self._chunks.append(_record_columns(batch.records))

    def columns(self) -> dict[str, np.ndarray]:
        """Every field's values over all batches, in order; ``{}`` when nothing was written."""
        if not self._chunks:
            return {}
        names = list(self._chunks[0])
        out = {}
        for name in names:
            parts = [chunk[name] for chunk in self._chunks if name in chunk]
            out[name] = np.concatenate(parts) if len(parts) > 1 else parts[0].copy()
        return out

    def __len__(self) -> int:
        return sum(len(next(iter(c.values()))) for c in self._chunks if c)


class PrintSink(Sink):
    """Prints each record on its own line (``prefix`` first); after ``limit`` records it only counts
    and says how many it left out when the run finishes."""

    def __init__(self, prefix: str = "", limit: int | None = None, file: TextIO | None = None) -> None:
        self.prefix = prefix
        self.limit = limit
        self.file = file
        self._printed = 0
        self._skipped = 0

    async def open(self) -> None:
        self._printed = self._skipped = 0

    async def write(self, batch: Batch) -> None:
        out = self.file or sys.stdout
        for record in batch.records:
            if self.limit is not None and self._printed >= self.limit:
                self._skipped += 1
                continue
            print(f"{self.prefix}{record}", file=out)
            self._printed += 1
        await asyncio.sleep(0)

    async def finish(self) -> None:
        if self._skipped:
            print(f"{self.prefix}... {self._skipped} more records not shown", file=self.file or sys.stdout)
