"""`json_object_rows` and `kafka_record_batches`: the compiled kernels against msgspec, aiokafka's record
batch builder and their pure-Python twins, and argument checks."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest
from aiokafka.record.default_records import DefaultRecordBatchBuilder, DefaultRecordBatch
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import _core, _reference

IMPLS = [_core, _reference]
IDS = ["compiled", "twin"]
ENCODE = msgspec.json.Encoder().encode


def rows_of(buffer: bytes, offsets: np.ndarray) -> list[bytes]:
    return [buffer[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]


def expected_rows(names: list[str], columns: list[np.ndarray]) -> list[bytes]:
    lists = [column.tolist() for column in columns]
    return [ENCODE(dict(zip(names, row))) for row in zip(*lists)] if lists else []


def encode_rows(impl, names, columns):
    return impl.json_object_rows([ENCODE(name) for name in names], columns)


# ---- json_object_rows ----------------------------------------------------------------------------------

EDGE_FLOATS = [0.0, -0.0, 1.0, -1.5, 0.1, 1e-4, 1e-5, 1.5e-5, 9.99e-6, 1e-6, 123e-9, 1e15, 1e16, 1.2e16,
               9999999999999998.0, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, math.nan, math.inf,
               -math.inf, 12345.678, -2.143196414516384e-05]
EDGE_INTS = [0, -1, 9, 10, 99, 100, -100, 10**8 - 1, 10**8, 10**16, -(10**17) + 1, 2**63 - 1, -(2**63)]


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_fixed_width_columns_encode_like_msgspec(impl):
    ints = np.array(EDGE_INTS, dtype=np.int64)
    floats = np.resize(np.array(EDGE_FLOATS), len(ints))
    flags = np.arange(len(ints)) % 2 == 0
    names = ["key", "mean", "ok"]
    buffer, offsets = encode_rows(impl, names, [ints, floats, flags])
    assert offsets.dtype == np.int64 and offsets[0] == 0 and offsets[-1] == len(buffer)
    assert rows_of(buffer, offsets) == expected_rows(names, [ints, floats, flags])


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_every_float_layout_matches_msgspec(impl):
    seed = 20261126
    print("seed", seed)
    rng = np.random.default_rng(seed)
    floats = np.concatenate([
        rng.integers(0, 2**64, 20_000, dtype=np.uint64).view(np.float64),  # any bit pattern
        rng.random(20_000) * 10.0 ** rng.integers(-30, 30, 20_000),
        10.0 ** np.arange(-320, 309, dtype=np.float64),
        np.array(EDGE_FLOATS),
    ])
    buffer, offsets = encode_rows(impl, ["x"], [floats])
    assert rows_of(buffer, offsets) == expected_rows(["x"], [floats])


object_values = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(), st.text(max_size=6),
    st.sampled_from(["", '"', "\\", "\n\t\r\b\f", "\x00\x1f\x7f", "\u00e9\u2028\U0001f600", "a\"b\\c"]),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(object_values, st.integers(-(2**63), 2**63 - 1), object_values), max_size=12))
def test_object_columns_encode_like_msgspec_in_both_implementations(rows):
    a = np.empty(len(rows), dtype=object)
    a[:] = [r[0] for r in rows]
    c = np.empty(len(rows), dtype=object)
    c[:] = [r[2] for r in rows]
    columns = [a, np.array([r[1] for r in rows], dtype=np.int64), c]
    names = ["a", "b c", "\u00e9\"x"]
    expected = expected_rows(names, columns)
    for impl in IMPLS:
        buffer, offsets = encode_rows(impl, names, columns)
        assert len(offsets) == len(rows) + 1
        assert rows_of(buffer, offsets) == expected


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
@pytest.mark.parametrize("odd", [2**63, -(2**63) - 1, 10**30, 1.5j, (1, 2), b"raw", np.int64(3), object()],
                         ids=repr)
def test_values_the_kernel_does_not_encode_return_none(impl, odd):
    column = np.empty(3, dtype=object)
    column[:] = ["x", odd, "y"]
    assert encode_rows(impl, ["n", "v"], [np.arange(3, dtype=np.int64), column]) is None


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_lone_surrogates_raise_like_msgspec(impl):
    column = np.array(["ok", "\ud800"], dtype=object)
    with pytest.raises(UnicodeEncodeError):
        msgspec.json.encode("\ud800")
    with pytest.raises(UnicodeEncodeError):
        encode_rows(impl, ["v"], [column])


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_no_rows_and_no_columns(impl):
    buffer, offsets = encode_rows(impl, ["a"], [np.empty(0, dtype=np.int64)])
    assert buffer == b"" and offsets.tolist() == [0]
    buffer, offsets = impl.json_object_rows([], [])
    assert buffer == b"" and offsets.tolist() == [0]


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_long_strings_grow_the_buffer(impl):
    column = np.array(["\n" * 10_000, "x" * 100_000, ""], dtype=object)
    buffer, offsets = encode_rows(impl, ["s", "n"], [column, np.arange(3, dtype=np.int64)])
    assert rows_of(buffer, offsets) == expected_rows(["s", "n"], [column, np.arange(3, dtype=np.int64)])


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_json_rows_argument_checks(impl):
    ints = np.arange(3, dtype=np.int64)
    with pytest.raises(ValueError, match="one key per column"):
        impl.json_object_rows([b'"a"'], [ints, ints])
    with pytest.raises(TypeError, match="JSON encoding of a column name"):
        impl.json_object_rows(["a"], [ints])
    with pytest.raises(TypeError, match="int64, float64, bool or object"):
        impl.json_object_rows([b'"a"'], [ints.astype(np.int32)])
    with pytest.raises(ValueError, match="1-D"):
        impl.json_object_rows([b'"a"'], [ints.reshape(3, 1)])
    with pytest.raises(ValueError, match="equal lengths"):
        impl.json_object_rows([b'"a"', b'"b"'], [ints, ints[:2]])


# ---- kafka_record_batches --------------------------------------------------------------------------------

def aiokafka_batch(values: list[bytes], timestamps: list[int]) -> tuple[bytes, list[int]]:
    """The record batch aiokafka's own builder writes for ``values`` (null keys, no headers), and the
    size of each record in it."""
    builder = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, 0, 2**30)
    sizes = [builder.append(i, timestamp, None, value, []).size
             for i, (value, timestamp) in enumerate(zip(values, timestamps))]
    return bytes(builder.build()), sizes


def frame(impl, values, timestamps, limit):
    buffer = b"".join(values)
    offsets = np.concatenate([[0], np.cumsum([len(v) for v in values])]).astype(np.int64)
    return impl.kafka_record_batches(buffer, offsets, np.array(timestamps, dtype=np.int64), limit)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.binary(max_size=300), min_size=1, max_size=60),
    st.integers(0, 2**41),
    st.lists(st.integers(-(2**20), 2**40), min_size=60, max_size=60),
    st.integers(61, 4_000),
)
def test_sections_are_the_records_aiokafka_writes(values, base, deltas, limit):
    timestamps = [max(0, base + d) for d in deltas[: len(values)]]
    results = [frame(impl, values, timestamps, limit) for impl in IMPLS]
    sections, bounds = results[0]
    assert sections == results[1][0] and bounds.tolist() == results[1][1].tolist()
    assert bounds.dtype == np.int64 and bounds[0] == 0 and bounds[-1] == len(values)
    assert np.all(np.diff(bounds) > 0) and len(sections) == len(bounds) - 1
    for b, section in enumerate(sections):
        first, stop = int(bounds[b]), int(bounds[b + 1])
        _, sizes = aiokafka_batch(values[first:], timestamps[first:])
        assert section[:61] == bytes(61)
        assert section[61:] == aiokafka_batch(values[first:stop], timestamps[first:stop])[0][61:]
        # Java's rule (MemoryRecordsBuilder.hasRoomFor): a batch takes a record while the total stays
        # within the limit, and always its first record. (aiokafka's compiled builder refuses one at
        # exactly the limit; its pure-Python one follows Java.)
        assert len(section) <= limit or stop - first == 1
        if stop < len(values):
            assert len(section) + sizes[stop - first] > limit


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_a_value_bigger_than_the_limit_gets_a_batch_of_its_own(impl):
    values = [b"a", b"x" * 1000, b"b", b"c"]
    sections, bounds = frame(impl, values, [1, 2, 3, 4], 200)
    assert bounds.tolist() == [0, 1, 2, 4]
    parsed = [list(DefaultRecordBatch(_with_header(s, b, bounds)))
              for s, b in zip(sections, range(len(sections)))]
    assert [[r.value for r in batch] for batch in parsed] == [[b"a"], [b"x" * 1000], [b"b", b"c"]]


def _with_header(section: bytearray, b: int, bounds: np.ndarray) -> bytes:
    from connectors.kafka_framing import FramedBatch

    count = int(bounds[b + 1] - bounds[b])
    return bytes(FramedBatch(section, count, b + 1, b + 1 + count - 1)._build())


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_kafka_records_argument_checks(impl):
    values, offsets, ts = b"abc", np.array([0, 1, 3], dtype=np.int64), np.array([5, 6], dtype=np.int64)
    with pytest.raises(ValueError, match="one position more"):
        impl.kafka_record_batches(b"a", offsets[:2], ts, 100)
    with pytest.raises(ValueError, match="rise from 0"):
        impl.kafka_record_batches(values, np.array([0, 2, 1], dtype=np.int64), ts, 100)
    with pytest.raises(ValueError, match="rise from 0"):
        impl.kafka_record_batches(values, np.array([0, 1, 4], dtype=np.int64), ts, 100)
    with pytest.raises(ValueError, match=">= 0"):
        impl.kafka_record_batches(values, offsets, np.array([5, -1], dtype=np.int64), 100)
    with pytest.raises(ValueError, match="positive"):
        impl.kafka_record_batches(values, offsets, ts, 0)
    with pytest.raises(TypeError, match="bytes or a 1-D uint8"):
        impl.kafka_record_batches("abc", offsets, ts, 100)
    with pytest.raises(ValueError, match=r"rows must be value indices in \[0, 2\)"):
        impl.kafka_record_batches(values, offsets, ts, 100, rows=np.array([0, 2]))
    with pytest.raises(ValueError, match="go together"):
        impl.kafka_record_batches(values, offsets, ts, 100, keys=b"k")
    with pytest.raises(ValueError, match="keys offsets must hold one position more"):
        impl.kafka_record_batches(values, offsets, ts, 100, keys=b"k", key_offsets=np.array([0, 1]))
    sections, bounds = impl.kafka_record_batches(b"", np.zeros(1, dtype=np.int64), np.empty(0, dtype=np.int64), 100)
    assert sections == [] and bounds.tolist() == [0]
    with pytest.raises(ValueError, match="n_partitions"):
        impl.kafka_key_partitions(b"ab", np.array([0, 1, 2]), 0)
    with pytest.raises(ValueError, match="keys offsets must rise"):
        impl.kafka_key_partitions(b"ab", np.array([0, 2, 1]), 3)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.binary(max_size=40), st.binary(max_size=20), st.integers(0, 2**41)), min_size=1, max_size=40),
    st.randoms(use_true_random=False),
    st.integers(61, 2_000),
)
def test_keyed_records_in_any_row_order_are_the_records_aiokafka_writes(messages, rng, limit):
    values = [v for v, _, _ in messages]
    keys = [k for _, k, _ in messages]
    timestamps = [t for _, _, t in messages]
    rows = list(range(len(messages))) * 2
    rng.shuffle(rows)
    rows = rows[: rng.randrange(1, len(rows) + 1)]
    key_offsets = np.concatenate([[0], np.cumsum([len(k) for k in keys])]).astype(np.int64)
    buffer = b"".join(values)
    offsets = np.concatenate([[0], np.cumsum([len(v) for v in values])]).astype(np.int64)
    results = [impl.kafka_record_batches(buffer, offsets, np.array(timestamps, dtype=np.int64), limit,
                                         rows=np.array(rows), keys=b"".join(keys), key_offsets=key_offsets)
               for impl in IMPLS]
    batches, bounds = results[0]
    assert batches == results[1][0] and bounds.tolist() == results[1][1].tolist() and bounds[-1] == len(rows)
    for b, batch in enumerate(batches):
        picked = rows[bounds[b]:bounds[b + 1]]
        builder = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, 0, 2**30)
        for j, r in enumerate(picked):
            builder.append(j, timestamps[r], keys[r], values[r], [])
        assert batch[61:] == bytes(builder.build())[61:]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=30), max_size=30), st.integers(1, 1000))
def test_key_partitions_are_kafkas_default_partitioner(keys, n_partitions):
    from aiokafka.partitioner import DefaultPartitioner

    partitioner = DefaultPartitioner()
    expected = [partitioner(key, list(range(n_partitions)), []) for key in keys]
    key_offsets = np.concatenate([[0], np.cumsum([len(k) for k in keys])]).astype(np.int64)
    for impl in IMPLS:
        got = impl.kafka_key_partitions(b"".join(keys), key_offsets, n_partitions)
        assert got.dtype == np.int64 and got.tolist() == expected


# ---- kafka_json_record_batches (the two kernels above, fused) ---------------------------------------------

def two_step(names, columns, timestamps, limit, rows=None, keys=None):
    """What the fused kernel must equal: the compiled `json_object_rows`, then `kafka_record_batches`, and
    each batch's first and largest timestamp from numpy."""
    encoded = _core.json_object_rows([ENCODE(name) for name in names], columns)
    if encoded is None:
        return None
    key_buffer, key_offsets = keys if keys is not None else (None, None)
    batches, bounds = _core.kafka_record_batches(*encoded, timestamps, limit, rows, key_buffer, key_offsets)
    row_ts = timestamps[rows] if rows is not None else timestamps
    firsts = row_ts[bounds[:-1]] if len(batches) else np.empty(0, dtype=np.int64)
    maxima = np.maximum.reduceat(row_ts, bounds[:-1]) if len(batches) else np.empty(0, dtype=np.int64)
    return batches, bounds, firsts, maxima


