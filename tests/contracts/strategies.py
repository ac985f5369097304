"""Hypothesis strategies: random consistent contracts, records valid for them, and targeted mutations."""

from __future__ import annotations

import string

from hypothesis import strategies as st

from engine.contracts import Constraints, DataContract, Field, FieldType

names = st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=8).map(lambda s: "f_" + s)
symbols = st.lists(st.text(alphabet=string.ascii_uppercase, min_size=1, max_size=5), min_size=1, max_size=5, unique=True)


# anchored (checked column-wise by the DFA kernel in batches) and unanchored ones (checked by re)
PATTERNS = ["^[a-z]{1,5}$", "^x[0-9]*$", "^(ab|cd)+$", "[0-9]", "^o-\\d+$"]


@st.composite
def scalar_types(draw):
    kind = draw(st.sampled_from(["string", "integer", "float", "boolean", "enum", "timestamp"]))
    cons = None
    syms = None
    if kind == "string" and draw(st.booleans()):
        if draw(st.booleans()):
            cons = Constraints(pattern=draw(st.sampled_from(PATTERNS)))
        else:
            lo = draw(st.integers(0, 5))
            cons = Constraints(min_length=lo, max_length=lo + draw(st.integers(0, 10)))
    elif kind == "integer" and draw(st.booleans()):
        lo = draw(st.integers(-1000, 1000))
        cons = Constraints(ge=lo, le=lo + draw(st.integers(0, 1000)))
    elif kind == "float" and draw(st.booleans()):
        lo = draw(st.floats(-1e6, 1e6, allow_nan=False))
        cons = Constraints(ge=lo, lt=lo + draw(st.floats(1.0, 1e6)))
    elif kind == "enum":
        syms = tuple(draw(symbols))
    return FieldType(type=kind, nullable=draw(st.booleans()), constraints=cons, symbols=syms)


@st.composite
def field_types(draw, depth=0):
    choice = draw(st.integers(0, 9))
    if depth < 2 and choice == 0:
        return FieldType(type="array", items=draw(scalar_types()), nullable=draw(st.booleans()))
    if depth < 2 and choice == 1:
        return FieldType(type="map", values=draw(scalar_types()))
    if depth < 2 and choice == 2:
        return FieldType(type="object", fields=draw(field_lists(depth + 1)))
    return draw(scalar_types())


@st.composite
def field_lists(draw, depth=0):
    fnames = draw(st.lists(names, min_size=1, max_size=6 if depth == 0 else 3, unique=True))
    out = []
    for n in fnames:
        t = draw(field_types(depth))
        required = draw(st.booleans())
        if not required and draw(st.integers(0, 3)) == 0:
            default = draw(value_strategy(t))
            out.append(Field(name=n, type=t, required=False, default=default))
        else:
            out.append(Field(name=n, type=t, required=required))
    return tuple(out)


@st.composite
def contracts(draw):
    return DataContract.build(
        name=draw(st.sampled_from(["orders", "clicks", "payments-v2"])),
        version=f"{draw(st.integers(0, 9))}.{draw(st.integers(0, 20))}.{draw(st.integers(0, 99))}",
        owner=draw(st.text(max_size=10)),
        description=draw(st.text(max_size=20)),
        status=draw(st.sampled_from(["draft", "active", "deprecated"])),
        tags=tuple(draw(st.lists(st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=5), max_size=3))),
        fields=draw(field_lists()),
    )


def value_strategy(t: FieldType):
    c = t.constraints
    if t.type == "string" and c is not None and c.pattern is not None:
        base = st.from_regex(c.pattern, fullmatch=True).filter(lambda v: "\n" not in v)
    elif t.type == "string":
        lo = c.min_length if c and c.min_length is not None else 0
        hi = c.max_length if c and c.max_length is not None else 10
        base = st.text(alphabet=string.ascii_letters, min_size=lo, max_size=hi)
    elif t.type == "integer":
        base = st.integers(c.ge if c and c.ge is not None else -10**9, c.le if c and c.le is not None else 10**9)
    elif t.type == "float":
        lo = c.ge if c and c.ge is not None else -1e9
        hi = c.lt if c and c.lt is not None else 1e9
        base = st.floats(lo, hi, exclude_max=True, allow_nan=False, allow_infinity=False)
    elif t.type == "boolean":
        base = st.booleans()
    elif t.type == "enum":
        base = st.sampled_from(t.symbols)
    elif t.type == "timestamp":
        base = st.integers(0, 2**41)
    elif t.type == "array":
        base = st.lists(value_strategy(t.items), max_size=3)
    elif t.type == "map":
        base = st.dictionaries(st.text(max_size=4), value_strategy(t.values), max_size=3)
    elif t.type == "object":
        base = record_strategy(t.fields)
    else:  # pragma: no cover - the generator above emits no other types
        raise AssertionError(t.type)
    return st.one_of(st.none(), base) if t.nullable else base


@st.composite
def record_strategy(draw, fields):
    rec = {}
    for f in fields:
        if not f.required and draw(st.booleans()):
            continue
        rec[f.name] = draw(value_strategy(f.type))
    return rec


def invalid_value(t: FieldType):
    """A value that violates ``t`` (never None, which a nullable type would accept)."""
    c = t.constraints
    if t.type == "integer" and c is not None and c.ge is not None:
        return c.ge - 1
    if t.type == "string" and c is not None and c.max_length is not None:
        return "x" * (c.max_length + 1)
    if t.type == "string" and c is not None and c.pattern is not None:
        return "!!"
    if t.type == "enum":
        return "not_a_symbol"
    if t.type in ("string", "enum"):
        return 12345
    if t.type in ("array", "map", "object"):
        return "not a container"
    return "wrong type"  # integer, float, boolean, timestamp


def with_defaults(record, fields):
    """``record`` as validation returns it: absent fields that have a default take it (recursively)."""
    import copy

    if not isinstance(record, dict):
        return record
    out = dict(record)
    for f in fields:
        if f.name not in out:
            if not f.has_default:
                continue
            out[f.name] = copy.deepcopy(f.default)  # defaults of nested objects fill in below, as in decoding
        v, t = out[f.name], f.type
        if t.type == "object":
            out[f.name] = with_defaults(v, t.fields)
        elif t.type == "array" and t.items.type == "object" and isinstance(v, list):
            out[f.name] = [with_defaults(x, t.items.fields) for x in v]
        elif t.type == "map" and t.values.type == "object" and isinstance(v, dict):
            out[f.name] = {k: with_defaults(x, t.values.fields) for k, x in v.items()}
    return out
