"""Compatibility rules for data contracts: Avro resolution on the contract's Avro form, plus constraints.

Avro cannot carry value constraints, so on top of the Avro rules the reader must accept every value the
writer's constraints allow (a tightened bound, a new or changed pattern, a removed allowed value is
``CONSTRAINT_NARROWED``); a field the reader requires must not be one the writer may omit
(``REQUIRED_FIELD_ADDED``); a reader that forbids unknown fields cannot take writer fields it does not
name (``FIELD_NOT_ALLOWED``).
"""

from __future__ import annotations

import msgspec

from engine.contracts.avro_schema import parse_avro
from engine.contracts.model import DataContract, FieldType
from engine.contracts.rules import Incompatibility, divides, join_path
from engine.contracts.rules.avro import avro_reader_problems

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
        fpath = join_path(path, rf.name)
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
        _contract_types(r.items, w.items, join_path(path, "[]"), out)
    if r.type == "map" and w.type == "map":
        _contract_types(r.values, w.values, join_path(path, "{}"), out)
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
        if wm is None or not divides(rc.multiple_of, wm):
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
