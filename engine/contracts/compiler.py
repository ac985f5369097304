"""Compile a `DataContract` into a msgspec Struct type with reusable decoders, and validate records.

Each contract version compiles once (`compile_contract` caches by fingerprint) into a Struct built with
`msgspec.defstruct`; constraints become `msgspec.Meta` annotations, enums and allowed values become
``Literal`` types, so validation runs inside msgspec's C decoder with no per-field Python code.

- `CompiledContract.validate_json` / `validate_msgpack` / `validate_python` return the typed record or
  raise `ContractValidationError` whose `issues` name the field path and the offending value.
- `CompiledContract.validate_many` takes a batch (bytes, str or mappings), never raises on bad records,
  and returns a `ValidationResult`: the valid records and one `InvalidRecord` (the raw input, its index
  and the reasons) per bad one, ready for a dead-letter output.
- `CompiledContract.validate_columns` validates a batch of JSON records straight into numpy columns
  (`engine.contracts.columnar`): the engine's batch form, several times faster than building one
  Struct per record; its invalid records are exactly those of `validate_many`.

Batches decode in C (``list.extend(map(decoder.decode, ...))``, resuming after a bad record without
re-decoding anything) and check the ``pattern`` of top-level string fields column-wise, one pass of a
compiled DFA per block of records (`engine.contracts.patterns`), instead of calling ``re`` per value.

Validated records are Struct instances whose attributes are the contract's field names (a field named
after a Python keyword gets a trailing underscore as attribute; its wire name is unchanged); pass
``output="dict"`` to get plain dicts instead. An optional field that was absent and has no default is
``msgspec.UNSET`` on the Struct and missing from the dict.
"""

from __future__ import annotations

import copy
import datetime
import keyword
import math
import re
import threading
from typing import Annotated, Any, Iterable, Literal, Mapping, Union

import msgspec

from engine.contracts.errors import ContractValidationError
from engine.contracts.model import DataContract, Field, FieldType

__all__ = [
    "CompiledContract",
    "InvalidRecord",
    "ValidationIssue",
    "ValidationResult",
    "compile_contract",
    "type_for",
    "value_problem",
]

_BUILTIN_KEEP = (datetime.datetime, datetime.date, bytes)
_CACHE: dict[str, CompiledContract] = {}


def _extend_keeps_partial() -> bool:
    """Whether ``list.extend`` keeps the items appended before its iterator raised (CPython does)."""
    probe: list[int] = []
    it = iter(["1", "x", "3"])
    try:
        probe.extend(map(int, it))
    except ValueError:
        pass
    return probe == [1] and list(it) == ["3"]


_EXTEND_KEEPS_PARTIAL = _extend_keeps_partial()
_CACHE_LIMIT = 256
_CACHE_LOCK = threading.Lock()


class ValidationIssue(msgspec.Struct, frozen=True):
    """One reason a record is invalid: the field path (``items[2].price``; ``""`` for the record
    itself), what is wrong, and the offending value (``None`` when it could not be located)."""

    path: str
    message: str
    value: Any = None

    def __str__(self) -> str:
        where = self.path or "<record>"
        return f"{where}: {self.message} (got {self.value!r})"


class InvalidRecord(msgspec.Struct, frozen=True):
    """A record that failed validation: its position in the batch, the raw input, and the reasons."""

    index: int
    record: Any
    issues: tuple[ValidationIssue, ...]

    @property
    def reason(self) -> str:
        return "; ".join(str(i) for i in self.issues)


class ValidationResult(msgspec.Struct):
    """Outcome of a batch: ``valid`` records (in input order) and ``invalid`` ones with reasons."""

    valid: list[Any]
    invalid: list[InvalidRecord]

    def __iter__(self):  # allows ``valid, invalid = validator.validate_many(batch)``
        return iter((self.valid, self.invalid))


# ------------------------------------------------------------------------------------------ types
def _int_bound(key: str, v: int | float) -> tuple[str, int]:
    """msgspec needs integer bounds on ints; a fractional bound becomes the equivalent integer one."""
    if isinstance(v, int):
        return key, v
    if key == "ge":
        return "ge", math.ceil(v)
    if key == "le":
        return "le", math.floor(v)
    if key == "gt":
        return "ge", math.floor(v) + 1
    return "le", math.ceil(v) - 1  # lt


