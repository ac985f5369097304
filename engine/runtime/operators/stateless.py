"""Stateless operators: map, flat_map, filter, key_by, union and the side-output pass-throughs.

User callables run once per record, outside the kernels; a call that raises turns the record into a
dead letter (the call is not retried). Records keep their event timestamp and per-record watermark.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from engine.batch import Batch
from engine.runtime.extract import Problem, call_per_record, field_values, good_index
from engine.runtime.keys import KeyDomain
from engine.runtime.operators.base import InputWatermarks, Operator, Output, dead_letters_for

__all__ = ["FilterOperator", "FlatMapOperator", "KeyByOperator", "MapOperator", "PassThrough", "UnionOperator"]


def _fn_name(fn: Callable) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__


class PassThrough(Operator):
    """Forwards batches unchanged (late and dead-letter side outputs, named so metrics can count them)."""

    def process(self, batch: Batch, input_index: int) -> Output:
        self.watermark = max(self.watermark, batch.watermark)
        return Output(batch)


class MapOperator(Operator):
    def __init__(self, step: str, fn: Callable[[Any], Any]) -> None:
        super().__init__(step)
        self.fn = fn
        self.what = f"map function {_fn_name(fn)}"

    def process(self, batch: Batch, input_index: int) -> Output:
        self.watermark = batch.watermark
        records = batch.records
        out, problems = call_per_record(self.fn, records, self.what)
        if not problems:
            return Output(batch.with_records(out))
        return Output(batch.with_records(out, good_index(len(records), problems)),
                      errors=dead_letters_for(self.step, records, problems))


class FilterOperator(Operator):
    def __init__(self, step: str, fn: Callable[[Any], bool]) -> None:
        super().__init__(step)
        self.fn = fn
        self.what = f"filter function {_fn_name(fn)}"

    def process(self, batch: Batch, input_index: int) -> Output:
        self.watermark = batch.watermark
        if not len(batch):
            return Output(batch)
        records = batch.records
        verdicts, problems = call_per_record(self.fn, records, self.what)
        keep = np.fromiter((bool(v) for v in verdicts), dtype=bool, count=len(verdicts))
        errors = []
        if problems:
            full = np.zeros(len(records), dtype=bool)
            full[good_index(len(records), problems)] = keep
            keep = full
            errors = dead_letters_for(self.step, records, problems)
        if keep.all():
            return Output(batch, errors=errors)
        return Output(batch.take(keep), errors=errors)


class FlatMapOperator(Operator):
    def __init__(self, step: str, fn: Callable[[Any], Any]) -> None:
        super().__init__(step)
        self.fn = fn
        self.what = f"flat_map function {_fn_name(fn)}"

    def _expand(self, record: Any) -> list:
        return list(self.fn(record))  # materialise inside the guarded call so iteration errors count too

    def process(self, batch: Batch, input_index: int) -> Output:
        self.watermark = batch.watermark
        records = batch.records
        lists, problems = call_per_record(self._expand, records, self.what)
        rows = good_index(len(records), problems) if problems else np.arange(len(records))
        lengths = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
        flat = [item for items in lists for item in items]
        index = np.repeat(rows, lengths)
        return Output(batch.with_records(flat, index), errors=dead_letters_for(self.step, records, problems))


class KeyByOperator(Operator):
    """Computes key ids (via the key domain shared with the consuming window or join)."""

    def __init__(self, step: str, key: str | Callable[[Any], Any], domain: KeyDomain) -> None:
        super().__init__(step)
        self.key = key
        self.domain = domain
        self.what = f"key function {_fn_name(key)}" if callable(key) else None

    def process(self, batch: Batch, input_index: int) -> Output:
        self.watermark = batch.watermark
        n = len(batch)
        if not n:
            return Output(batch.emptied(keyed=True))
        problems: list[Problem] = []
        keys: Any
        if isinstance(self.key, str) and self.key in batch.columns:
            keys = batch.columns[self.key]
        elif isinstance(self.key, str):
            keys, problems = field_values(batch.records, self.key)
        else:
            keys, problems = call_per_record(self.key, batch.records, self.what, pure=True)
        present = good_index(n, problems) if problems else None
        try:
            ids = self.domain.intern(keys)
        except TypeError:
            # Some key is unhashable: find which, and intern the others.
            field = self.key if isinstance(self.key, str) else None
            positions = present.tolist() if present is not None else list(range(n))
            hashable = []
            for pos, key in zip(positions, keys if not isinstance(keys, np.ndarray) else keys.tolist()):
                try:
                    hash(key)
                    hashable.append((pos, key))
                except TypeError:
                    problems.append(Problem(pos, f"key must be hashable, got {type(key).__name__} {key!r}", field, key))
            problems.sort(key=lambda p: p.index)
            present = np.array([pos for pos, _ in hashable], dtype=np.int64)
            ids = self.domain.intern([key for _, key in hashable])
        if not problems:
            return Output(batch.replace(key_ids=ids))
        errors = dead_letters_for(self.step, batch.records, problems)
        out = batch.take(present)
        out.key_ids = ids
        return Output(out, errors=errors)

    def extra_metrics(self) -> dict[str, Any]:
        return {"keys": len(self.domain), "key_compactions": self.domain.compactions}

    def snapshot(self) -> dict[str, Any]:
        return {"domain": self.domain.snapshot()}

    def restore(self, snapshot: dict[str, Any]) -> None:
        self.domain.restore(snapshot["domain"])


class UnionOperator(Operator):
    """Merges its inputs; each record's watermark is also bounded by the other inputs' current ones."""

    def __init__(self, step: str, n_inputs: int, origins: list[str]) -> None:
        super().__init__(step)
        self.inputs = InputWatermarks(n_inputs, origins)

    def process(self, batch: Batch, input_index: int) -> Output:
        wm = self.inputs.per_record(batch.origin, batch.wm)
        self.inputs.update(input_index, batch)
        self.watermark = max(self.watermark, self.inputs.combined())
        return Output(batch.replace(wm=wm, key_ids=None, watermark=self.watermark, idle=self.inputs.all_idle()))
