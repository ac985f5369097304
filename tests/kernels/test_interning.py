"""Key interning (`KeyInterner`): compiled vs twin, dict equality across the int64 and object paths."""

from __future__ import annotations

import enum
import pickle
import sys
from collections import namedtuple
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given, settings
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


class IntLike:
    """Equal to the int it wraps and hashed like it, with no ``__int__``/``__index__``: a user type the
    interner can only place by its hash and ``==`` (the generic path)."""

    __slots__ = ("v",)

    def __init__(self, v):
        self.v = v

    def __hash__(self):
        return hash(self.v)

    def __eq__(self, other):
        if isinstance(other, IntLike):
            return self.v == other.v
        if isinstance(other, (int, float, Fraction, Decimal, complex)):
            return self.v == other
        return NotImplemented

    def __repr__(self):
        return f"IntLike({self.v})"


class Color(enum.IntEnum):
    RED = 1
    BLUE = 3


class Name(str):
    """A str subclass (like numpy's ``str_``)."""


Point = namedtuple("Point", "x y")

# keys that are one dict key with an int64 value, or look like one and are not
numeric_objects = st.one_of(
    st.sampled_from([1.0, True, False, "5", 2**70, float(2**70), -0.0, 0.5, None, Color.RED, Color.BLUE,
                     float(2**63), -float(2**63), Name("5"), Point(1, 2), b"5"]),
    small_ints.map(np.float64),
    small_ints.map(Fraction),
    small_ints.map(Decimal),
    small_ints.map(lambda v: complex(v, 0)),
    small_ints.map(np.int32),
    small_ints.map(np.float32),
    small_ints.map(np.bool_),
    st.builds(Fraction, small_ints, st.integers(2, 3)),  # mostly not integral
    int64s,
    int64s.map(float),  # may round to 2.0**63, outside int64
    int64s.map(IntLike),
    st.integers(INT64_MAX - 2, INT64_MAX + 2),
    st.integers(INT64_MIN - 2, INT64_MIN + 2),
    # ints sharing a hash with 0 (in int64 only: beyond it, np.bool_'s == raises inside the twin's dict,
    # see test_equal_numbers_whose_eq_raises)
    st.integers(-4, 4).map(lambda k: k * (2**61 - 1)),
)


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


@st.composite
def mixed_batches(draw):
    """int64 arrays (small values, so they meet the objects) and lists of numeric look-alikes, some with
    an unhashable key part-way."""
    if draw(st.booleans()):
        return np.array(draw(st.lists(st.one_of(small_ints, int64s), max_size=12)), dtype=np.int64)
    batch = draw(st.lists(numeric_objects, max_size=12))
    if batch and draw(st.integers(0, 4)) == 0:
        batch.insert(draw(st.integers(0, len(batch))), [1, 2])
    return batch


def intern_both(compiled, twin, batch):
    """Intern ``batch`` into both; return the ids, or ``None`` when both refused it with the same error."""
    try:
        expected = twin.intern(batch)
    except TypeError as exc:
        with pytest.raises(TypeError) as info:
            compiled.intern(batch)
        assert str(info.value) == str(exc)
        return None
    ids = compiled.intern(batch)
    np.testing.assert_array_equal(ids, expected)
    return ids


@settings(max_examples=200, deadline=None)
@given(batches=st.lists(mixed_batches(), max_size=8), snap_at=st.integers(0, 8),
       restore_into=st.sampled_from(IMPLS))
def test_numeric_look_alikes_are_dict_keys_in_any_order(batches, snap_at, restore_into):
    # Decimal == numpy int raises TypeError, which a plain dict reports (see test_equal_numbers_whose_eq_raises)
    kinds = {type(k) for batch in batches if isinstance(batch, list) for k in batch}
    assume(not (Decimal in kinds and any(issubclass(t, np.integer) for t in kinds)))
    compiled = _core.KeyInterner()
    twin = _reference.KeyInterner()
    for b, batch in enumerate(batches):
        if b == snap_at:
            snap = compiled.snapshot()
            compiled = restore_into.KeyInterner.restore(snap)
        ids = intern_both(compiled, twin, batch)
        assert len(compiled) == len(twin)
        if ids is not None:
            values = batch.tolist() if isinstance(batch, np.ndarray) else batch
            assert compiled.keys_of(ids) == values
    assert typed(compiled.snapshot()["keys"]) == typed(twin.snapshot()["keys"])
    # every stored key finds itself again, through whichever index holds it
    keys = twin.snapshot()["keys"]
    np.testing.assert_array_equal(compiled.intern(keys), np.arange(len(keys)))