def type_for(t: FieldType, name_hint: str = "Record") -> Any:
    """The msgspec-typed Python annotation that validates values of ``t`` (constraints included)."""
    base = _base_type(t, name_hint)
    if t.nullable:
        return Union[base, None]
    return base


def _meta(**kwargs: Any) -> msgspec.Meta | None:
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    return msgspec.Meta(**kwargs) if kwargs else None


def _annotated(tp: Any, meta: msgspec.Meta | None) -> Any:
    return Annotated[tp, meta] if meta is not None else tp


def _base_type(t: FieldType, name_hint: str) -> Any:
    c = t.constraints
    kind = t.type
    if kind == "string":
        if c is not None and c.allowed_values is not None:
            return Literal[tuple(c.allowed_values)]  # the other constraints were checked against these at load
        return _annotated(str, _meta(min_length=c.min_length, max_length=c.max_length, pattern=c.pattern) if c else None)
    if kind == "integer":
        if c is not None and c.allowed_values is not None:
            return Literal[tuple(c.allowed_values)]
        meta = None
        if c is not None:
            bounds = dict(_int_bound(k, getattr(c, k)) for k in ("ge", "gt", "le", "lt") if getattr(c, k) is not None)
            mult = c.multiple_of
            if mult is not None and isinstance(mult, float) and mult.is_integer():
                mult = int(mult)
            meta = _meta(multiple_of=mult, **bounds)
        return _annotated(int, meta)
    if kind == "float":
        meta = _meta(ge=c.ge, gt=c.gt, le=c.le, lt=c.lt, multiple_of=c.multiple_of) if c else None
        return _annotated(float, meta)
    if kind == "boolean":
        return bool
    if kind == "timestamp":
        return Union[int, Annotated[datetime.datetime, msgspec.Meta(tz=True)]]
    if kind == "date":
        return datetime.date
    if kind == "bytes":
        return _annotated(bytes, _meta(min_length=c.min_length, max_length=c.max_length) if c else None)
    if kind == "enum":
        return Literal[tuple(t.symbols)]
    if kind == "array":
        item = type_for(t.items, name_hint + "Item")
        return _annotated(list[item], _meta(min_length=c.min_length, max_length=c.max_length) if c else None)
    if kind == "map":
        value = type_for(t.values, name_hint + "Value")
        return _annotated(dict[str, value], _meta(min_length=c.min_length, max_length=c.max_length) if c else None)
    if kind == "object":
        return _struct_for(t.fields, t.record_name or name_hint, forbid_unknown=False)
    raise ValueError(f"unknown type {kind!r}")


def _attr(name: str) -> str:
    return name + "_" if keyword.iskeyword(name) or name.startswith("__") else name


def _struct_for(fields: tuple[Field, ...], struct_name: str, forbid_unknown: bool,
                bulk: list | None = None) -> type[msgspec.Struct]:
    """A Struct type for ``fields``. With ``bulk`` (a list to fill), top-level string fields whose
    pattern `bulk_checkable` accepts leave the pattern out of the type and are appended to ``bulk`` as
    ``(attribute, field name, pattern)``; the caller checks those patterns itself (column-wise)."""
    specs = []
    rename = {}
    for f in fields:
        attr = _attr(f.name)
        if attr != f.name:
            rename[attr] = f.name
        hint = struct_name + "_" + f.name
        ftype = f.type
        c = ftype.constraints
        if (bulk is not None and ftype.type == "string" and c is not None and c.pattern is not None
                and c.allowed_values is None and bulk_checkable(c.pattern)):
            bulk.append((attr, f.name, c.pattern))
            ftype = msgspec.structs.replace(ftype, constraints=msgspec.structs.replace(c, pattern=None))
        tp = type_for(ftype, hint)
        if f.required:
            specs.append((attr, tp))
        elif f.has_default:
            default = msgspec.json.decode(msgspec.json.encode(f.default), type=tp)
            if isinstance(default, (list, dict, set, msgspec.Struct)) and default:
                specs.append((attr, tp, msgspec.field(default_factory=lambda d=default: copy.deepcopy(d))))
            else:
                specs.append((attr, tp, default))
        else:
            specs.append((attr, Union[tp, msgspec.UnsetType], msgspec.UNSET))
    # gc=False: decoded records hold no reference cycles, and skipping GC tracking makes big batches cheaper
    return msgspec.defstruct(
        struct_name, specs, kw_only=True, rename=rename or None, forbid_unknown_fields=forbid_unknown, gc=False,
        omit_defaults=False,
    )


