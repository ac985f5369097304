"""Columnar validation: a batch of JSON records decoded and validated straight into numpy columns.

`CompiledContract.validate_columns` is the batch validator for the engine's columnar micro-batches
(`engine.batch.Batch.columns`): instead of one Python object per record it returns one numpy array per
field, the input positions of the valid records and the invalid records with their reasons, exactly
as `CompiledContract.validate_many` reports them.

How: the compiled kernel `engine.kernels.scan_flat_json` reads every flat JSON object of the batch in
one C loop, checks the contract's constraints and writes the values into preallocated columns. It is
conservative: a record with anything unusual (escapes, non-ASCII, null, missing or duplicate fields,
unknown fields unless the contract allows them and they hold plain scalars or arrays and objects of
them, very long numbers, malformed JSON, a broken constraint, items that are str or mappings rather than
bytes) is left to msgspec, which decodes those records through `validate_many` (same values, same
issues) and the valid ones are merged into their rows. A contract the scanner cannot read at all (fields
of type date, bytes, array, map or object) is validated with `validate_many` and its records are
converted to columns, so every contract works; only the speed differs.

Column types, decided by the contract (so every batch of a stream has the same dtypes):

======================  ===============================================================================
field type              column
======================  ===============================================================================
integer                 int64
timestamp               int64 epoch milliseconds (an RFC 3339 string is converted, rounding down to
                        the millisecond), the engine's event-time representation
float                   float64
boolean                 bool
string                  object array of ``str`` (also with ``allowed_values``)
enum                    object array of ``str``: the symbol. The batch's records are built from the
                        columns with ``tolist()``, so a categorical int32 code column would come back
                        as numbers; the symbols are shared objects, so the column costs 8 bytes a row.
                        The codes are in `ColumnarValidation.codes` for kernels that want them.
date, bytes, array,     object array of the values as ``validate_many(output="dict")`` gives them
map, object             (``datetime.date``, ``bytes``, lists and dicts)
======================  ===============================================================================

A ``nullable`` field, or an optional field without a default, has an object column (Python values,
``None`` for null or absent; such a batch has no ``codes`` for that field). An integer or timestamp
column whose valid values do not all fit in int64 becomes an object column of Python ints for that
batch (msgspec accepts arbitrary integers).

So the columns differ from ``validate_many(output="dict")`` in two documented ways: timestamps are
always epoch milliseconds (never ``datetime``), and an absent optional field without a default is
``None`` (the dict leaves the key out). For every other contract `ColumnarValidation.records` equals
that list of dicts.
"""

from __future__ import annotations

import datetime
from typing import Any, Iterable, Mapping

import msgspec
import numpy as np

from engine.contracts.compiler import _BUILTIN_KEEP, InvalidRecord, _attr, _int_bound, type_for
from engine.contracts.model import Field
from engine.contracts.patterns import compile_dfa

__all__ = ["ColumnarValidation", "ColumnarPlan"]

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_MS = datetime.timedelta(milliseconds=1)
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_SCANNED_TYPES = ("string", "integer", "float", "boolean", "timestamp", "enum")


class ColumnarValidation:
    """Outcome of `CompiledContract.validate_columns`.

    ``columns``: field name -> numpy array with one row per valid record, in input order (types in the
    module docstring); ``index``: int64 input position of each row; ``invalid``: the bad records, as
    `validate_many` reports them (``index`` is the input position); ``codes``: for enum fields and
    strings with ``allowed_values``, the int32 position of each row's value in the symbols.
    """

    __slots__ = ("columns", "index", "invalid", "codes")

    def __init__(self, columns: dict[str, np.ndarray], index: np.ndarray, invalid: list[InvalidRecord],
                 codes: dict[str, np.ndarray] | None = None):
        self.columns = columns
        self.index = index
        self.invalid = invalid
        self.codes = codes if codes is not None else {}

    def __len__(self) -> int:
        """The number of valid records (rows)."""
        return len(self.index)

    def __repr__(self) -> str:
        return f"<ColumnarValidation valid={len(self.index)} invalid={len(self.invalid)} columns={list(self.columns)}>"

    def records(self) -> list[dict[str, Any]]:
        """The valid rows as dicts (Python values), e.g. for a sink that wants records."""
        from engine.batch import columns_to_records

        return columns_to_records(self.columns)