@settings(max_examples=200, deadline=None)
@given(value=st.one_of(int64s, st.integers(-3, 3), st.integers(-4, 4).map(lambda k: k * (2**61 - 1)),
                       st.integers(-4, 4).map(lambda k: k * (2**61 - 1) - 1)),
       int_first=st.booleans())
def test_a_user_type_equal_to_an_int_finds_it_by_hash(value, int_first):
    # IntLike has no int conversion: the interner must find the int64 values hashing like it (several
    # int64 values share each hash: v, v + P, v + 2P, ... with P = 2**61 - 1; -1 and -2 both hash to -2)
    other = value ^ 1
    for impl in IMPLS:
        interner = impl.KeyInterner()
        if int_first:
            assert interner.intern(np.array([value], dtype=np.int64)).tolist() == [0]
            assert interner.intern([IntLike(value), other]).tolist() == [0, 1]
            assert type(interner.key(0)) is int
        else:
            assert interner.intern([IntLike(value)]).tolist() == [0]
            assert interner.intern(np.array([other, value], dtype=np.int64)).tolist() == [1, 0]
            assert type(interner.key(0)) is IntLike


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
def test_every_numeric_type_equal_to_one_is_one_key(impl):
    interner = impl.KeyInterner()
    ones = [1.0, True, np.float64(1.0), Fraction(1), Decimal(1), Decimal("1.00"), complex(1, 0), np.int8(1),
            np.uint64(1), np.float32(1.0), np.bool_(True), Color.RED, IntLike(1)]
    assert interner.intern(ones).tolist() == [0] * len(ones)
    assert interner.intern(np.array([1], dtype=np.int64)).tolist() == [0]
    assert interner.key(0) == 1 and type(interner.key(0)) is float  # the first one seen
    # look-alikes that are not equal to an int64 value are keys of their own (equal among themselves
    # as in a dict: a str subclass equals the str, 3/2 equals 1.5, 2.0**63 equals 2**63)
    others = ["1", b"1", Name("1"), Fraction(3, 2), 1.5, complex(1, 1), 2**63, float(2**63), (1,), None]
    assert interner.intern(others).tolist() == [1, 2, 1, 3, 3, 4, 5, 5, 6, 7]
    assert interner.intern([Fraction(2**63), Decimal(2**63), 9223372036854775807.0]).tolist() == [5] * 3
    # the int64 extremes: -2.0**63 is INT64_MIN; INT64_MAX has no float twin
    ids = interner.intern(np.array([INT64_MIN, INT64_MAX], dtype=np.int64))
    assert ids.tolist() == [8, 9]
    assert interner.intern([-float(2**63), Fraction(INT64_MIN), Decimal(INT64_MAX), -0.0]).tolist() == [8, 8, 9, 10]
    assert interner.intern(np.array([0], dtype=np.int64)).tolist() == [10]  # -0.0 == 0
    assert interner.intern([Color.BLUE, 3]).tolist() == [11, 11]
    assert type(interner.key(11)) is Color


def test_equal_numbers_whose_eq_raises():
    # Known differences from a plain dict, where two keys with equal hashes are compared and a raising
    # == fails the lookup: np.bool_ == an int beyond C long raises OverflowError (np.False_ and
    # 5 * (2**61 - 1) both hash to 0), Decimal == a numpy int raises TypeError (Decimal(3) == np.int32(3)).
    # The compiled interner places numbers by value and never compares these, so it interns them.
    big = 5 * (2**61 - 1)
    assert _core.KeyInterner().intern([np.False_, big]).tolist() == [0, 1]
    assert _core.KeyInterner().intern([big, np.False_, 0]).tolist() == [0, 1, 1]
    assert _core.KeyInterner().intern([Decimal(3), np.int32(3), 3]).tolist() == [0, 0, 0]
    assert _core.KeyInterner().intern([np.uint64(3), Decimal("3.0")]).tolist() == [0, 0]


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_nan_keys_are_equal_only_to_themselves(impl):
    # as in a dict: NaN != NaN, so only the same object finds its id again
    interner = impl.KeyInterner()
    nan = float("nan")
    assert interner.intern([nan, nan, float("nan"), np.float64("nan")]).tolist() == [0, 0, 1, 2]
    assert interner.intern([nan]).tolist() == [0]


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_failed_batch_forgets_keys_of_both_indexes(impl):
    interner = impl.KeyInterner()
    interner.intern(["a", 1])
    with pytest.raises(TypeError, match=r"key \{\} at index 5 cannot be interned"):
        interner.intern([7, "s", Fraction(9), 2.0**70, IntLike(11), {}, 12])
    assert len(interner) == 2
    assert interner.intern(np.array([9, 7, 11, 1], dtype=np.int64)).tolist() == [2, 3, 4, 1]
    assert interner.intern(["s", 2.0**70, 12.0]).tolist() == [5, 6, 7]
    assert interner.snapshot() == {"keys": ["a", 1, 9, 7, 11, "s", 2.0**70, 12.0]}