def bulk_checkable(pattern: str) -> bool:
    """True when ``pattern`` compiles to a DFA (`engine.contracts.patterns`) and the compiled kernels are
    loaded, so a batch can check the pattern column-wise instead of calling ``re`` per value."""
    from engine import kernels
    from engine.contracts.patterns import compile_dfa

    return kernels.USING_EXTENSIONS and compile_dfa(pattern) is not None


class _BulkPattern:
    """One top-level string field whose pattern a batch checks column-wise (`patterns.column_failures`);
    single records use ``re`` directly, with the same message msgspec would give."""

    def __init__(self, attr: str, name: str, pattern: str):
        import operator

        from engine.contracts.patterns import compile_dfa

        self.attr = attr
        self.name = name
        self.get = operator.attrgetter(attr)
        self.search = re.compile(pattern).search
        self.dfa = compile_dfa(pattern)
        self.message = f"Expected `str` matching regex {pattern!r}"

    def failures(self, records: list[Any]) -> list[int]:
        """Positions in ``records`` whose value is a string that does not match."""
        from engine.contracts.patterns import column_failures

        return column_failures(list(map(self.get, records)), self.dfa, self.search)

    def issue(self, record: Any) -> ValidationIssue:
        return ValidationIssue(self.name, self.message, self.get(record))


def value_problem(value: Any, t: FieldType) -> str | None:
    """``None`` when the JSON-style ``value`` is valid for ``t``, else msgspec's description of why."""
    try:
        tp = type_for(t, "Value")
        msgspec.json.decode(msgspec.json.encode(value), type=tp)
    except (msgspec.ValidationError, msgspec.EncodeError, TypeError) as exc:
        return str(exc)
    return None


# ------------------------------------------------------------------------------------- error paths
_AT = re.compile(r"^(.*) - at `(\$[^`]*)`$", re.S)
_MISSING = re.compile(r"^Object missing required field `([^`]*)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `([^`]*)`$")
_TOKEN = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")
_NOT_FOUND = object()


def _path_tokens(path: str) -> list[str | int | None]:
    """``$.items[0].price`` -> ['items', 0, 'price']; ``[...]`` (a map key msgspec does not report) -> None."""
    tokens: list[str | int | None] = []
    for name, index in _TOKEN.findall(path[1:]):
        if name:
            tokens.append(name)
        elif index == "...":
            tokens.append(None)
        else:
            tokens.append(int(index))
    return tokens


def _render(tokens: list[str | int | None]) -> str:
    out = ""
    for tok in tokens:
        if tok is None:
            out += "[<key>]"
        elif isinstance(tok, int):
            out += f"[{tok}]"
        else:
            out += f".{tok}" if out else tok
    return out


def _locate(obj: Any, tokens: list[str | int | None]) -> Any:
    for tok in tokens:
        if tok is None:
            return _NOT_FOUND
        try:
            obj = obj[tok]
        except (KeyError, IndexError, TypeError):
            return _NOT_FOUND
    return obj


def _issue_from_error(exc: Exception, original: Any) -> ValidationIssue:
    """Turn a msgspec error into a `ValidationIssue`; ``original`` is the decoded (untyped) record."""
    text = str(exc)
    m = _AT.match(text)
    message, path = (m.group(1), m.group(2)) if m else (text, "$")
    tokens = _path_tokens(path)
    value: Any = _locate(original, tokens)
    for pattern, label in ((_MISSING, "required field is missing"), (_UNKNOWN, "field is not in the contract")):
        mm = pattern.match(message)
        if mm:
            tokens = tokens + [mm.group(1)]
            message = label
            value = None if label.startswith("required") else _locate(original, tokens)
            break
    if value is _NOT_FOUND:
        value = None
    return ValidationIssue(_render(tokens), message, value)