def fused(impl, names, columns, timestamps, limit, rows=None, keys=None):
    key_buffer, key_offsets = keys if keys is not None else (None, None)
    return impl.kafka_json_record_batches([ENCODE(name) for name in names], columns, timestamps, limit, rows,
                                          key_buffer, key_offsets)


def assert_same_framing(got, expected):
    assert (got is None) == (expected is None)
    if got is None:
        return
    batches, bounds, firsts, maxima = got
    assert all(type(batch) is bytearray for batch in batches)
    assert batches == expected[0]
    for array, want in zip((bounds, firsts, maxima), expected[1:]):
        assert array.dtype == np.int64 and array.tolist() == want.tolist()


def key_buffer_of(keys: list[bytes]) -> tuple[bytes, np.ndarray]:
    return b"".join(keys), np.concatenate([[0], np.cumsum([len(k) for k in keys])]).astype(np.int64)


column_kinds = st.lists(st.sampled_from(["int", "float", "bool", "object"]), min_size=1, max_size=4)


@st.composite
def framing_cases(draw):
    """Columns of random kinds (objects: None, bools, ints, floats, strs with escapes and non-ASCII), a
    limit that splits them (or not), a row order with repeats and omissions, and message keys or none."""
    kinds = draw(column_kinds)
    n = draw(st.integers(0, 30))
    columns = []
    for kind in kinds:
        if kind == "int":
            columns.append(np.array(draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=n, max_size=n)),
                                    dtype=np.int64))
        elif kind == "float":
            columns.append(np.array(draw(st.lists(st.floats(), min_size=n, max_size=n)), dtype=np.float64))
        elif kind == "bool":
            columns.append(np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=np.bool_))
        else:
            column = np.empty(n, dtype=object)
            column[:] = draw(st.lists(object_values, min_size=n, max_size=n))
            columns.append(column)
    names = draw(st.lists(st.text(max_size=5), min_size=len(kinds), max_size=len(kinds)))
    timestamps = np.array(draw(st.lists(st.integers(0, 2**45), min_size=n, max_size=n)), dtype=np.int64)
    limit = draw(st.one_of(st.integers(1, 400), st.integers(400, 5_000), st.just(256 * 1024)))
    rows = None
    if n and draw(st.booleans()):
        rows = np.array(draw(st.lists(st.integers(0, n - 1), max_size=2 * n)), dtype=np.int64)
    keys = None
    if draw(st.booleans()):
        keys = key_buffer_of(draw(st.lists(st.binary(max_size=12), min_size=n, max_size=n)))
    return names, columns, timestamps, limit, rows, keys