@settings(max_examples=50, deadline=None)
@given(n_old=st.integers(0, 3000), n_new=st.integers(1, 3000), stride=st.sampled_from([1, 1024, 2**61 - 1]),
       seed=st.integers(0, 2**32 - 1))
def test_rollback_of_many_table_keys_keeps_the_table_probing_right(n_old, n_new, stride, seed):
    # the failed batch's int keys are removed from the middle of long probe runs (clustered keys)
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    pool = (rng.permutation(n_old + n_new).astype(np.int64) - (n_old + n_new) // 2) * stride
    old, new = pool[:n_old], pool[n_old:]
    interners = [impl.KeyInterner() for impl in IMPLS]
    for interner in interners:
        interner.intern(old)
        with pytest.raises(TypeError, match="cannot be interned"):
            interner.intern(new.tolist() + [[0]])
        assert len(interner) == n_old
    shuffled = pool[rng.permutation(len(pool))]
    compiled_ids, twin_ids = (interner.intern(shuffled) for interner in interners)
    np.testing.assert_array_equal(compiled_ids, twin_ids)
    np.testing.assert_array_equal(interners[0].intern(old), np.arange(n_old))


def test_errors_are_identical_in_both_implementations():
    class NoHash:
        __hash__ = None  # identity equality, unhashable

    bad_batches = [
        [1, "a", [1]],
        ["a", NoHash()],
        [Decimal("sNaN")],  # hashing raises TypeError
        [(1, [2])],
        [Fraction(1), {1: 2}],
    ]
    for batch in bad_batches:
        messages = []
        for impl in IMPLS:
            interner = impl.KeyInterner()
            with pytest.raises(TypeError) as info:
                interner.intern(batch)
            assert len(interner) == 0
            messages.append(str(info.value))
        assert messages[0] == messages[1], batch
        assert "cannot be interned" in messages[0]


def test_keys_of_other_types_stay_out_of_the_int64_table():
    # a string never reaches the int64 table: strings that hash to a stored int are still new keys
    interner = _core.KeyInterner()
    words = [f"w{i}" for i in range(2000)]
    interner.intern(np.array([hash(w) for w in words if INT64_MIN <= hash(w) <= INT64_MAX], dtype=np.int64))
    before = len(interner)
    ids = interner.intern(words + [Name("w1"), Point(1, 2)])
    assert ids.tolist() == list(range(before, before + 2000)) + [before + 1, before + 2000]
    assert sys.hash_info.modulus == 2**61 - 1  # the generic path's assumption, checked at import too


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
def test_restore_refuses_equal_numeric_keys(impl):
    for keys in ([1, Fraction(1)], [2**70, float(2**70)], [np.int64(3), 3.0], [IntLike(-5), -5], [True, 1.0]):
        with pytest.raises(ValueError, match="equal keys twice"):
            impl.KeyInterner.restore({"keys": keys})
    with pytest.raises(ValueError, match="equal keys twice"):
        impl.KeyInterner.restore({"keys": np.array([4, 5, 4], dtype=np.int64)})
    restored = impl.KeyInterner.restore({"keys": np.array([INT64_MAX, -1, INT64_MIN], dtype=np.int64)})
    assert restored.snapshot() == {"keys": [INT64_MAX, -1, INT64_MIN]}
    assert restored.intern([-1.0, Decimal(INT64_MIN), "x"]).tolist() == [1, 2, 3]


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_snapshot_is_a_copy(impl):
    interner = impl.KeyInterner()
    interner.intern(np.arange(3, dtype=np.int64))
    snap = interner.snapshot()
    snap["keys"].append(99)
    assert interner.snapshot() == {"keys": [0, 1, 2]}
    assert interner.intern(np.array([99], dtype=np.int64)).tolist() == [3]


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_pickle_and_read_only_strided_arrays(impl):
    interner = impl.KeyInterner()
    keys = np.arange(20, dtype=np.int64)[::-2]
    keys.flags.writeable = False
    assert interner.intern(keys).tolist() == list(range(10))
    interner.intern(["x", 2.5])
    copy = pickle.loads(pickle.dumps(interner))
    assert type(copy) is impl.KeyInterner
    assert copy.snapshot() == interner.snapshot()
    assert copy.intern(np.array([1, 19, 99])).tolist() == [9, 0, 12]  # keys were 19, 17, ..., 1, then "x", 2.5
