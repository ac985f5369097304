# Key interning (kernel 3 of `_core.pyi`): arbitrary hashable keys to dense int64 ids.
#
# Two indexes are kept consistent: a Python dict (key -> id, Python equality, used for any sequence of
# objects) and an open-addressing table int64 -> id (used for int64 arrays without creating a Python
# object per record). Every int key added by either path is in both; the table may also cache an int
# value that the dict holds under an equal non-int key (``1.0``), so a table miss always asks the dict
# before assigning a new id.

from libcpp.vector cimport vector

cdef int64_t _INTERN_EMPTY = -1
cdef uint64_t _INTERN_FIBONACCI = 0x9E3779B97F4A7C15ULL  # 2**64 / golden ratio: spreads clustered ints


cdef class KeyInterner:
    """Hashable keys to dense int64 ids ``0, 1, 2, ...`` in order of first appearance.

    Keys are equal as in a Python dict (``1``, ``1.0`` and ``True`` are one key; the first one seen is
    the one stored and returned by `key`). Elements of numpy arrays are interned as Python scalars
    (``.tolist()``); integer arrays go through the int64 table, bool and float arrays through the dict.
    An unhashable key raises ``TypeError`` naming it, and the batch interns nothing.
    """

    cdef dict _ids
    cdef list _keys
    cdef vector[int64_t] _slot_keys
    cdef vector[int64_t] _slot_ids  # _INTERN_EMPTY marks a free slot
    cdef int _shift  # 64 - log2(capacity)
    cdef Py_ssize_t _used

    def __init__(self):
        self._ids = {}
        self._keys = []
        self._reset_table(64)

    # --- the int64 table -----------------------------------------------------------------------------

    cdef void _reset_table(self, Py_ssize_t capacity) except *:
        cdef int bits = 0
        while (<Py_ssize_t>1 << bits) < capacity:
            bits += 1
        self._slot_keys.assign(<size_t>1 << bits, 0)
        self._slot_ids.assign(<size_t>1 << bits, _INTERN_EMPTY)
        self._shift = 64 - bits
        self._used = 0

    cdef inline Py_ssize_t _slot(self, int64_t key) noexcept nogil:
        """The slot holding ``key`` or the free slot where it would go (linear probing)."""
        cdef Py_ssize_t mask = <Py_ssize_t>self._slot_ids.size() - 1
        cdef Py_ssize_t s = <Py_ssize_t>((<uint64_t>key * _INTERN_FIBONACCI) >> self._shift)
        cdef const int64_t* ids = self._slot_ids.data()
        cdef const int64_t* keys = self._slot_keys.data()
        while ids[s] != _INTERN_EMPTY and keys[s] != key:
            s = (s + 1) & mask
        return s

    cdef void _table_put(self, int64_t key, int64_t key_id) except *:
        cdef Py_ssize_t s = self._slot(key)
        if self._slot_ids[s] == _INTERN_EMPTY:
            if 2 * (self._used + 1) > <Py_ssize_t>self._slot_ids.size():  # keep the load <= 1/2
                self._grow(2 * <Py_ssize_t>self._slot_ids.size())
                s = self._slot(key)
            self._used += 1
        self._slot_keys[s] = key
        self._slot_ids[s] = key_id

    cdef void _grow(self, Py_ssize_t capacity) except *:
        cdef vector[int64_t] old_keys = self._slot_keys
        cdef vector[int64_t] old_ids = self._slot_ids
        cdef Py_ssize_t i, s
        self._reset_table(capacity)
        for i in range(<Py_ssize_t>old_ids.size()):
            if old_ids[i] != _INTERN_EMPTY:
                s = self._slot(old_keys[i])
                self._slot_keys[s] = old_keys[i]
                self._slot_ids[s] = old_ids[i]
                self._used += 1

    cdef void _forget_from(self, Py_ssize_t n_keys) except *:
        """Drop ids ``>= n_keys`` from both indexes (undo a batch that failed part-way)."""
        cdef vector[int64_t] old_keys = self._slot_keys
        cdef vector[int64_t] old_ids = self._slot_ids
        cdef Py_ssize_t i, s
        for key in self._keys[n_keys:]:
            del self._ids[key]
        del self._keys[n_keys:]
        self._reset_table(<Py_ssize_t>old_ids.size())
        for i in range(<Py_ssize_t>old_ids.size()):
            if old_ids[i] != _INTERN_EMPTY and old_ids[i] < n_keys:
                s = self._slot(old_keys[i])
                self._slot_keys[s] = old_keys[i]
                self._slot_ids[s] = old_ids[i]
                self._used += 1

    # --- interning -----------------------------------------------------------------------------------

    cdef int64_t _new_id(self, object key) except -1:
        cdef int64_t key_id = len(self._keys)
        self._ids[key] = key_id
        self._keys.append(key)
        return key_id

    cdef int64_t _int_miss(self, int64_t value) except -1:
        """Id of an int64 value the table does not hold: from the dict (``1.0``, ``True``) or new."""
        key = <object>value
        found = self._ids.get(key)
        cdef int64_t key_id = self._new_id(key) if found is None else <int64_t>found
        self._table_put(value, key_id)
        return key_id

    cdef Py_ssize_t _lookup_run(self, const int64_t* values, int64_t* out, Py_ssize_t i,
                                Py_ssize_t n) noexcept nogil:
        """Fill ``out`` from the table from row ``i`` until the first miss; return that row (or n)."""
        cdef Py_ssize_t mask = <Py_ssize_t>self._slot_ids.size() - 1
        cdef int shift = self._shift
        cdef const int64_t* ids = self._slot_ids.data()
        cdef const int64_t* keys = self._slot_keys.data()
        cdef Py_ssize_t s
        cdef int64_t v
        while i < n:
            v = values[i]
            s = <Py_ssize_t>((<uint64_t>v * _INTERN_FIBONACCI) >> shift)
            while ids[s] != _INTERN_EMPTY and keys[s] != v:
                s = (s + 1) & mask
            if ids[s] == _INTERN_EMPTY:
                return i
            out[i] = ids[s]
            i += 1
        return n

    cdef _intern_int64(self, const int64_t[::1] values):
        cdef Py_ssize_t i = 0, n = values.shape[0]
        out_arr = np.empty(n, dtype=np.int64)
        cdef int64_t[::1] out = out_arr
        if n == 0:
            return out_arr
        while i < n:
            # the GIL stays held: another thread interning into this object could grow the table
            # under the running lookup
            i = self._lookup_run(&values[0], &out[0], i, n)
            if i < n:
                out[i] = self._int_miss(values[i])
                i += 1
        return out_arr

    cdef _intern_objects(self, list keys):
        cdef Py_ssize_t i, n = len(keys)
        out_arr = np.empty(n, dtype=np.int64)
        cdef int64_t[::1] out = out_arr
        cdef dict ids = self._ids
        for i in range(n):
            key = keys[i]
            try:
                found = ids.get(key)
            except TypeError as exc:
                raise _checks.unhashable_key(i, key, exc) from None
            if found is None:
                out[i] = self._new_id(key)
                if isinstance(key, (int, np.integer)) and INT64_MIN <= key <= INT64_MAX:
                    self._table_put(key, out[i])
            else:
                out[i] = <int64_t>found
        return out_arr

    def intern(self, keys):
        """Ids of ``keys`` (a sequence or 1-D array), assigning new ids to keys not seen before."""
        kind, batch = _checks.key_batch(keys)
        cdef Py_ssize_t n_before = len(self._keys)
        try:
            if kind == "int64":
                return self._intern_int64(batch)
            return self._intern_objects(batch)
        except BaseException:
            self._forget_from(n_before)  # all or nothing
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
        return {"keys": list(self._keys)}

    @classmethod
    def restore(cls, snapshot):
        keys = _checks.snapshot_field(snapshot, "KeyInterner", "keys")
        # A list is the canonical form; an int64 array of all-int keys restores without Python objects.
        if not isinstance(keys, list) and not (isinstance(keys, np.ndarray) and keys.dtype == np.int64 and keys.ndim == 1):
            raise TypeError(f"KeyInterner snapshot 'keys' must be a list or an int64 array, got {type(keys).__name__}")
        interner = cls()
        interner.intern(keys)
        if len(interner) != len(keys):
            raise ValueError("KeyInterner snapshot holds equal keys twice; it is corrupt")
        return interner

    def __reduce__(self):
        # pickle through the canonical snapshot, not through the C++ table layout
        return (type(self).restore, (self.snapshot(),))

    def __repr__(self):
        return f"KeyInterner({len(self._keys)} keys)"
