# Key interning (kernel 3 of `_core.pyi`): arbitrary hashable keys to dense int64 ids.
#
# Every key lives in exactly one of two indexes, chosen by what the key is equal to:
# - the int64 table (open addressing, int64 value -> id) holds every key that is equal to an int64
#   value, under that value: ints, bools, integral floats, numpy scalars, Fraction(3), Decimal(4),
#   5+0j, ... ("integral numeric" keys);
# - the Python dict holds every other key: "a", 2.5, 2**70, (1, "x"), None, ...
# This keeps dict semantics: two keys are one dict key when their hashes and values are equal, and all
# keys equal to the int v hash like v (Python's numeric hash contract), so they are one key exactly when
# they share the table slot of v. As no dict key equals an int64 value, an int64 array never touches
# the dict: a table miss is a new key, and the Python ints of a batch's new keys are built in one go.
# `_keys` (id -> the first key object seen) serves `key`, `keys_of` and `snapshot`.
#
# The home of an object key is decided by a cheap type check first (str, int, float, bool, numpy
# numbers, tuples, plain objects); any other type (Fraction, Decimal, complex, user classes) is
# looked up in the dict, then compared with the few int64 values whose hash equals its hash.

import sys

from cpython.object cimport PyObject, PyTypeObject, Py_TYPE, PyObject_RichCompareBool, Py_EQ, richcmpfunc
from cpython.long cimport PyLong_Check, PyLong_AsLongLongAndOverflow
from cpython.float cimport PyFloat_AsDouble
from libc.math cimport floor
from libc.string cimport memcpy
from libcpp.vector cimport vector

cdef extern from "Python.h":
    ctypedef Py_ssize_t Py_hash_t
    Py_hash_t PyObject_Hash(object o) except? -1
    PyTypeObject PyLong_Type
    PyTypeObject PyFloat_Type
    PyTypeObject PyUnicode_Type
    PyTypeObject PyBytes_Type
    PyTypeObject PyTuple_Type
    PyTypeObject PyBaseObject_Type

cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define ENGINE_INTERN_PREFETCH(p) __builtin_prefetch((p), 1, 3)
    #else
    #define ENGINE_INTERN_PREFETCH(p) ((void)(p))
    #endif
    """
    void _intern_prefetch "ENGINE_INTERN_PREFETCH"(const void* p) noexcept nogil

# rows ahead whose slot is prefetched: a large table misses the cache on almost every probe, and these
# loads are independent, so overlapping them hides most of the memory latency
cdef Py_ssize_t _INTERN_PREFETCH_AHEAD = 16

cdef int64_t _INTERN_EMPTY = -1
cdef uint64_t _INTERN_FIBONACCI = 0x9E3779B97F4A7C15ULL  # 2**64 / golden ratio: spreads clustered ints

# Python hashes an int v as sign(v) * (|v| mod P) with P = 2**61 - 1 (and -1 as -2) on 64-bit builds;
# the generic path relies on it to list the int64 values a key's hash can belong to.
if sys.hash_info.width != 64 or sys.hash_info.modulus != (1 << 61) - 1:
    raise ImportError(f"engine._core.KeyInterner needs 64-bit numeric hashing, got {sys.hash_info}")
cdef uint64_t _INTERN_HASH_MODULUS = (<uint64_t>1 << 61) - 1
cdef uint64_t _INTERN_2_63 = <uint64_t>1 << 63

cdef enum _KeyHome:
    _HOME_DICT = 0  # never equal to an int64 value
    _HOME_TABLE = 1  # equal to the int64 value written to *value
    _HOME_UNKNOWN = 2  # any other type: decided by `KeyInterner._intern_unknown`

ctypedef struct _InternSlot:
    int64_t key
    int64_t id  # _INTERN_EMPTY marks a free slot

cdef type _NP_FLOAT64 = np.float64
cdef type _NP_FLOAT32 = np.float32
cdef type _NP_FLOAT16 = np.float16
cdef type _NP_BOOL = np.bool_
cdef type _NP_INTEGER = np.integer


cdef inline int _float_home(double d, int64_t* value) noexcept nogil:
    # NaN fails every comparison; 2.0**63 and above (and infinities) do not fit
    if -9223372036854775808.0 <= d < 9223372036854775808.0 and floor(d) == d:
        value[0] = <int64_t>d
        return _HOME_TABLE
    return _HOME_DICT


cdef inline int _int_home(object key, int64_t* value) except -1:
    cdef int overflow = 0
    cdef long long v = PyLong_AsLongLongAndOverflow(key, &overflow)
    if overflow:
        return _HOME_DICT
    value[0] = v
    return _HOME_TABLE


cdef inline int _key_home(object key, int64_t* value) except -1:
    """Where ``key`` lives, by its type alone when the type is one we know (fast for str and int)."""
    cdef PyTypeObject* t = Py_TYPE(key)
    if t == &PyUnicode_Type:
        return _HOME_DICT
    # int, bool and int subclasses that keep int's equality and hash (not e.g. IntEnum)
    if t == &PyLong_Type or (PyLong_Check(key) and t.tp_richcompare == PyLong_Type.tp_richcompare
                              and t.tp_hash == PyLong_Type.tp_hash):
        return _int_home(key, value)
    if (t == &PyFloat_Type or <PyObject*>t == <PyObject*>_NP_FLOAT64 or <PyObject*>t == <PyObject*>_NP_FLOAT32
            or <PyObject*>t == <PyObject*>_NP_FLOAT16):
        return _float_home(PyFloat_AsDouble(key), value)  # exact for these widths
    # Types whose == never holds against an int: str, bytes and tuple subclasses (namedtuples), and
    # classes with object's identity equality (None, plain objects, Enum members).
    cdef richcmpfunc rc = t.tp_richcompare
    if (rc == PyBaseObject_Type.tp_richcompare or rc == PyUnicode_Type.tp_richcompare
            or rc == PyTuple_Type.tp_richcompare or rc == PyBytes_Type.tp_richcompare):
        return _HOME_DICT
    if <PyObject*>t == <PyObject*>_NP_BOOL:
        value[0] = 1 if key else 0
        return _HOME_TABLE
    if isinstance(key, _NP_INTEGER):  # numpy ints hash and compare as the Python int
        return _int_home(int(key), value)
    return _HOME_UNKNOWN


cdef int _int_hash_preimages(Py_hash_t h, int64_t* out) noexcept nogil:
    """Write every int64 ``v`` with ``hash(v) == h`` to ``out`` (at most 10); return how many.

    ``hash(v)`` is ``|v| mod P`` for ``v >= 0`` and ``-(|v| mod P)`` for ``v < 0``, with -1 mapped to -2.
    """
    cdef int m = 0
    cdef uint64_t r
    if h >= 0 and <uint64_t>h < _INTERN_HASH_MODULUS:
        r = <uint64_t>h
        while r < _INTERN_2_63:  # v = r >= 0
            out[m] = <int64_t>r
            m += 1
            r += _INTERN_HASH_MODULUS
        if h == 0:  # negative multiples of P
            r = _INTERN_HASH_MODULUS
            while r <= _INTERN_2_63:
                out[m] = <int64_t>(0 - r)
                m += 1
                r += _INTERN_HASH_MODULUS
    elif h < 0 and <uint64_t>(-h) < _INTERN_HASH_MODULUS:
        r = <uint64_t>(-h)
        while r <= _INTERN_2_63:  # v = -r, down to INT64_MIN = -2**63
            out[m] = <int64_t>(0 - r)
            m += 1
            r += _INTERN_HASH_MODULUS
        if h == -2:  # the ints hashing to -1 are hashed -2 instead
            r = 1
            while r <= _INTERN_2_63:
                out[m] = <int64_t>(0 - r)
                m += 1
                r += _INTERN_HASH_MODULUS
    return m


cdef class KeyInterner:
    """Hashable keys to dense int64 ids ``0, 1, 2, ...`` in order of first appearance.

    Keys are equal as in a Python dict (``1``, ``1.0``, ``True``, ``np.float64(1.0)``, ``Fraction(1)``
    and ``Decimal(1)`` are one key; the first one seen is the one stored and returned by `key`). Elements
    of numpy arrays are interned as Python scalars (``.tolist()``); integer arrays go through the int64
    table only, bool and float arrays through the object path. An unhashable key raises ``TypeError``
    naming it, and the batch interns nothing.

    Dict semantics assume a well-behaved ``==`` (transitive, consistent with ``hash``), as every numeric
    type of Python and numpy has; for keys of other types whose ``==`` is not transitive the ids may
    differ from those of a plain dict.
    """

    cdef dict _ids  # keys not equal to any int64 value -> id
    cdef list _keys  # id -> first key seen
    cdef vector[_InternSlot] _slots  # int64 value -> id, for every key equal to an int64 value
    cdef int _shift  # 64 - log2(capacity)
    cdef Py_ssize_t _used

    def __init__(self):
        self._ids = {}
        self._keys = []
        self._reset_table(64)

    # --- the int64 table -----------------------------------------------------------------------------

    cdef void _reset_table(self, Py_ssize_t capacity) except *:
        """An empty table of at least ``capacity`` slots (a power of two)."""
        cdef vector[_InternSlot] fresh
        self._allocate(capacity, &fresh)
        self._slots.swap(fresh)
        self._used = 0

    cdef void _allocate(self, Py_ssize_t capacity, vector[_InternSlot]* table) except *:
        """Fill ``table`` with ``capacity`` (rounded up to a power of two) free slots; set the shift."""
        cdef int bits = 0
        cdef _InternSlot free
        free.key = 0
        free.id = _INTERN_EMPTY
        while (<Py_ssize_t>1 << bits) < capacity:
            bits += 1
        table.assign(<size_t>1 << bits, free)  # may raise MemoryError: nothing is changed yet
        self._shift = 64 - bits

    cdef inline Py_ssize_t _slot(self, int64_t key) noexcept nogil:
        """The slot holding ``key`` or the free slot where it would go (linear probing)."""
        cdef Py_ssize_t mask = <Py_ssize_t>self._slots.size() - 1
        cdef Py_ssize_t s = <Py_ssize_t>((<uint64_t>key * _INTERN_FIBONACCI) >> self._shift)
        cdef const _InternSlot* slots = self._slots.data()
        while slots[s].id != _INTERN_EMPTY and slots[s].key != key:
            s = (s + 1) & mask
        return s

    cdef void _insert_new(self, int64_t key, int64_t key_id) except *:
        """Put ``key`` (known to be absent) with ``key_id``, growing to keep the load <= 1/2."""
        if 2 * (self._used + 1) > <Py_ssize_t>self._slots.size():
            self._reserve(self._used + 1)
        cdef Py_ssize_t s = self._slot(key)
        self._slots[s].key = key
        self._slots[s].id = key_id
        self._used += 1

    cdef void _reserve(self, Py_ssize_t n_keys) except *:
        """Grow (to a power of two, at least doubling) so that ``n_keys`` keys keep the load <= 1/2."""
        cdef Py_ssize_t capacity = <Py_ssize_t>self._slots.size()
        cdef vector[_InternSlot] old
        cdef Py_ssize_t i, s
        if 2 * n_keys <= capacity:
            return
        while capacity < 2 * n_keys:
            capacity *= 2
        self._allocate(capacity, &old)
        old.swap(self._slots)  # the new table in place, the old one in `old`
        for i in range(<Py_ssize_t>old.size()):
            if old[i].id != _INTERN_EMPTY:
                s = self._slot(old[i].key)
                self._slots[s] = old[i]

    cdef void _drop_ids_from(self, int64_t n_keys) noexcept nogil:
        """Remove every entry with id ``>= n_keys`` in place, without allocating (a rollback must not
        fail for lack of memory).

        The survivors are then re-placed in one pass around the ring, starting after a slot that was
        free before the removal: no probe path crosses it, so every slot on a survivor's path from its
        home has been re-placed before it, and it moves to the first free slot of that path.
        """
        cdef _InternSlot* slots = self._slots.data()
        cdef Py_ssize_t mask = <Py_ssize_t>self._slots.size() - 1
        cdef Py_ssize_t i, s, t, start = 0
        cdef _InternSlot entry
        while slots[start].id != _INTERN_EMPTY:  # the load is <= 1/2, so there is one
            start += 1
        for i in range(mask + 1):
            if slots[i].id >= n_keys:
                slots[i].id = _INTERN_EMPTY
                self._used -= 1
        for t in range(1, mask + 1):
            i = (start + t) & mask
            if slots[i].id == _INTERN_EMPTY:
                continue
            entry = slots[i]
            slots[i].id = _INTERN_EMPTY
            s = <Py_ssize_t>((<uint64_t>entry.key * _INTERN_FIBONACCI) >> self._shift)
            while slots[s].id != _INTERN_EMPTY:
                s = (s + 1) & mask
            slots[s] = entry

    cdef void _forget_from(self, Py_ssize_t n_keys, Py_ssize_t n_dict, Py_ssize_t n_table) except *:
        """Undo a batch that failed part-way: drop ids ``>= n_keys`` from both indexes.

        The dict keeps insertion order, so the batch's keys are its last entries: popping them needs
        no hashing (a key's ``__hash__`` is not trusted to work twice). The table is swept only when
        the batch added to it.
        """
        while len(self._ids) > n_dict:
            self._ids.popitem()
        if self._used != n_table:
            self._drop_ids_from(n_keys)
        del self._keys[n_keys:]

    # --- interning -----------------------------------------------------------------------------------

    cdef int64_t _add_to_table(self, int64_t value, object key) except -1:
        cdef int64_t key_id = len(self._keys)
        self._insert_new(value, key_id)
        self._keys.append(key)
        return key_id

    cdef int64_t _add_to_dict(self, object key) except -1:
        cdef int64_t key_id = len(self._keys)
        self._ids[key] = key_id
        self._keys.append(key)
        return key_id

    cdef int64_t _table_run(self, const int64_t* values, int64_t* out, Py_ssize_t n,
                            vector[Py_ssize_t]* new_rows) except -1:
        """Ids of ``values[:n]`` into ``out``; a miss is a new key: its row goes to ``new_rows``."""
        cdef int64_t next_id = len(self._keys)
        cdef _InternSlot* slots = self._slots.data()
        cdef Py_ssize_t mask = <Py_ssize_t>self._slots.size() - 1
        cdef int shift = self._shift
        cdef Py_ssize_t i, s, predicted
        cdef int64_t v
        # the GIL stays held: another thread interning into this object could grow the table under us
        for i in range(n):
            if i + _INTERN_PREFETCH_AHEAD < n:
                _intern_prefetch(&slots[(<uint64_t>values[i + _INTERN_PREFETCH_AHEAD] * _INTERN_FIBONACCI) >> shift])
            v = values[i]
            s = <Py_ssize_t>((<uint64_t>v * _INTERN_FIBONACCI) >> shift)
            while slots[s].id != _INTERN_EMPTY and slots[s].key != v:
                s = (s + 1) & mask
            if slots[s].id != _INTERN_EMPTY:
                out[i] = slots[s].id
                continue
            if 2 * (self._used + 1) > mask + 1:
                # Grow for the new keys the rest of the batch will likely bring at this batch's miss rate
                # so far, so that a batch of new keys grows the table two or three times, not log2(n)
                # times; until 1024 rows are seen, at most 8x at once, so that a few misses early in a
                # batch of known keys cost little memory.
                predicted = self._used + 1 + <Py_ssize_t>(
                    <double>(n - i - 1) * <double>new_rows.size() / <double>(i + 1))
                self._reserve(predicted if i >= 1024 else min(predicted, 4 * (mask + 1)))
                slots = self._slots.data()
                mask = <Py_ssize_t>self._slots.size() - 1
                shift = self._shift
                s = self._slot(v)
            slots[s].key = v
            slots[s].id = next_id
            self._used += 1
            out[i] = next_id
            next_id += 1
            new_rows.push_back(i)
        return 0

    cdef _intern_int64(self, column):
        cdef const int64_t[::1] values = column
        cdef Py_ssize_t n = values.shape[0], m
        out_arr = np.empty(n, dtype=np.int64)
        cdef int64_t[::1] out = out_arr
        cdef vector[Py_ssize_t] new_rows
        if n == 0:
            return out_arr
        self._table_run(&values[0], &out[0], n, &new_rows)
        m = <Py_ssize_t>new_rows.size()
        if m == n:
            self._keys.extend(column.tolist())
        elif m > 0:
            rows = np.empty(m, dtype=np.intp)
            memcpy(cnp.PyArray_DATA(<cnp.ndarray>rows), new_rows.data(), m * sizeof(Py_ssize_t))
            self._keys.extend(column[rows].tolist())  # the Python ints of all new keys at once
        return out_arr

    cdef int64_t _intern_unknown(self, Py_ssize_t index, object key) except -1:
        """Id of a key of a type `_key_home` does not know: from the dict, or equal to an int64 value.

        A key equal to the int ``v`` hashes like ``v``, so only the int64 values with the key's hash
        (at most 10) are compared: first with the stored key (as a dict compares its stored key), then,
        for a value not in the table, with the value itself to find the key's home.
        """
        cdef int64_t candidates[10]
        cdef int64_t key_id
        cdef int j, m
        cdef Py_ssize_t s
        try:
            found = self._ids.get(key)
        except TypeError as exc:
            raise _checks.unhashable_key(index, key, exc) from None
        if found is not None:
            return <int64_t>found
        m = _int_hash_preimages(PyObject_Hash(key), candidates)
        for j in range(m):
            s = self._slot(candidates[j])
            key_id = self._slots[s].id
            if key_id != _INTERN_EMPTY:
                # (the id is always < len(_keys) here; checked anyway, as the list is read unchecked)
                if key_id < len(self._keys) and PyObject_RichCompareBool(self._keys[key_id], key, Py_EQ):
                    return key_id
            elif PyObject_RichCompareBool(key, <object>candidates[j], Py_EQ):
                return self._add_to_table(candidates[j], key)
        return self._add_to_dict(key)

    cdef _intern_objects(self, list keys):
        cdef Py_ssize_t i, s, n = len(keys)
        cdef int64_t value = 0, key_id
        cdef int home
        out_arr = np.empty(n, dtype=np.int64)
        cdef int64_t[::1] out = out_arr
        cdef dict ids = self._ids
        for i in range(n):
            key = keys[i]
            home = _key_home(key, &value)
            if home == _HOME_TABLE:
                s = self._slot(value)
                key_id = self._slots[s].id
                out[i] = self._add_to_table(value, key) if key_id == _INTERN_EMPTY else key_id
            elif home == _HOME_DICT:
                try:
                    found = ids.get(key)
                except TypeError as exc:
                    raise _checks.unhashable_key(i, key, exc) from None
                out[i] = self._add_to_dict(key) if found is None else <int64_t>found
            else:
                out[i] = self._intern_unknown(i, key)
        return out_arr

    def intern(self, keys):
        """Ids of ``keys`` (a sequence or 1-D array), assigning new ids to keys not seen before."""
        kind, batch = _checks.key_batch(keys)
        cdef Py_ssize_t n_keys = len(self._keys), n_dict = len(self._ids), n_table = self._used
        try:
            if kind == "int64":
                return self._intern_int64(batch)
            return self._intern_objects(batch)
        except BaseException:
            self._forget_from(n_keys, n_dict, n_table)  # all or nothing
            raise

    def key(self, key_id):
        """The key of ``key_id``."""
        cdef int64_t k = _checks.integer("key_id", key_id)
        if not 0 <= k < len(self._keys):
            raise _checks.key_id_error(k, len(self._keys))
        return self._keys[k]

    def keys_of(self, key_ids):
        """The keys of ``key_ids`` as a list."""
        cdef const int64_t[::1] ids = _checks.int64_column("key_ids", key_ids)
        cdef Py_ssize_t i, n = ids.shape[0], bad = -1
        cdef int64_t n_keys = len(self._keys)
        with nogil:
            for i in range(n):
                if ids[i] < 0 or ids[i] >= n_keys:
                    bad = i
                    break
        if bad >= 0:
            raise _checks.key_id_error(ids[bad], n_keys)
        cdef list keys = self._keys
        return [keys[ids[i]] for i in range(n)]

    def __len__(self):
        return len(self._keys)

    def snapshot(self):
        """``{"keys": [key of id 0, 1, ...]}``: a copy of the id -> key list (pointer copy, no new objects)."""
        return {"keys": self._keys[:]}

    @classmethod
    def restore(cls, snapshot):
        keys = _checks.snapshot_field(snapshot, "KeyInterner", "keys")
        # A list is the canonical form; an int64 array of all-int keys restores without Python objects.
        if not isinstance(keys, list) and not (isinstance(keys, np.ndarray) and keys.dtype == np.int64 and keys.ndim == 1):
            raise TypeError(f"KeyInterner snapshot 'keys' must be a list or an int64 array, got {type(keys).__name__}")
        cdef KeyInterner interner = cls()
        if isinstance(keys, np.ndarray):
            interner._reserve(len(keys))  # every key is new and goes to the table: size it once
        interner.intern(keys)
        if len(interner) != len(keys):
            raise ValueError("KeyInterner snapshot holds equal keys twice; it is corrupt")
        return interner

    def __reduce__(self):
        # pickle through the canonical snapshot, not through the C++ table layout
        return (type(self).restore, (self.snapshot(),))

    def __repr__(self):
        return f"KeyInterner({len(self._keys)} keys)"
