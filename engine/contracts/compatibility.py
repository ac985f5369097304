"""Schema compatibility with Confluent Schema Registry semantics.

Modes (``new`` is the schema being registered, ``previous`` the registered versions, oldest first):

- ``BACKWARD``: a reader using ``new`` can read data written with the latest previous version.
- ``FORWARD``: a reader using the latest previous version can read data written with ``new``.
- ``FULL``: both. ``*_TRANSITIVE``: the same against *every* previous version, not only the latest.
- ``NONE``: no check.

Reader/writer rules by schema type:

- **Avro** (`avro_reader_problems`): Avro schema resolution. A reader field missing from the writer needs
  a default (``READER_FIELD_MISSING_DEFAULT_VALUE``); writer fields the reader lacks are skipped; the
  writer's type must be the reader's or promotable (int -> long -> float -> double, string <-> bytes,
  ``TYPE_MISMATCH`` otherwise); enum symbols the writer may send must exist in the reader unless the
  reader enum has a default (``MISSING_ENUM_SYMBOLS``); every writer union branch must be readable
  (``MISSING_UNION_BRANCH``); record/enum/fixed names must match (``NAME_MISMATCH``); fixed sizes match
  (``FIXED_SIZE_MISMATCH``). Records, arrays, maps and unions are checked recursively.
- **Contracts** (`contract_reader_problems`): the contract's Avro form under the Avro rules, plus the
  value constraints Avro cannot carry: the reader must accept every value the writer's constraints allow
  (a tightened bound, a new pattern or a removed allowed value is ``CONSTRAINT_NARROWED``), and a field
  the reader requires must not be optional for the writer (``REQUIRED_FIELD_ADDED``).
- **JSON Schema** (`json_reader_problems`): every document the writer schema accepts must be accepted by
  the reader schema, with Confluent's open/closed content-model rules: adding a property to an open
  content model (``PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL``), removing one from a closed content model
  (``PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL``), closing or narrowing ``additionalProperties``,
  narrowing types, enums, bounds, lengths and patterns are incompatible; the reverse changes are not.

Every problem is an `Incompatibility` naming the rule, the field path and what changed.
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable, Sequence

import msgspec

from engine.contracts.avro_schema import AvroType, Named, parse_avro
from engine.contracts.errors import IncompatibleSchemaError
from engine.contracts.model import DataContract, FieldType

MODES = ("BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE", "NONE")


class Incompatibility(msgspec.Struct, frozen=True):
    """One broken rule: ``rule`` (Confluent's error type name), ``path`` (the field), ``message``,
    and ``version`` (the previous version it conflicts with, when known)."""

    rule: str
    path: str
    message: str
    version: int | None = None
    direction: str = ""  # "backward" (new reads old) or "forward" (old reads new)

    def __str__(self) -> str:
        against = f" (against version {self.version}, {self.direction})" if self.version is not None else ""
        where = self.path or "<root>"
        return f"{where}: {self.message} [{self.rule}]{against}"


def normalize_mode(mode: str) -> str:
    m = str(mode).upper()
    if m not in MODES:
        raise ValueError(f"unknown compatibility mode {mode!r}; known: {', '.join(MODES)}")
    return m


ReaderCheck = Callable[[Any, Any], list[Incompatibility]]


def check_modes(new: Any, previous: Sequence[Any], mode: str, reader_problems: ReaderCheck,
                versions: Sequence[int] | None = None) -> list[Incompatibility]:
    """Apply ``mode`` using ``reader_problems(reader, writer)``; ``previous`` is oldest first."""
    mode = normalize_mode(mode)
    if mode == "NONE" or not previous:
        return []
    versions = list(versions) if versions is not None else list(range(1, len(previous) + 1))
    pairs = list(zip(versions, previous))
    targets = pairs if mode.endswith("_TRANSITIVE") else pairs[-1:]
    base = mode.removesuffix("_TRANSITIVE")
    out: list[Incompatibility] = []
    for version, old in reversed(targets):
        if base in ("BACKWARD", "FULL"):
            for p in reader_problems(new, old):
                out.append(msgspec.structs.replace(p, version=version, direction="new schema reads old data"))
        if base in ("FORWARD", "FULL"):
            for p in reader_problems(old, new):
                out.append(msgspec.structs.replace(p, version=version, direction="old schema reads new data"))
    return out


def check_compatibility(new: Any, previous: Sequence[Any], mode: str, schema_type: str | None = None
                        ) -> list[Incompatibility]:
    """Problems (empty when compatible) registering ``new`` after ``previous`` (oldest first) under
    ``mode``. Schemas are `DataContract` objects, or Avro/JSON Schema documents (dicts, lists or JSON
    text) with ``schema_type`` ``"AVRO"`` (the default for documents) or ``"JSON"``."""
    kind = schema_type.upper() if schema_type else ("CONTRACT" if isinstance(new, DataContract) else "AVRO")
    if kind == "CONTRACT":
        return check_modes(new, previous, mode, contract_reader_problems)
    if kind == "AVRO":
        return check_modes(_avro(new), [_avro(p) for p in previous], mode, avro_reader_problems)
    if kind == "JSON":
        return check_modes(_json_doc(new), [_json_doc(p) for p in previous], mode, json_reader_problems)
    raise ValueError(f"schema_type must be AVRO, JSON or CONTRACT, got {schema_type!r}")


def ensure_compatible(new: Any, previous: Sequence[Any], mode: str, schema_type: str | None = None) -> None:
    """Raise `IncompatibleSchemaError` listing every broken rule, or return."""
    problems = check_compatibility(new, previous, mode, schema_type)
    if problems:
        listed = "; ".join(str(p) for p in problems)
        raise IncompatibleSchemaError(f"incompatible under {normalize_mode(mode)}: {listed}", problems)


def _avro(s: Any) -> AvroType:
    return s if isinstance(s, AvroType) else parse_avro(s)


def _json_doc(s: Any) -> Any:
    return json.loads(s) if isinstance(s, (str, bytes)) else s


# ------------------------------------------------------------------------------------------ Avro
_PROMOTIONS = {
    "int": {"int", "long", "float", "double"},
    "long": {"long", "float", "double"},
    "float": {"float", "double"},
    "string": {"string", "bytes"},
    "bytes": {"bytes", "string"},
}


def avro_reader_problems(reader: AvroType, writer: AvroType) -> list[Incompatibility]:
    """Why ``reader`` cannot read data written with ``writer`` (empty list: it can)."""
    out: list[Incompatibility] = []
    _avro_check(reader, writer, "", out, set())
    return out


def _join(path: str, part: str) -> str:
    return f"{path}.{part}" if path and not part.startswith("[") else f"{path}{part}"


def _avro_check(r: AvroType, w: AvroType, path: str, out: list, seen: set) -> None:
    key = (id(r), id(w))
    if key in seen:  # recursive types: assume the pair compatible while it is being checked
        return
    if r.kind == "union" or w.kind == "union" or isinstance(r, Named):
        seen = seen | {key}
    if w.kind == "union":
        for branch in w.branches:
            if r.kind == "union":
                if not any(_avro_ok(rb, branch, seen) for rb in r.branches):
                    out.append(Incompatibility("MISSING_UNION_BRANCH", path or "<root>",
                                               f"reader union {r.describe()} has no branch that can read writer "
                                               f"branch {branch.describe()}"))
            else:
                sub: list[Incompatibility] = []
                _avro_check(r, branch, path, sub, seen)
                if sub:
                    out.append(Incompatibility("MISSING_UNION_BRANCH", path or "<root>",
                                               f"reader type {r.describe()} cannot read writer union branch "
                                               f"{branch.describe()}: {sub[0].message}"))
        return
    if r.kind == "union":
        if not any(_avro_ok(rb, w, seen) for rb in r.branches):
            out.append(Incompatibility("MISSING_UNION_BRANCH", path or "<root>",
                                       f"reader union {r.describe()} has no branch that can read writer type "
                                       f"{w.describe()}"))
        return
    if r.kind in _PROMOTIONS or r.kind in ("null", "boolean", "double"):
        if w.kind == r.kind or r.kind in _PROMOTIONS.get(w.kind, ()):
            return
        out.append(Incompatibility("TYPE_MISMATCH", path or "<root>",
                                   f"reader type {r.describe()} cannot read writer type {w.describe()}"))
        return
    if r.kind != w.kind:
        out.append(Incompatibility("TYPE_MISMATCH", path or "<root>",
                                   f"reader type {r.describe()} cannot read writer type {w.describe()}"))
        return
    if r.kind == "array":
        _avro_check(r.items, w.items, _join(path, "[]"), out, seen)
        return
    if r.kind == "map":
        _avro_check(r.values, w.values, _join(path, "{}"), out, seen)
        return
    # named types: the unqualified names must match (or the writer's name is a reader alias)
    names_r = {r.name, r.fullname} | set(r.aliases) | {a.rsplit(".", 1)[-1] for a in r.aliases}
    if w.name not in names_r and w.fullname not in names_r:
        out.append(Incompatibility("NAME_MISMATCH", path or "<root>",
                                   f"reader {r.kind} is named {r.fullname!r} but the writer's is {w.fullname!r}"))
        return
    if r.kind == "fixed":
        if r.size != w.size:
            out.append(Incompatibility("FIXED_SIZE_MISMATCH", path or "<root>",
                                       f"reader fixed size {r.size} differs from writer size {w.size}"))
        return
    if r.kind == "enum":
        missing = [s for s in w.symbols if s not in r.symbols]
        if missing and r.default is None:
            out.append(Incompatibility("MISSING_ENUM_SYMBOLS", path or "<root>",
                                       f"the writer may send enum symbols {missing} that the reader does not know "
                                       "(and the reader enum has no default)"))
        return
    # records
    writer_fields = {f.name: f for f in w.fields}
    for rf in r.fields:
        fpath = _join(path, rf.name)
        wf = writer_fields.get(rf.name)
        if wf is None:
            wf = next((writer_fields[a] for a in rf.aliases if a in writer_fields), None)
        if wf is None:
            if not rf.has_default:
                out.append(Incompatibility("READER_FIELD_MISSING_DEFAULT_VALUE", fpath,
                                           f"the reader's field {rf.name!r} has no default and the writer does not "
                                           "write it"))
            continue
        _avro_check(rf.type, wf.type, fpath, out, seen)


def _avro_ok(r: AvroType, w: AvroType, seen: set) -> bool:
    sub: list[Incompatibility] = []
    _avro_check(r, w, "", sub, seen)
    return not sub


# ------------------------------------------------------------------------------------- contracts
def contract_reader_problems(reader: DataContract, writer: DataContract) -> list[Incompatibility]:
    """Why a consumer on ``reader`` cannot accept records produced under ``writer``."""
    from engine.contracts.export import to_avro

    # Avro record/enum names are derived from the contract name; a contract's identity is its subject,
    # so a renamed contract must not read as renamed types: compare both under one name
    same_name = dict(name="contract", namespace="")
    out = avro_reader_problems(parse_avro(to_avro(msgspec.structs.replace(reader, **same_name))),
                               parse_avro(to_avro(msgspec.structs.replace(writer, **same_name))))
    _contract_fields(reader.fields, writer.fields, "", out)
    if reader.additional_fields == "forbid":
        names = {f.name for f in reader.fields}
        for wf in writer.fields:
            if wf.name not in names:
                out.append(Incompatibility("FIELD_NOT_ALLOWED", wf.name,
                                           f"the writer sends field {wf.name!r} and the reader forbids unknown fields"))
    return out


def _contract_fields(rfields, wfields, path: str, out: list) -> None:
    by_name = {f.name: f for f in wfields}
    for rf in rfields:
        wf = by_name.get(rf.name)
        fpath = _join(path, rf.name)
        if wf is None:
            continue  # covered by the Avro rules (default needed)
        # JSON on the wire may omit a field the writer has a default for; Avro fills defaults in, so
        # this is the one required/optional change the Avro rules above do not already report
        if rf.required and not wf.required and not _already(out, fpath):
            out.append(Incompatibility("REQUIRED_FIELD_ADDED", fpath,
                                       f"the reader requires {rf.name!r} but the writer may omit it"))
        _contract_types(rf.type, wf.type, fpath, out)


def _contract_types(r: FieldType, w: FieldType, path: str, out: list) -> None:
    if r.type == "object" and w.type == "object":
        _contract_fields(r.fields, w.fields, path, out)
        return
    if r.type == "array" and w.type == "array":
        _contract_types(r.items, w.items, _join(path, "[]"), out)
    if r.type == "map" and w.type == "map":
        _contract_types(r.values, w.values, _join(path, "{}"), out)
    for message in _narrowed(r, w):
        out.append(Incompatibility("CONSTRAINT_NARROWED", path, message))


def _already(out: list, path: str) -> bool:
    return any(p.path == path for p in out)


def _narrowed(r: FieldType, w: FieldType) -> list[str]:
    """Ways the reader's constraints reject values the writer's constraints allow."""
    rc, wc = r.constraints, w.constraints
    if rc is None or rc.is_empty():
        return []
    problems = []
    get_w = (lambda k: getattr(wc, k)) if wc is not None else (lambda k: None)
    r_lo = _lower(rc.ge, rc.gt)
    w_lo = _lower(get_w("ge"), get_w("gt"))
    if r_lo is not None and (w_lo is None or _tighter_lower(r_lo, w_lo)):
        problems.append(f"lower bound {_fmt_bound(r_lo, 'lower')} rejects values the writer allows "
                        f"({_fmt_bound(w_lo, 'lower') if w_lo else 'unbounded'})")
    r_hi = _upper(rc.le, rc.lt)
    w_hi = _upper(get_w("le"), get_w("lt"))
    if r_hi is not None and (w_hi is None or _tighter_upper(r_hi, w_hi)):
        problems.append(f"upper bound {_fmt_bound(r_hi, 'upper')} rejects values the writer allows "
                        f"({_fmt_bound(w_hi, 'upper') if w_hi else 'unbounded'})")
    if rc.min_length is not None and (get_w("min_length") is None or get_w("min_length") < rc.min_length):
        problems.append(f"min_length={rc.min_length} rejects shorter values the writer allows "
                        f"(writer min_length={get_w('min_length')})")
    if rc.max_length is not None and (get_w("max_length") is None or get_w("max_length") > rc.max_length):
        problems.append(f"max_length={rc.max_length} rejects longer values the writer allows "
                        f"(writer max_length={get_w('max_length')})")
    if rc.pattern is not None and rc.pattern != get_w("pattern"):
        problems.append(f"pattern {rc.pattern!r} was added or changed (writer pattern: {get_w('pattern')!r})")
    if rc.multiple_of is not None:
        wm = get_w("multiple_of")
        if wm is None or not _divides(rc.multiple_of, wm):
            problems.append(f"multiple_of={rc.multiple_of} rejects values the writer allows (writer multiple_of={wm})")
    if rc.allowed_values is not None:
        wv = get_w("allowed_values")
        missing = sorted(set(wv) - set(rc.allowed_values), key=repr) if wv is not None else None
        if wv is None or missing:
            problems.append(f"allowed_values no longer include {missing if missing else 'every writer value'}")
    return problems


def _lower(ge, gt):
    return (ge, True) if ge is not None else (gt, False) if gt is not None else None


def _upper(le, lt):
    return (le, True) if le is not None else (lt, False) if lt is not None else None


def _tighter_lower(r, w) -> bool:
    (rv, r_incl), (wv, w_incl) = r, w
    return rv > wv or (rv == wv and not r_incl and w_incl)


def _tighter_upper(r, w) -> bool:
    (rv, r_incl), (wv, w_incl) = r, w
    return rv < wv or (rv == wv and not r_incl and w_incl)


def _fmt_bound(b, side: str) -> str:
    v, incl = b
    return f"{'ge' if incl else 'gt'}={v}" if side == "lower" else f"{'le' if incl else 'lt'}={v}"


def _divides(r: float, w: float) -> bool:
    q = w / r
    return math.isclose(q, round(q)) and round(q) != 0


# ------------------------------------------------------------------------------------ JSON Schema
def json_reader_problems(reader: Any, writer: Any) -> list[Incompatibility]:
    """Why documents valid under JSON Schema ``writer`` may be invalid under ``reader``."""
    out: list[Incompatibility] = []
    _JsonCheck(reader, writer).check(reader, writer, "#", out)
    return out


_NUMERIC = (("minimum", "MINIMUM", "lower"), ("maximum", "MAXIMUM", "upper"),
            ("exclusiveMinimum", "EXCLUSIVE_MINIMUM", "lower"), ("exclusiveMaximum", "EXCLUSIVE_MAXIMUM", "upper"))
_COUNTS = (("minLength", "MIN_LENGTH", "lower"), ("maxLength", "MAX_LENGTH", "upper"),
           ("minItems", "MIN_ITEMS", "lower"), ("maxItems", "MAX_ITEMS", "upper"),
           ("minProperties", "MIN_PROPERTIES", "lower"), ("maxProperties", "MAX_PROPERTIES", "upper"))
_UNANALYSED = ("allOf", "not", "if", "then", "else", "dependentRequired", "dependentSchemas", "patternProperties",
               "propertyNames", "contains", "minContains", "maxContains", "prefixItems", "unevaluatedProperties",
               "unevaluatedItems", "format", "contentEncoding")


def _rule_name(keyword: str) -> str:
    out = "".join("_" + ch if ch.isupper() else ch.upper() for ch in keyword)
    return out.lstrip("_")


_ALL_TYPES = frozenset({"null", "boolean", "object", "array", "number", "string", "integer"})


class _JsonCheck:
    def __init__(self, reader_root: Any, writer_root: Any):
        self.roots = {"r": reader_root, "w": writer_root}
        self.seen: set = set()

    def resolve(self, s: Any, side: str) -> Any:
        depth = 0
        while isinstance(s, dict) and "$ref" in s and depth < 32:
            ref = s["$ref"]
            if not isinstance(ref, str) or not ref.startswith("#"):
                return True  # external references cannot be checked here; treat as accept-anything
            target = self.roots[side]
            for part in [p for p in ref[1:].split("/") if p]:
                part = part.replace("~1", "/").replace("~0", "~")
                if not isinstance(target, dict) or part not in target:
                    return True
                target = target[part]
            s = target
            depth += 1
        return s

    def check(self, r: Any, w: Any, path: str, out: list) -> None:
        r = self.resolve(r, "r")
        w = self.resolve(w, "w")
        key = (id(r), id(w))
        if key in self.seen:
            return
        self.seen.add(key)
        if _accepts_all(r) or w is False:
            return
        if r is False:
            out.append(Incompatibility("SCHEMA_REMOVED", path, "the reader schema is false (accepts nothing)"))
            return
        if _accepts_all(w):
            out.append(Incompatibility("TYPE_NARROWED", path, "the writer accepts anything and the reader does not"))
            return
        # combined schemas: every writer alternative must be accepted by some reader alternative
        for comb in ("anyOf", "oneOf"):
            if comb in w or comb in r:
                self._combined(r, w, comb, path, out)
                return
        rt, wt = _types(r), _types(w)
        if rt is not None:
            if wt is None:
                out.append(Incompatibility("TYPE_NARROWED", path, f"the reader only accepts {sorted(rt)}, the writer "
                                           "accepts any type"))
                return
            extra = {t for t in wt if t not in rt and not (t == "integer" and "number" in rt)}
            if extra:
                within = all(t in wt or (t == "integer" and "number" in wt) for t in rt)
                rule = "TYPE_NARROWED" if within else "TYPE_CHANGED"
                out.append(Incompatibility(rule, path, f"the writer allows type(s) {sorted(extra)} that the reader "
                                           f"does not (reader: {sorted(rt)}, writer: {sorted(wt)})"))
                return
        self._enum(r, w, path, out)
        for key_, name, side in _NUMERIC + _COUNTS:
            self._bound(r, w, key_, name, side, path, out)
        if "multipleOf" in r:
            wm = w.get("multipleOf")
            if wm is None:
                out.append(Incompatibility("MULTIPLE_OF_ADDED", path, f"multipleOf={r['multipleOf']} was added"))
            elif not _divides(r["multipleOf"], wm):
                out.append(Incompatibility("MULTIPLE_OF_CHANGED", path,
                                           f"multipleOf changed from {wm} to {r['multipleOf']}"))
        if "pattern" in r and r.get("pattern") != w.get("pattern"):
            rule = "PATTERN_ADDED" if "pattern" not in w else "PATTERN_CHANGED"
            out.append(Incompatibility(rule, path, f"pattern {r['pattern']!r} rejects strings the writer allows "
                                       f"(writer pattern: {w.get('pattern')!r})"))
        if r.get("uniqueItems") is True and w.get("uniqueItems") is not True:
            out.append(Incompatibility("UNIQUE_ITEMS_ADDED", path, "uniqueItems was added"))
        if "items" in r or "items" in w:
            self.check(r.get("items", True), w.get("items", True), f"{path}/items", out)
        for key in _UNANALYSED:
            # keywords whose effect these rules do not model: any change to them in the reader may reject
            # writer data, so a difference is reported rather than assumed compatible
            if key in r and r[key] != w.get(key):
                out.append(Incompatibility(f"{_rule_name(key)}_CHANGED", f"{path}/{key}",
                                           f"{key!r} differs from the writer's and cannot be proven compatible"))
        if _is_object_schema(r) or _is_object_schema(w):
            self._object(r, w, path, out)

    def _combined(self, r: Any, w: Any, comb: str, path: str, out: list) -> None:
        w_alts = w.get("anyOf") or w.get("oneOf") or [w]
        r_alts = r.get("anyOf") or r.get("oneOf") or [r]
        for i, wa in enumerate(w_alts):
            if not any(self._ok(ra, wa) for ra in r_alts):
                out.append(Incompatibility("SUM_TYPE_NARROWED", f"{path}/{comb}/{i}",
                                           f"writer alternative {json.dumps(wa)[:80]} is not accepted by any reader "
                                           "alternative"))

    def _ok(self, r: Any, w: Any) -> bool:
        sub: list = []
        saved = set(self.seen)
        self.check(r, w, "", sub)
        self.seen = saved
        return not sub

    def _enum(self, r: dict, w: dict, path: str, out: list) -> None:
        r_enum = r.get("enum") if "enum" in r else ([r["const"]] if "const" in r else None)
        w_enum = w.get("enum") if "enum" in w else ([w["const"]] if "const" in w else None)
        if r_enum is None:
            return
        if w_enum is None:
            out.append(Incompatibility("ENUM_ARRAY_CHANGED", path, f"enum {r_enum} was added; the writer allowed any value"))
            return
        missing = [v for v in w_enum if v not in r_enum]
        if missing:
            out.append(Incompatibility("ENUM_ARRAY_NARROWED", path, f"enum no longer contains {missing}"))

    def _bound(self, r: dict, w: dict, key: str, name: str, side: str, path: str, out: list) -> None:
        if key not in r:
            return
        rv = r[key]
        wv = w.get(key)
        # an inclusive writer bound tighter than the reader's exclusive one is still covered
        if wv is None:
            alt = {"minimum": "exclusiveMinimum", "exclusiveMinimum": "minimum", "maximum": "exclusiveMaximum",
                   "exclusiveMaximum": "maximum"}.get(key)
            if alt and alt in w and isinstance(w[alt], (int, float)):
                av = w[alt]
                covered = (av > rv if side == "lower" else av < rv) if key.startswith("exclusive") else \
                    (av >= rv if side == "lower" else av <= rv)
                if covered:
                    return
            out.append(Incompatibility(f"{name}_ADDED", path, f"{key}={rv} was added"))
            return
        narrowed = rv > wv if side == "lower" else rv < wv
        if narrowed:
            verb = "INCREASED" if side == "lower" else "DECREASED"
            out.append(Incompatibility(f"{name}_{verb}", path, f"{key} changed from {wv} to {rv}"))

    def _object(self, r: dict, w: dict, path: str, out: list) -> None:
        r_props = r.get("properties") or {}
        w_props = w.get("properties") or {}
        r_req = set(r.get("required") or [])
        w_req = set(w.get("required") or [])
        r_add = r.get("additionalProperties", True)
        w_add = w.get("additionalProperties", True)
        for name in sorted(r_req - w_req):
            ppath = f"{path}/properties/{name}"
            prop = self.resolve(r_props.get(name, True), "r")
            has_default = isinstance(prop, dict) and "default" in prop
            if name not in w_props and _accepts_nothing(w_add):
                if not has_default:  # Confluent accepts a new required property with a default here
                    out.append(Incompatibility("REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", ppath,
                                               f"required property {name!r} was added and has no default"))
            else:
                out.append(Incompatibility("REQUIRED_ATTRIBUTE_ADDED", ppath,
                                           f"property {name!r} became required; the writer may omit it"))
        for name, rp in r_props.items():
            ppath = f"{path}/properties/{name}"
            if name in w_props:
                self.check(rp, w_props[name], ppath, out)
                continue
            # added property: data written under the old schema may carry `name` with any value it allowed
            if _accepts_nothing(w_add):
                continue  # OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL (or the required case above)
            if _accepts_all(w_add):
                if not _accepts_all(self.resolve(rp, "r")):
                    out.append(Incompatibility("PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", ppath,
                                               f"property {name!r} was added to an open content model; old data may "
                                               "carry it with any value"))
            elif not self._ok(rp, w_add):
                out.append(Incompatibility("PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", ppath,
                                           f"property {name!r} was added and does not accept every value the old "
                                           "additionalProperties schema allowed"))
        for name, wp in w_props.items():
            if name in r_props:
                continue
            ppath = f"{path}/properties/{name}"
            if _accepts_all(r_add):
                continue  # PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL
            if self.resolve(wp, "w") is False:
                continue  # PROPERTY_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL
            if _accepts_nothing(r_add):
                out.append(Incompatibility("PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", ppath,
                                           f"property {name!r} was removed from a closed content model; old data "
                                           "carrying it is rejected"))
            elif not self._ok(r_add, wp):
                out.append(Incompatibility("PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", ppath,
                                           f"property {name!r} was removed and additionalProperties does not accept "
                                           "its values"))
        if not _accepts_all(r_add) and not _accepts_nothing(w_add):
            if _accepts_nothing(r_add):
                out.append(Incompatibility("ADDITIONAL_PROPERTIES_REMOVED", f"{path}/additionalProperties",
                                           "additionalProperties became false; old data with extra properties is "
                                           "rejected"))
            elif _accepts_all(w_add) or not self._ok(r_add, w_add):
                out.append(Incompatibility("ADDITIONAL_PROPERTIES_NARROWED", f"{path}/additionalProperties",
                                           "additionalProperties accepts fewer values than before"))


def _accepts_all(s: Any) -> bool:
    if s is True:
        return True
    if isinstance(s, dict):
        meaningful = {k for k in s if k not in ("$schema", "$id", "title", "description", "default", "examples",
                                                 "$comment", "$defs", "definitions")}
        return not meaningful
    return False


def _accepts_nothing(s: Any) -> bool:
    return s is False or (isinstance(s, dict) and s.get("not") == {})


def _types(s: dict) -> set[str] | None:
    t = s.get("type")
    if t is None:
        return None
    types = {t} if isinstance(t, str) else set(t)
    return types if types != _ALL_TYPES else None


def _is_object_schema(s: Any) -> bool:
    if not isinstance(s, dict):
        return False
    t = _types(s)
    return (t is not None and "object" in t) or any(k in s for k in ("properties", "required", "additionalProperties"))
