"""Avro schema resolution as a compatibility rule set (what Confluent applies to Avro subjects).

A reader field missing from the writer needs a default (``READER_FIELD_MISSING_DEFAULT_VALUE``); writer
fields the reader lacks are skipped; the writer's type must be the reader's or promotable (int -> long ->
float -> double, string <-> bytes; ``TYPE_MISMATCH`` otherwise); enum symbols the writer may send must
exist in the reader unless the reader enum has a default (``MISSING_ENUM_SYMBOLS``); every writer union
branch must be readable (``MISSING_UNION_BRANCH``); record/enum/fixed names must match or be aliased
(``NAME_MISMATCH``); fixed sizes must match (``FIXED_SIZE_MISMATCH``). Records, arrays, maps and
unions are checked recursively; recursive types terminate.
"""

from __future__ import annotations

from engine.contracts.avro_schema import AvroType, Named
from engine.contracts.rules import Incompatibility, join_path

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
        _avro_check(r.items, w.items, join_path(path, "[]"), out, seen)
        return
    if r.kind == "map":
        _avro_check(r.values, w.values, join_path(path, "{}"), out, seen)
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
        fpath = join_path(path, rf.name)
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