def _epoch_ms(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return (value - _EPOCH) // _MS
    return value


class _Column:
    """How one field becomes a column: the scanner's view of it (``flat``), the dtype of the scanner's
    column, and how a value decoded by msgspec is written into a row."""

    def __init__(self, field: Field, plan_flat: bool):
        from engine.kernels import FlatField

        self.name = field.name
        self.attr = _attr(field.name)
        t = field.type
        c = t.constraints
        self.type = t.type
        self.as_object = t.nullable or (not field.required and not field.has_default)
        self.symbols: tuple[Any, ...] | None = None
        self.flat: FlatField | None = None
        self.exact: Any = None  # a msgspec type that rows accepted by the scanner must also convert to
        kind = {"integer": "int", "timestamp": "timestamp", "float": "float", "boolean": "bool",
                "string": "string", "enum": "enum"}.get(t.type)
        if t.type == "enum":
            self.symbols = tuple(t.symbols)
        elif t.type == "string" and c is not None and c.allowed_values is not None:
            self.symbols = tuple(c.allowed_values)
            kind = "enum"
        self.dtype = {"int": np.int64, "timestamp": np.int64, "float": np.float64, "bool": np.bool_,
                      "string": np.object_, "enum": np.int32, None: np.object_}[kind]
        if not plan_flat or kind is None:
            return
        options: dict[str, Any] = {}
        if kind == "int" and c is not None:
            if c.allowed_values is not None:
                self.exact = type_for(t)
            lower, upper = [], []
            for key in ("ge", "gt", "le", "lt"):
                if getattr(c, key) is not None:
                    bound_key, bound = _int_bound(key, getattr(c, key))
                    if bound_key == "gt":
                        bound_key, bound = "ge", bound + 1
                    elif bound_key == "lt":
                        bound_key, bound = "le", bound - 1
                    (lower if bound_key == "ge" else upper).append(bound)
            if lower:
                options["ge"] = max(lower)
            if upper:
                options["le"] = min(upper)
            mult = c.multiple_of
            if mult is not None:
                if isinstance(mult, float) and mult.is_integer():
                    mult = int(mult)
                if isinstance(mult, int) and 0 < mult <= _INT64_MAX:
                    options["multiple_of"] = mult
                else:
                    self.exact = type_for(t)
        elif kind == "float" and c is not None:
            lower = [k for k in ("ge", "gt") if getattr(c, k) is not None]
            upper = [k for k in ("le", "lt") if getattr(c, k) is not None]
            if len(lower) > 1 or len(upper) > 1 or c.multiple_of is not None:
                self.exact = type_for(t)
            else:
                options.update({k: getattr(c, k) for k in lower + upper})
        elif kind == "string" and c is not None:
            options.update(min_length=c.min_length, max_length=c.max_length)
            if c.pattern is not None:
                dfa = compile_dfa(c.pattern)
                if dfa is None:
                    self.exact = type_for(t)
                else:
                    options["dfa"] = (dfa.table, dfa.accepting, dfa.start)
        if kind == "enum":
            if not self.symbols or not all(isinstance(s, str) for s in self.symbols):
                return  # e.g. integer allowed values cannot be enum codes: no scanner for this contract
            options["symbols"] = self.symbols
        self.flat = FlatField(self.name, kind, **options)

    def finish(self, col: np.ndarray, overrides: dict[int, Any]) -> tuple[np.ndarray, np.ndarray | None]:
        """The output column from the filled one: map enum codes to symbols, then write ``overrides``
        (row -> a value the dtype cannot hold: ``None``, an integer outside int64). Returns (column,
        enum codes or None)."""
        codes = None
        if self.symbols is not None and col.dtype == np.int32:
            codes = col
            if overrides:
                codes = codes.copy()
                codes[list(overrides)] = 0  # a placeholder; these rows are overridden below
            symbols = np.empty(len(self.symbols), dtype=object)
            symbols[:] = self.symbols
            col = symbols.take(codes)
            if overrides:
                codes = None  # some rows hold no symbol (null or absent): no codes for this batch
        if overrides or (self.as_object and col.dtype != object):
            col = col.astype(object)
        for row, value in overrides.items():
            col[row] = value
        return col, codes


class ColumnarPlan:
    """The columnar view of a compiled contract: one `_Column` per field, and the scanner's fields
    when the scanner can read this contract (``flat_fields is None`` otherwise)."""

    def __init__(self, compiled: Any):
        self.compiled = compiled
        fields = compiled.contract.fields
        scannable = bool(fields) and all(f.type.type in _SCANNED_TYPES for f in fields)
        self.columns = [_Column(f, scannable) for f in fields]
        # fields the contract does not name are ignored (msgspec skips them) unless it forbids them
        self.allow_unknown = compiled.contract.additional_fields != "forbid"
        if scannable and all(c.flat is not None for c in self.columns):
            self.flat_fields: list | None = [c.flat for c in self.columns]
        else:
            self.flat_fields = None

    # ---- entry point
    def validate(self, records: Iterable[bytes | str | Mapping[str, Any]]) -> ColumnarValidation:
        items = records if isinstance(records, list) else list(records)
        n = len(items)
        cols = [np.empty(n, dtype=c.dtype) for c in self.columns]
        if self.flat_fields is not None and n:
            from engine.kernels import scan_flat_json

            status = np.empty(n, dtype=np.uint8)
            accepted = scan_flat_json(items, self.flat_fields, cols, status, self.allow_unknown)
            # the k-th accepted record filled row k: `fast[k]` is its input position
            fast = np.flatnonzero(status == 0)
            cols = [col[:accepted] if 2 * accepted >= n else col[:accepted].copy() for col in cols]
            fast, cols = self._exact_checks(cols, fast, status)
            slow = np.flatnonzero(status).tolist()
        else:
            fast = np.empty(0, dtype=np.intp)
            cols = [col[:0] for col in cols]
            slow = list(range(n))
        invalid: list[InvalidRecord] = []
        overrides: list[dict[int, Any]] = [{} for _ in self.columns]
        index = fast
        if slow:
            result = self.compiled.validate_many([items[i] for i in slow])
            invalid = [InvalidRecord(slow[r.index], r.record, r.issues) for r in result.invalid]
            bad = {r.index for r in result.invalid}
            rows = [row for j, row in enumerate(slow) if j not in bad]
            if rows:  # merge the records msgspec accepted into their rows
                index = np.sort(np.concatenate([fast, np.asarray(rows, dtype=fast.dtype)]))
                fast_at = np.searchsorted(index, fast)
                rows_at = np.searchsorted(index, rows).tolist()
                merged = []
                for c, col, over in zip(self.columns, cols, overrides):
                    out = np.empty(len(index), dtype=col.dtype)
                    out[fast_at] = col
                    self._write(c, out, over, rows_at, [getattr(s, c.attr) for s in result.valid])
                    merged.append(out)
                cols = merged
        columns: dict[str, np.ndarray] = {}
        codes: dict[str, np.ndarray] = {}
        for c, col, over in zip(self.columns, cols, overrides):
            columns[c.name], code = c.finish(col, over)
            if code is not None:
                codes[c.name] = code
        return ColumnarValidation(columns, index.astype(np.int64, copy=False), invalid, codes)

    def _exact_checks(self, cols: list[np.ndarray], fast: np.ndarray, status: np.ndarray
                      ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Constraints the scanner does not check (integer allowed values, float ``multiple_of``, patterns
        that do not compile to a DFA): rows that fail msgspec's own check are dropped and their records
        go to the slow path (which reports them exactly as `validate_many` does)."""
        drop = np.zeros(len(fast), dtype=bool)
        for c, col in zip(self.columns, cols):
            if c.exact is None:
                continue
            for k, value in enumerate(col.tolist()):
                try:
                    msgspec.convert(value, c.exact)
                except msgspec.ValidationError:
                    drop[k] = True
        if not drop.any():
            return fast, cols
        status[fast[drop]] = 1
        keep = ~drop
        return fast[keep], [col[keep] for col in cols]

    @staticmethod
    def _write(c: _Column, col: np.ndarray, over: dict[int, Any], rows: list[int], values: list[Any]) -> None:
        kind = col.dtype
        for row, value in zip(rows, values):
            if value is None or value is msgspec.UNSET:
                over[row] = None
            elif kind == np.int32:  # enum codes
                col[row] = c.symbols.index(value)  # type: ignore[union-attr]
            elif kind == np.int64:
                value = _epoch_ms(value)
                if _INT64_MIN <= value <= _INT64_MAX:
                    col[row] = value
                else:
                    over[row] = value
            elif kind == np.object_ and not isinstance(value, str):
                col[row] = msgspec.to_builtins(value, builtin_types=_BUILTIN_KEEP)
            else:
                col[row] = value
