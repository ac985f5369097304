"""`scan_flat_json`: the compiled scanner against its pure-Python twin, and argument checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import _core, _reference
from engine._kernel_types import FlatField
from engine.contracts.patterns import compile_dfa
from tests.contracts.test_columnar import record_bytes, valid_record_bytes

IMPLS = [_core, _reference]
IDS = ["compiled", "twin"]
_DFA = compile_dfa("^[a-z]+-[0-9]+$")
FIELDS = [
    FlatField("sid", "string", min_length=3, max_length=12, dfa=(_DFA.table, _DFA.accepting, _DFA.start)),
    FlatField("n", "int", ge=-1000, lt=10**12, multiple_of=3),
    FlatField("big", "int"),
    FlatField("x", "float", gt=-1e6, le=1e300),
    FlatField("f", "float"),
    FlatField("cur", "enum", symbols=("EUR", "USD", "Z\u00fcr")),
    FlatField("state", "enum", symbols=("NEW", "PAID", "SHIPPED")),
    FlatField("ok", "bool"),
    FlatField("ts", "timestamp"),
    FlatField("note", "string"),
    FlatField("qty", "int"),
]
DTYPES = {"int": np.int64, "timestamp": np.int64, "float": np.float64, "bool": np.bool_, "string": object,
          "enum": np.int32}


def scan(impl, records, fields=FIELDS, allow_unknown=False):
    columns = [np.empty(len(records), dtype=DTYPES[f.kind]) for f in fields]
    status = np.full(len(records), 7, dtype=np.uint8)
    accepted = impl.scan_flat_json(records, fields, columns, status, allow_unknown)
    assert accepted == int(np.count_nonzero(status == 0))
    assert set(status.tolist()) <= {0, 1}
    return status, [c[:accepted].tolist() for c in columns]  # the k-th accepted record fills row k


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(record_bytes(), valid_record_bytes(), st.binary(max_size=20)), max_size=12), st.booleans())
def test_compiled_matches_twin(records, allow_unknown):
    status, values = scan(_core, records, allow_unknown=allow_unknown)
    status_t, values_t = scan(_reference, records, allow_unknown=allow_unknown)
    assert status.tolist() == status_t.tolist()
    for got, want in zip(values, values_t):
        assert [repr(v) for v in got] == [repr(v) for v in want]  # repr: -0.0 differs from 0.0


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_reads_values_and_refuses_the_unusual(impl):
    fields = [FlatField("a", "int", ge=0), FlatField("b", "float"), FlatField("c", "string", max_length=3),
              FlatField("d", "enum", symbols=("X", "Y")), FlatField("e", "bool")]
    records = [
        b'{"a": 1, "b": 2.5, "c": "hi", "d": "Y", "e": true}',
        b' {"e":false,"d":"X","c":"","b":-0,"a":0} ',
        b'{"a": 1, "b": 2.5, "c": "hi", "d": "Y"}',  # missing e
        b'{"a": 1, "b": 2.5, "c": "hi", "d": "Y", "e": true, "z": 1}',  # unknown z
        b'{"a": -1, "b": 2.5, "c": "hi", "d": "Y", "e": true}',  # a < 0
        b'{"a": 1, "b": 2.5, "c": "h\\u0069", "d": "Y", "e": true}',  # escape
        b'{"a": 1, "b": 2.5, "c": "long", "d": "Y", "e": true}',  # too long
        b'{"a": 1, "b": 1e999, "c": "hi", "d": "Y", "e": true}',  # overflows
        b'{"a": 1, "b": 2.5, "c": "hi", "d": "Z", "e": true}',  # not a symbol
        b'{"a": 1, "b": 2.5, "c": "hi", "d": "Y", "e": true}x',  # trailing garbage
        "{}",  # not bytes
    ]
    status, values = scan(impl, records, fields)
    assert status.tolist() == [0, 0] + [1] * 9
    assert values == [[1, 0], [2.5, 0.0], ["hi", ""], [1, 0], [True, False]]
    # unknown keys with plain scalar values are skipped when allowed; anything nested is not
    extra = [records[3], b'{"z": null, "a": 1, "b": 2.5, "y": "s", "c": "hi", "d": "Y", "e": true, "x": -1e5}',
             b'{"a": 1, "b": 2.5, "c": "hi", "d": "Y", "e": true, "z": [1]}',
             b'{"a": 1, "b": 2.5, "c": "hi", "d": "Y", "e": true, "z": "\\n"}']
    status, values = scan(impl, extra, fields, allow_unknown=True)
    assert status.tolist() == [0, 0, 1, 1]
    assert values[0] == [1, 1]


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
@pytest.mark.parametrize("change, error, message", [
    (lambda r, f, c, s: ((r,), f, c, s), TypeError, "records must be a list"),
    (lambda r, f, c, s: (r, [], [], s), ValueError, "at least one field"),
    (lambda r, f, c, s: (r, f, c[:1], s), ValueError, "one array per field"),
    (lambda r, f, c, s: (r, [("a", "int")] * 2, c, s), TypeError, "FlatField"),
    (lambda r, f, c, s: (r, [FlatField("a", "int")] * 2, c, s), ValueError, "given twice"),
    (lambda r, f, c, s: (r, [FlatField("a", "decimal"), f[1]], c, s), ValueError, "kind must be one of"),
    (lambda r, f, c, s: (r, f, [c[0].astype(np.int32), c[1]], s), TypeError, "column of field 'a' must be a 1-D int64"),
    (lambda r, f, c, s: (r, f, [c[0][:1], c[1]], s), TypeError, "of 2 rows"),
    (lambda r, f, c, s: (r, [FlatField("a", "int", ge=0.5), f[1]], c, s), TypeError,
     "ge of an int field must be an int"),
    (lambda r, f, c, s: (r, [FlatField("a", "int", min_length=1), f[1]], c, s), ValueError, "string fields only"),
    (lambda r, f, c, s: (r, [FlatField("a", "int", multiple_of=0), f[1]], c, s), ValueError, "multiple_of"),
    (lambda r, f, c, s: (r, [f[0], FlatField("b", "string", ge=1)], c, s), ValueError, "bounds apply"),
    (lambda r, f, c, s: (r, [f[0], FlatField("b", "string", dfa=(np.zeros(3, np.int64), [True], 0))], c, s),
     ValueError, "256 entries per state"),
    (lambda r, f, c, s: (r, [f[0], FlatField("b", "enum", symbols=())], [c[0], np.empty(2, np.int32)], s),
     ValueError, "non-empty tuple"),
    (lambda r, f, c, s: (r, f, c, s.astype(np.int64)), TypeError, "status must be a 1-D uint8"),
    (lambda r, f, c, s: (r, f, c, s, "yes"), TypeError, "allow_unknown must be a bool"),
])
def test_bad_arguments_raise_clear_errors(impl, change, error, message):
    records = [b'{"a": 1, "b": "x"}', b"{}"]
    fields = [FlatField("a", "int"), FlatField("b", "string")]
    columns = [np.empty(2, dtype=np.int64), np.empty(2, dtype=object)]
    status = np.empty(2, dtype=np.uint8)
    with pytest.raises(error, match=message):
        impl.scan_flat_json(*change(records, fields, columns, status))