# ---------------------------------------------------------------------------------------- compiled
class CompiledContract:
    """A contract version compiled to msgspec; build it with `compile_contract` (cached)."""

    def __init__(self, contract: DataContract):
        self.contract = contract
        self.fingerprint = contract.fingerprint()
        struct_name = "".join(p[:1].upper() + p[1:] for p in re.split(r"[^A-Za-z0-9]+", contract.name) if p) or "Record"
        if struct_name[0].isdigit():
            struct_name = "R" + struct_name
        bulk: list = []
        self.struct_type = _struct_for(contract.fields, struct_name, contract.additional_fields == "forbid", bulk)
        # patterns of top-level string fields are checked column-wise after decoding (see _BulkPattern);
        # every validate_* method applies them, so `struct_type` alone does not enforce those patterns
        self._bulk = [_BulkPattern(*b) for b in bulk]
        self.json_decoder = msgspec.json.Decoder(self.struct_type)
        self._columnar: Any = None  # the `ColumnarPlan`, built on first use of validate_columns
        self.msgpack_decoder = msgspec.msgpack.Decoder(self.struct_type)
        self.json_encoder = msgspec.json.Encoder()
        self.msgpack_encoder = msgspec.msgpack.Encoder()

    def __repr__(self) -> str:
        return f"<CompiledContract {self.contract.name} {self.contract.version}>"

    # ---- single records (raise ContractValidationError)
    def validate_json(self, data: bytes | str) -> Any:
        """Decode and validate one JSON document; raises `ContractValidationError` with the reasons."""
        try:
            return self._patterns_ok(self.json_decoder.decode(data))
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise ContractValidationError(self.contract.name, [self._json_issue(exc, data)]) from None

    def validate_msgpack(self, data: bytes) -> Any:
        try:
            return self._patterns_ok(self.msgpack_decoder.decode(data))
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise ContractValidationError(self.contract.name, [self._msgpack_issue(exc, data)]) from None

    def validate_python(self, obj: Mapping[str, Any]) -> Any:
        """Validate a Python mapping (values as JSON would carry them, or datetime/date/bytes objects)."""
        try:
            return self._patterns_ok(self._convert(obj))
        except (msgspec.ValidationError, TypeError) as exc:
            raise ContractValidationError(self.contract.name, [_issue_from_error(exc, obj)]) from None

    def _patterns_ok(self, record: Any) -> Any:
        for bp in self._bulk:
            value = bp.get(record)
            if isinstance(value, str) and bp.search(value) is None:
                raise ContractValidationError(self.contract.name, [bp.issue(record)])
        return record

    def is_valid(self, record: bytes | str | Mapping[str, Any]) -> bool:
        try:
            if isinstance(record, (bytes, bytearray, memoryview, str)):
                self._patterns_ok(self.json_decoder.decode(record))
            else:
                self._patterns_ok(self._convert(record))
        except (msgspec.ValidationError, msgspec.DecodeError, TypeError, ContractValidationError):
            return False
        return True

    def _convert(self, obj: Any) -> Any:
        if not isinstance(obj, Mapping):
            raise msgspec.ValidationError(f"Expected `object`, got `{type(obj).__name__}`")
        return msgspec.convert(obj, self.struct_type)

    # ---- batches (never raise on a bad record)
    def validate_many(self, records: Iterable[bytes | str | Mapping[str, Any]], *, output: str = "struct",
                      encoding: str = "json") -> ValidationResult:
        """Validate a batch. Items are JSON (bytes/str; msgpack bytes with ``encoding="msgpack"``) or mappings.

        Returns `ValidationResult` (unpackable as ``valid, invalid``); ``output="dict"`` returns plain
        dicts for the valid records. Bad records never raise; each becomes an `InvalidRecord`.
        """
        if output not in ("struct", "dict"):
            raise ValueError(f"output must be 'struct' or 'dict', got {output!r}")
        if encoding not in ("json", "msgpack"):
            raise ValueError(f"encoding must be 'json' or 'msgpack', got {encoding!r}")
        items = records if isinstance(records, list) else list(records)
        valid: list[Any] = []
        invalid: list[InvalidRecord] = []
        if encoding == "json":
            valid = self._json_batch(items, invalid)
        else:
            decode_mp = self.msgpack_decoder.decode
            for i, rec in enumerate(items):
                try:
                    if isinstance(rec, (bytes, bytearray, memoryview)):
                        valid.append(decode_mp(rec))
                    else:
                        valid.append(self._convert(rec))
                except (msgspec.ValidationError, msgspec.DecodeError, TypeError) as exc:
                    invalid.append(InvalidRecord(i, rec, (self._issue(exc, rec, encoding),)))
        if self._bulk and valid and encoding != "json":  # the JSON path checks patterns per block
            valid, invalid = self._check_bulk(valid, invalid, items)
        invalid.sort(key=lambda r: r.index)
        if output == "dict":
            valid = [msgspec.to_builtins(v, builtin_types=_BUILTIN_KEEP) for v in valid]
        return ValidationResult(valid, invalid)

    def validate_columns(self, records: Iterable[bytes | str | Mapping[str, Any]]) -> Any:
        """Validate a batch of JSON records into numpy columns: a `ColumnarValidation` holding one
        column per field (valid records only, in input order), the input ``index`` of each row and the
        ``invalid`` records exactly as `validate_many` reports them. Flat JSON objects are decoded by a
        compiled scanner; anything else goes through `validate_many`. Column types and details:
        `engine.contracts.columnar`."""
        plan = self._columnar
        if plan is None:
            from engine.contracts.columnar import ColumnarPlan

            plan = self._columnar = ColumnarPlan(self)
        return plan.validate(records)

    def _check_bulk(self, valid: list[Any], invalid: list[InvalidRecord], items: list[Any]
                    ) -> tuple[list[Any], list[InvalidRecord]]:
        bad: dict[int, ValidationIssue] = {}
        for bp in self._bulk:
            for pos in bp.failures(valid):
                bad.setdefault(pos, bp.issue(valid[pos]))
        if not bad:
            return valid, invalid
        taken = {r.index for r in invalid}
        indices = [i for i in range(len(items)) if i not in taken]  # input index of each valid record
        for pos, issue in bad.items():
            index = indices[pos]
            invalid.append(InvalidRecord(index, items[index], (issue,)))
        invalid.sort(key=lambda r: r.index)
        return [r for pos, r in enumerate(valid) if pos not in bad], invalid

    def _json_batch(self, items: list[Any], invalid: list[InvalidRecord]) -> list[Any]:
        """Decode block by block with ``list.extend(map(decode, iterator))``: the loop runs in C, and when a
        record fails, the records before it are already in the list and the iterator stands just past
        the bad one, so decoding resumes there: no record is decoded twice and clean data pays no
        per-record Python bookkeeping. Column-wise pattern checks run per block, while its records are
        still in the CPU cache. (Where ``extend`` does not keep partial results, see
        `_EXTEND_KEEPS_PARTIAL`, a plain per-record loop is used.)"""
        out: list[Any] = []
        decode = self.json_decoder.decode
        errors = (msgspec.ValidationError, msgspec.DecodeError, TypeError)
        block = 1024
        for start in range(0, len(items), block):
            part = items[start:start + block]
            decoded: list[Any] = []
            bad: list[int] = []  # offsets in `part` of records that failed
            if _EXTEND_KEEPS_PARTIAL:
                it = iter(part)
                while True:
                    try:
                        decoded.extend(map(decode, it))
                        break
                    except errors as exc:
                        offset = len(decoded) + len(bad)  # the record that raised
                        self._one_failed(part[offset], exc, start + offset, decoded, bad, offset, invalid)
            else:  # pragma: no cover - CPython keeps partial results
                for offset, rec in enumerate(part):
                    try:
                        decoded.append(decode(rec))
                    except errors as exc:
                        self._one_failed(rec, exc, start + offset, decoded, bad, offset, invalid)
            if self._bulk and decoded:
                if bad:
                    skip = set(bad)
                    where = [start + o for o in range(len(part)) if o not in skip]
                else:
                    where = range(start, start + len(part))
                decoded = self._drop_pattern_failures(decoded, where, items, invalid)
            out.extend(decoded)
        return out

    def _one_failed(self, rec: Any, exc: Exception, index: int, decoded: list[Any], bad: list[int], offset: int,
                    invalid: list[InvalidRecord]) -> None:
        """Handle a record the JSON decoder refused: a mapping is validated as a Python object instead;
        anything else becomes an `InvalidRecord`."""
        if isinstance(exc, TypeError) and not isinstance(rec, (bytes, bytearray, memoryview, str)):
            try:
                decoded.append(self._convert(rec))
                return
            except (msgspec.ValidationError, TypeError) as exc2:
                exc = exc2
        bad.append(offset)
        invalid.append(InvalidRecord(index, rec, (self._issue(exc, rec, "json"),)))

    def _drop_pattern_failures(self, decoded: list[Any], where: list[int], items: list[Any],
                               invalid: list[InvalidRecord]) -> list[Any]:
        bad: dict[int, ValidationIssue] = {}
        for bp in self._bulk:
            for pos in bp.failures(decoded):
                bad.setdefault(pos, bp.issue(decoded[pos]))
        if not bad:
            return decoded
        for pos, issue in bad.items():
            invalid.append(InvalidRecord(where[pos], items[where[pos]], (issue,)))
        return [r for pos, r in enumerate(decoded) if pos not in bad]

    # ---- issues
    def _issue(self, exc: Exception, rec: Any, encoding: str) -> ValidationIssue:
        if isinstance(rec, (bytes, bytearray, memoryview, str)):
            return self._msgpack_issue(exc, rec) if encoding == "msgpack" else self._json_issue(exc, rec)
        return _issue_from_error(exc, rec)

    def _json_issue(self, exc: Exception, data: Any) -> ValidationIssue:
        if isinstance(exc, msgspec.ValidationError):
            try:
                original = msgspec.json.decode(data)
            except msgspec.DecodeError:
                original = None
            return _issue_from_error(exc, original)
        return ValidationIssue("", f"malformed JSON: {exc}", _preview(data))

    def _msgpack_issue(self, exc: Exception, data: Any) -> ValidationIssue:
        if isinstance(exc, msgspec.ValidationError):
            try:
                original = msgspec.msgpack.decode(data)
            except msgspec.DecodeError:
                original = None
            return _issue_from_error(exc, original)
        return ValidationIssue("", f"malformed msgpack: {exc}", _preview(data))

    # ---- encoding
    def encode_json(self, record: Any) -> bytes:
        """Validate ``record`` (a mapping or this contract's Struct) and encode it as JSON."""
        if not isinstance(record, self.struct_type):
            record = self.validate_python(record)
        return self.json_encoder.encode(record)

    def to_dict(self, record: Any) -> dict[str, Any]:
        return msgspec.to_builtins(record, builtin_types=_BUILTIN_KEEP)


def _preview(data: Any, limit: int = 200) -> Any:
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = bytes(data)
        return data if len(data) <= limit else data[:limit] + b"..."
    if isinstance(data, str) and len(data) > limit:
        return data[:limit] + "..."
    return data


def compile_contract(contract: DataContract) -> CompiledContract:
    """The `CompiledContract` for ``contract``, compiled on first use and cached by fingerprint."""
    key = contract.fingerprint()
    compiled = _CACHE.get(key)
    if compiled is not None:
        return compiled
    with _CACHE_LOCK:
        compiled = _CACHE.get(key)
        if compiled is None:
            compiled = CompiledContract(contract)
            if len(_CACHE) >= _CACHE_LIMIT:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = compiled
    return compiled
