"""Key interning (`KeyInterner`): compiled vs twin, dict equality across the int64 and object paths."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import _core, _reference

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
IMPLS = [_core, _reference]
IDS = ["compiled", "twin"]

small_ints = st.integers(-20, 20)
int64s = st.one_of(small_ints, st.integers(INT64_MIN, INT64_MIN + 5), st.integers(INT64_MAX - 5, INT64_MAX),
                   st.integers(INT64_MIN, INT64_MAX))
# keys that collide under dict equality with the ints above: 1.0 == 1 == True
objects = st.one_of(
    small_ints,
    small_ints.map(float),
    st.booleans(),
    st.text(max_size=3),
    st.tuples(small_ints, st.text(max_size=2)),
    st.none(),
    st.integers(2**63, 2**64),  # ints beyond int64 live only in the dict
)


@st.composite
def key_batches(draw):
    """A batch as the runtime may send it: int arrays of several dtypes, lists, object/str/bool/float arrays."""
    kind = draw(st.sampled_from(["int64", "int32", "uint8", "list", "object", "str", "bool", "float"]))
    n = draw(st.integers(0, 25))
    if kind == "int64":
        return np.array(draw(st.lists(int64s, min_size=n, max_size=n)), dtype=np.int64)
    if kind == "int32":
        return np.array(draw(st.lists(small_ints, min_size=n, max_size=n)), dtype=np.int32)
    if kind == "uint8":
        return np.array(draw(st.lists(st.integers(0, 25), min_size=n, max_size=n)), dtype=np.uint8)
    if kind == "list":
        return draw(st.lists(objects, min_size=n, max_size=n))
    if kind == "object":
        arr = np.empty(n, dtype=object)
        arr[:] = draw(st.lists(objects, min_size=n, max_size=n))
        return arr
    if kind == "str":
        return np.array(draw(st.lists(st.text("ab", max_size=2), min_size=n, max_size=n)), dtype=str)
    if kind == "bool":
        return np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=np.bool_)
    return np.array(draw(st.lists(small_ints.map(float), min_size=n, max_size=n)), dtype=np.float64)


def typed(keys):
    """Keys with their types, so ``1`` and ``1.0`` (equal in Python) are told apart."""
    return [(type(k), k) for k in keys]


# --- differential properties ------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(batches=st.lists(key_batches(), max_size=6), snap_at=st.integers(0, 6),
       restore_into=st.sampled_from(IMPLS))
def test_interner_compiled_equals_twin(batches, snap_at, restore_into):
    compiled = _core.KeyInterner()
    twin = _reference.KeyInterner()
    seen = {}  # the dict-equality model: key -> first id
    for b, batch in enumerate(batches):
        if b == snap_at:
            snap = compiled.snapshot()
            assert typed(snap["keys"]) == typed(twin.snapshot()["keys"])
            compiled = restore_into.KeyInterner.restore(snap)
        ids = compiled.intern(batch)
        assert ids.dtype == np.int64
        np.testing.assert_array_equal(ids, twin.intern(batch))
        values = batch.tolist() if isinstance(batch, np.ndarray) else list(batch)
        for key, key_id in zip(values, ids.tolist()):
            assert seen.setdefault(key, len(seen)) == key_id
        assert compiled.keys_of(ids) == values  # equal as dict keys (1 == 1.0)
    assert len(compiled) == len(twin) == len(seen)
    assert typed(compiled.snapshot()["keys"]) == typed(twin.snapshot()["keys"])
    assert typed(compiled.keys_of(np.arange(len(compiled)))) == typed(twin.snapshot()["keys"])


@settings(max_examples=100, deadline=None)
@given(n_distinct=st.integers(1, 3000), seed=st.integers(0, 2**32 - 1))
def test_many_int64_keys_in_order_of_first_appearance(n_distinct, seed):
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    pool = rng.integers(INT64_MIN, INT64_MAX, size=n_distinct, dtype=np.int64, endpoint=True)
    keys = pool[rng.integers(0, n_distinct, size=2 * n_distinct)]
    interner = _core.KeyInterner()
    half = len(keys) // 3
    ids = np.concatenate([interner.intern(keys[:half]), interner.intern(keys[half:])])
    first = {}
    for k in keys.tolist():
        first.setdefault(k, len(first))
    assert ids.tolist() == [first[k] for k in keys.tolist()]
    np.testing.assert_array_equal(_reference.KeyInterner().intern(keys), ids)
    assert interner.keys_of(ids) == keys.tolist()


# --- hand-computed cases --------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_dense_ids_in_order_of_first_appearance(impl):
    interner = impl.KeyInterner()
    assert interner.intern(["b", "a", "b", "c"]).tolist() == [0, 1, 0, 2]
    assert interner.intern(np.array(["c", "d"])).tolist() == [2, 3]
    assert len(interner) == 4
    assert interner.key(3) == "d" and type(interner.key(3)) is str  # numpy str_ is stored as str
    assert interner.keys_of(np.array([3, 0, 0])) == ["d", "b", "b"]
    assert interner.intern([]).tolist() == []
    assert interner.intern(np.array([], dtype=np.int64)).tolist() == []


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_one_key_and_the_int64_extremes(impl):
    interner = impl.KeyInterner()
    assert interner.intern(np.full(1000, 7, dtype=np.int64)).tolist() == [0] * 1000
    ids = interner.intern(np.array([INT64_MIN, 0, INT64_MAX, -1, INT64_MIN], dtype=np.int64))
    assert ids.tolist() == [1, 2, 3, 4, 1]
    assert interner.keys_of(ids) == [INT64_MIN, 0, INT64_MAX, -1, INT64_MIN]
    assert all(type(k) is int for k in interner.snapshot()["keys"])


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_dict_equality_across_paths(impl):
    interner = impl.KeyInterner()
    # 1.0 interned through the object path, then 1 arrives in an int64 array: the same key
    assert interner.intern([1.0, "x"]).tolist() == [0, 1]
    assert interner.intern(np.array([1, 2, 1], dtype=np.int64)).tolist() == [0, 2, 0]
    assert interner.key(0) == 1.0 and type(interner.key(0)) is float  # the first one seen is kept
    # True == 1; a bool array goes through the object path
    assert interner.intern(np.array([True, False])).tolist() == [0, 3]
    assert interner.intern(np.array([0], dtype=np.int8)).tolist() == [3]  # False == 0
    assert interner.intern(np.array([2.0, 3.5])).tolist() == [2, 4]
    # an int first seen in an int64 array is found again by equal objects
    assert interner.intern([2, 2.0, np.int64(2)]).tolist() == [2, 2, 2]
    # uint64 values above INT64_MAX are keys too (through the dict)
    assert interner.intern(np.array([2**64 - 1, 2], dtype=np.uint64)).tolist() == [5, 2]
    assert interner.key(5) == 2**64 - 1


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_unhashable_key_names_it_and_interns_nothing(impl):
    interner = impl.KeyInterner()
    interner.intern(["a"])
    with pytest.raises(TypeError, match=r"key \[1, 2\] at index 3 cannot be interned: TypeError: unhashable"):
        interner.intern([5, 6, "b", [1, 2]])
    assert len(interner) == 1
    # the failed batch left nothing behind, in the dict or in the int64 table
    assert interner.intern(np.array([6, 5], dtype=np.int64)).tolist() == [1, 2]
    assert interner.intern(["b", 5]).tolist() == [3, 2]
    assert interner.snapshot() == {"keys": ["a", 6, 5, "b"]}


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_snapshot_restore_continue_across_implementations(impl):
    first = impl.KeyInterner()
    first.intern([("u", 1), "v", 3.0])
    first.intern(np.arange(5, dtype=np.int64))
    snap = first.snapshot()
    assert snap == {"keys": [("u", 1), "v", 3.0, 0, 1, 2, 4]}
    for target in IMPLS:
        restored = target.KeyInterner.restore(snap)
        assert restored.intern(np.array([3, 4, 9], dtype=np.int64)).tolist() == [2, 6, 7]
        assert restored.intern(["v", ("u", 1)]).tolist() == [1, 0]


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_growth_past_many_table_resizes(impl):
    interner = impl.KeyInterner()
    keys = np.arange(0, 50_000 * 1024, 1024, dtype=np.int64)  # clustered low bits
    np.testing.assert_array_equal(interner.intern(keys), np.arange(50_000))
    np.testing.assert_array_equal(interner.intern(keys[::-1]), np.arange(50_000)[::-1])


# --- bad input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_bad_arguments_raise_clear_errors(impl):
    interner = impl.KeyInterner()
    interner.intern(["a", "b"])
    with pytest.raises(TypeError, match="keys must be a sequence of keys .* got str"):
        interner.intern("abc")
    with pytest.raises(TypeError, match="keys must be a sequence of keys .* got int"):
        interner.intern(5)
    with pytest.raises(ValueError, match="keys must be a 1-D array, got shape"):
        interner.intern(np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(ValueError, match=r"key id 2 is not interned; valid ids are 0 <= key_id < 2"):
        interner.key(2)
    with pytest.raises(ValueError, match="key id -1 is not interned"):
        interner.keys_of(np.array([0, -1]))
    with pytest.raises(TypeError, match="key_ids must be an int64 array"):
        interner.keys_of(np.array([0.0]))
    with pytest.raises(TypeError, match="key_id must be an int"):
        interner.key("a")
    with pytest.raises(ValueError, match="equal keys twice"):
        impl.KeyInterner.restore({"keys": [1, 1.0]})
    with pytest.raises(TypeError, match="'keys' must be a list"):
        impl.KeyInterner.restore({"keys": "ab"})
    with pytest.raises(ValueError, match="missing 'keys'"):
        impl.KeyInterner.restore({})


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_pickle_and_read_only_strided_arrays(impl):
    import pickle

    interner = impl.KeyInterner()
    keys = np.arange(20, dtype=np.int64)[::-2]
    keys.flags.writeable = False
    assert interner.intern(keys).tolist() == list(range(10))
    interner.intern(["x", 2.5])
    copy = pickle.loads(pickle.dumps(interner))
    assert type(copy) is impl.KeyInterner
    assert copy.snapshot() == interner.snapshot()
    assert copy.intern(np.array([1, 19, 99])).tolist() == [9, 0, 12]  # keys were 19, 17, ..., 1, then "x", 2.5