@settings(max_examples=200, deadline=None)
@given(framing_cases())
def test_fused_framing_is_json_rows_then_record_batches(case):
    names, columns, timestamps, limit, rows, keys = case
    expected = two_step(names, columns, timestamps, limit, rows, keys)
    for impl in IMPLS:
        assert_same_framing(fused(impl, names, columns, timestamps, limit, rows, keys), expected)


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_window_results_split_where_the_two_step_path_splits_them(impl):
    # The sink's workload (int64 key/start/end/count), big enough for many full batches, with the limits
    # a producer uses and ones below the 61-byte header.
    seed = 20261126
    print("seed", seed)
    rng = np.random.default_rng(seed)
    n = 20_000 if impl is _core else 4_000  # 4_000 rows still fill more than one 256 KiB batch
    start = 1_700_000_000_000 + rng.integers(0, 10, n) * 1000
    columns = [rng.integers(0, 1_000_000, n), start, start + 1000, rng.integers(1, 10**6, n)]
    names = ["key", "start", "end", "count"]
    timestamps = start + 999
    for limit in (1, 61, 200, 16 * 1024, 256 * 1024):
        got = fused(impl, names, columns, timestamps, limit)
        assert_same_framing(got, two_step(names, columns, timestamps, limit))
        assert len(got[0]) > 1
    keys = key_buffer_of([b"user-%d" % k * (k % 4) for k in columns[0].tolist()])
    rows = np.argsort(columns[0] % 4, kind="stable")
    assert_same_framing(fused(impl, names, columns, timestamps, 16 * 1024, rows, keys),
                        two_step(names, columns, timestamps, 16 * 1024, rows, keys))


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_a_row_bigger_than_the_limit_gets_a_batch_of_its_own(impl):
    text = np.array(["a", "x" * 5_000, "\u00e9\n" * 3_000, "b", "c"], dtype=object)
    big_keys = key_buffer_of([b"k", b"K" * 3_000, b"", b"k" * 70_000, b"q"])  # keys grow a batch too
    n = np.arange(5, dtype=np.int64)
    for keys in (None, big_keys):
        for limit in (300, 4_000, 256 * 1024):
            got = fused(impl, ["s", "n"], [text, n], n + 10, limit, keys=keys)
            assert_same_framing(got, two_step(["s", "n"], [text, n], n + 10, limit, keys=keys))
        # int columns only (framed without the GIL): a long key must still grow the batch
        got = fused(impl, ["n"], [n], n, 256 * 1024, keys=keys)
        assert_same_framing(got, two_step(["n"], [n], n, 256 * 1024, keys=keys))
    batches, bounds, _, _ = fused(impl, ["s", "n"], [text, n], n + 10, 300)
    assert bounds.tolist() == [0, 1, 2, 3, 5]
    assert len(batches[1]) > 5_000 and all(len(batch) <= 300 for batch in (batches[0], batches[3]))


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_unencodable_values_return_none_only_among_the_rows_framed(impl):
    column = np.empty(3, dtype=object)
    column[:] = ["x", object(), 2**64]
    ints = np.arange(3, dtype=np.int64)
    assert fused(impl, ["n", "v"], [ints, column], ints, 1024) is None
    assert fused(impl, ["n", "v"], [ints, column], ints, 1024, rows=np.array([2, 0])) is None
    assert_same_framing(fused(impl, ["n", "v"], [ints, column], ints, 1024, rows=np.array([0, 0])),
                        two_step(["n", "v"], [ints[:1], column[:1]], ints[:1], 1024, rows=np.array([0, 0])))
    with pytest.raises(UnicodeEncodeError):
        fused(impl, ["v"], [np.array(["ok", "\ud800"], dtype=object)], ints[:2], 1024)


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_kafka_json_records_argument_checks(impl):
    ints, ts = np.arange(3, dtype=np.int64), np.arange(3, dtype=np.int64)
    with pytest.raises(ValueError, match="at least one column"):
        impl.kafka_json_record_batches([], [], ts, 100)
    with pytest.raises(ValueError, match="one row per timestamp"):
        impl.kafka_json_record_batches([b'"a"'], [ints], ts[:2], 100)
    with pytest.raises(ValueError, match="one key per column"):
        impl.kafka_json_record_batches([b'"a"'], [ints, ints], ts, 100)
    with pytest.raises(TypeError, match="int64, float64, bool or object"):
        impl.kafka_json_record_batches([b'"a"'], [ints.astype(np.int32)], ts, 100)
    with pytest.raises(ValueError, match=">= 0"):
        impl.kafka_json_record_batches([b'"a"'], [ints], ts - 1, 100)
    with pytest.raises(ValueError, match="positive"):
        impl.kafka_json_record_batches([b'"a"'], [ints], ts, 0)
    with pytest.raises(ValueError, match=r"rows must be value indices in \[0, 3\)"):
        impl.kafka_json_record_batches([b'"a"'], [ints], ts, 100, rows=np.array([3]))
    with pytest.raises(ValueError, match="go together"):
        impl.kafka_json_record_batches([b'"a"'], [ints], ts, 100, msg_keys=b"k")
    with pytest.raises(ValueError, match="keys offsets must hold one position more"):
        impl.kafka_json_record_batches([b'"a"'], [ints], ts, 100, msg_keys=b"k", key_offsets=np.array([0, 1]))
    empty = np.empty(0, dtype=np.int64)
    for rows in (None, empty):
        batches, bounds, firsts, maxima = impl.kafka_json_record_batches([b'"a"'], [ints], ts, 100, rows=rows) \
            if rows is not None else impl.kafka_json_record_batches([b'"a"'], [empty], empty, 100)
        assert batches == [] and bounds.tolist() == [0] and firsts.tolist() == [] and maxima.tolist() == []


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
@pytest.mark.parametrize("keyed", [False, True])
def test_a_batch_fills_the_limit_exactly(impl, keyed):
    # Java's rule (and kafka_record_batches'): a record that ends exactly at the limit still goes in.
    ints = np.arange(1_000, 1_040, dtype=np.int64)
    text = np.array(["\u00e9" * (i % 7) for i in range(40)], dtype=object)
    timestamps = ints * 1_000
    keys = key_buffer_of([b"k" * (i % 5) for i in range(40)]) if keyed else None
    for columns in ([ints], [ints, text]):
        names = ["n", "s"][: len(columns)]
        whole = fused(impl, names, columns, timestamps, 2**30, keys=keys)[0][0]
        for k in (1, 2, 7, 39):
            limit = len(fused(impl, names, columns, timestamps, 2**30, rows=np.arange(k), keys=keys)[0][0])
            got = fused(impl, names, columns, timestamps, limit, keys=keys)
            assert_same_framing(got, two_step(names, columns, timestamps, limit, keys=keys))
            assert got[1][1] == k and len(got[0][0]) == limit and got[0][0] == whole[:limit]
