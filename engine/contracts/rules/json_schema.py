"""Compatibility rules for JSON Schema, following Confluent's open/closed content-model rules.

Every document the writer schema accepts must be accepted by the reader schema. Adding a property to an
open content model (``PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL``), removing one from a closed content model
(``PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL``), closing or narrowing ``additionalProperties``, and
narrowing types, enums, bounds, lengths and patterns are incompatible; the reverse changes are not.
Keywords these rules do not model (``allOf``, ``not``, ``if``/``then``/``else``, ``format``, ...) are
reported when the reader changes them, never assumed compatible.
"""

from __future__ import annotations

import json
from typing import Any

from engine.contracts.rules import Incompatibility, divides

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
                return _Unresolved(str(ref))  # an external schema: not available here
            target = self.roots[side]
            for part in [p for p in ref[1:].split("/") if p]:
                part = part.replace("~1", "/").replace("~0", "~")
                if not isinstance(target, dict) or part not in target:
                    return _Unresolved(ref)
                target = target[part]
            s = target
            depth += 1
        return s

    def check(self, r: Any, w: Any, path: str, out: list) -> None:
        r = self.resolve(r, "r")
        w = self.resolve(w, "w")
        if isinstance(r, _Unresolved):
            # an unresolvable reader reference is compatible only with the very same reference
            if not (isinstance(w, _Unresolved) and w.ref == r.ref):
                out.append(Incompatibility("REFERENCE_UNRESOLVED", path, f"the reader refers to {r.ref!r}, which "
                                           "cannot be resolved here, so compatibility cannot be shown"))
            return
        if isinstance(w, _Unresolved):
            w = True  # the writer may accept anything the unknown schema allows
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
            elif not divides(r["multipleOf"], wm):
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


class _Unresolved:
    """A ``$ref`` these rules cannot follow (another document, or a missing local target)."""

    def __init__(self, ref: str):
        self.ref = ref


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
