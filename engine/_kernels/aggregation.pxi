# Windowed aggregation: `WindowAggTable`, an open-addressing hash table keyed by (key_id, window start)
# holding count, and per value column sum, min and max.
#
# Layout: one flat buffer of `capacity` slots (capacity a power of two), each slot an `_AggHead`
# (key, start, count, flags) followed by `n_values` sums, `n_values` mins and `n_values` maxs
# (array of structs: one record's update touches one or two cache lines). `count == 0` marks an empty
# slot (a live window always holds at least one record). Linear probing; the home slot is the TOP
# bits of a splitmix64 hash, so the table is ordered by hash and growing or shrinking walks the old
# and the new buffer in the same direction (a near-sequential merge instead of random writes).
# Purge rebuilds the table from its survivors (no tombstones), right-sized, so memory shrinks.

from libc.string cimport memcpy
from libcpp.vector cimport vector
from libcpp.pair cimport pair
from libcpp.algorithm cimport sort as _agg_std_sort

cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define ENGINE_AGG_PREFETCH(p) __builtin_prefetch((const void*)(p), 1, 3)
    #else
    #define ENGINE_AGG_PREFETCH(p) ((void)(p))
    #endif
    """
    void _agg_prefetch "ENGINE_AGG_PREFETCH"(const void* p) noexcept nogil

cdef extern from *:
    """
    /* Zeroed table memory. Large tables come straight from mmap with transparent huge pages
       requested, so first touching a 60 MB table costs ~30 page faults instead of ~15,000. */
    #include <stdlib.h>
    #if defined(__linux__)
    #include <sys/mman.h>
    #define ENGINE_AGG_MMAP_MIN ((size_t)4 << 20)
    static void* engine_agg_alloc(size_t bytes) {
        if (bytes < ENGINE_AGG_MMAP_MIN) return calloc(bytes, 1);
        void* p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return NULL;
    #ifdef MADV_HUGEPAGE
        madvise(p, bytes, MADV_HUGEPAGE);
    #endif
        return p;
    }
    static void engine_agg_free(void* p, size_t bytes) {
        if (p == NULL) return;
        if (bytes < ENGINE_AGG_MMAP_MIN) free(p); else munmap(p, bytes);
    }
    #else
    static void* engine_agg_alloc(size_t bytes) { return calloc(bytes, 1); }
    static void engine_agg_free(void* p, size_t bytes) { (void)bytes; free(p); }
    #endif
    """
    void* _agg_alloc "engine_agg_alloc"(size_t nbytes) noexcept nogil
    void _agg_free "engine_agg_free"(void* p, size_t nbytes) noexcept nogil


cdef struct _AggHead:
    int64_t key
    int64_t start
    int64_t count      # records added; 0 = empty slot
    int64_t flags      # _AGG_DIRTY | _AGG_EMITTED

cdef enum:
    _AGG_DIRTY = 1     # has additions not emitted yet
    _AGG_EMITTED = 2   # fired at least once
    _AGG_MIN_BITS = 4  # smallest table: 16 slots
    _AGG_AHEAD = 16    # records hashed and prefetched ahead of the one being inserted (power of two)
    _AGG_RADIX_MIN = 512  # below this many windows, std::sort beats the radix sort


cdef inline uint64_t _agg_hash(int64_t key, int64_t start) noexcept nogil:
    """splitmix64 finaliser of a linear combination of key and start (a bijection after the mix)."""
    cdef uint64_t x = <uint64_t>start * <uint64_t>0x9E3779B97F4A7C15 + <uint64_t>key
    x = (x ^ (x >> 30)) * <uint64_t>0xBF58476D1CE4E5B9
    x = (x ^ (x >> 27)) * <uint64_t>0x94D049BB133111EB
    return x ^ (x >> 31)


cdef inline _AggHead* _agg_probe(char* slots, Py_ssize_t stride, uint64_t mask, int shift,
                                 int64_t key, int64_t start, uint64_t h) noexcept nogil:
    """The slot holding (key, start), or the empty slot where it belongs."""
    cdef uint64_t i = h >> shift
    cdef _AggHead* hd
    while True:
        hd = <_AggHead*>(slots + i * stride)
        if hd.count == 0 or (hd.key == key and hd.start == start):
            return hd
        i = (i + 1) & mask


cdef inline int _agg_bit_length(uint64_t x) noexcept nogil:
    cdef int n = 0
    while x:
        x >>= 1
        n += 1
    return n


cdef inline int _agg_bits_for(int64_t n) noexcept nogil:
    """Table size (log2) holding ``n`` windows at load <= 1/2."""
    cdef int bits = _AGG_MIN_BITS
    while (<int64_t>1 << bits) < 2 * n:
        bits += 1
    return bits


cdef void _agg_radix_sort(vector[uint64_t]& a, int lo_bit, int nbits) noexcept nogil:
    """Stable LSD radix sort of ``a`` on bits ``[lo_bit, lo_bit + nbits)`` (digits of <= 11 bits)."""
    cdef size_t n = a.size(), i
    cdef int passes = (nbits + 10) // 11
    cdef int width = (nbits + passes - 1) // passes
    cdef size_t buckets = (<size_t>1) << width
    cdef uint64_t digit_mask = buckets - 1
    cdef vector[size_t] counts
    cdef vector[uint64_t] tmp
    cdef uint64_t* src = a.data()
    cdef uint64_t* dst
    cdef uint64_t* swap
    cdef size_t* c
    cdef size_t total, cnt, b
    cdef int p, shift
    cdef uint64_t x
    counts.resize(buckets * passes, 0)
    tmp.resize(n)
    dst = tmp.data()
    for i in range(n):
        x = src[i]
        for p in range(passes):
            counts[p * buckets + ((x >> (lo_bit + p * width)) & digit_mask)] += 1
    for p in range(passes):
        c = &counts[p * buckets]
        shift = lo_bit + p * width
        if c[(src[0] >> shift) & digit_mask] == n:
            continue  # every element has the same digit: this pass would not move anything
        total = 0
        for b in range(buckets):
            cnt = c[b]
            c[b] = total
            total += cnt
        for i in range(n):
            x = src[i]
            b = (x >> shift) & digit_mask
            dst[c[b]] = x
            c[b] += 1
        swap = src
        src = dst
        dst = swap
    if src != a.data():
        memcpy(a.data(), src, n * sizeof(uint64_t))


cdef class WindowAggTable:
    """Open-addressing hash table keyed by ``(key_id, window start)`` of count, sum, min and max.

    ``WindowAggTable(size, lateness, n_values)``: windows are ``[start, start + size)``; ``lateness``
    is the allowed lateness; ``n_values`` the number of float64 value columns (0 = count only).

    * ``add(key_ids, starts, values)`` adds record ``i`` (``values[i]`` of shape ``(n_values,)``) to
      window ``(key_ids[i], starts[i])``. The caller assigns windows and filters late records first.
      A start whose end ``start + size`` overflows int64 raises ``ValueError`` before anything is added.
      Sums propagate NaN; min and max ignore NaN (NaN only while every value seen is NaN).
    * ``fire(W)`` returns `FiredWindows` for every window with ``W >= end - 1`` that has additions not
      yet emitted (first firing, and again after allowed-late additions), sorted by
      ``(end, start, key_id)``; ``sums``/``mins``/``maxs`` are float64 of shape ``(m, n_values)``.
    * ``purge(W)`` drops windows with ``W >= end - 1 + lateness`` (saturating) and returns how many.
      A window with additions never emitted is never dropped silently: if ``purge(W)`` would drop one,
      it raises ``ValueError`` and changes nothing (call ``fire(W)`` first).
    * ``fire`` and ``purge`` are O(1) when nothing is due (the smallest end among dirty and among live
      windows is tracked exactly); otherwise O(capacity), plus sorting what fires.
    * Grows without limit (rehash at load 3/4); each purge rebuilds the table right-sized, so memory
      shrinks once windows are purged (``nbytes``).
    * ``snapshot()`` is canonical (live windows sorted by ``(start, key_id)``, with their ``emitted``
      and ``dirty`` flags), identical to the one of ``engine._reference.WindowAggTable``.
    """

    cdef int64_t _size
    cdef int64_t _lateness
    cdef Py_ssize_t _n_values
    cdef Py_ssize_t _stride          # bytes per slot
    cdef char* _slots
    cdef int _bits                   # capacity == 1 << _bits
    cdef int64_t _live               # windows held
    cdef int64_t _pending            # windows with _AGG_DIRTY
    cdef int64_t _min_live_end       # exact smallest end of live windows (INT64_MAX if none)
    cdef int64_t _min_pending_end    # exact smallest end of dirty windows (INT64_MAX if none)

    def __cinit__(self):
        self._slots = NULL

    def __init__(self, size, lateness, n_values):
        self._size = _checks.positive("size", size)
        self._lateness = _checks.non_negative("lateness", lateness)
        self._n_values = _checks.value_columns("n_values", n_values)
        self._stride = sizeof(_AggHead) + 3 * self._n_values * sizeof(double)
        self._live = 0
        self._pending = 0
        self._min_live_end = C_INT64_MAX
        self._min_pending_end = C_INT64_MAX
        self._bits = _AGG_MIN_BITS
        self._slots = <char*>_agg_alloc(((<size_t>1) << self._bits) * self._stride)
        if self._slots == NULL:
            raise MemoryError("WindowAggTable: cannot allocate the table")

    def __dealloc__(self):
        _agg_free(self._slots, ((<size_t>1) << self._bits) * self._stride)

    @property
    def size(self):
        return self._size

    @property
    def lateness(self):
        return self._lateness

    @property
    def n_values(self):
        return self._n_values

    def __len__(self):
        return self._live

    @property
    def nbytes(self):
        """Bytes held by the slot buffer (the table's memory; the object header is not counted)."""
        return ((<int64_t>1) << self._bits) * self._stride

    # --- internals ---------------------------------------------------------------------------------

    cdef int _rehash(self, int bits) except -1 nogil:
        """Move every live window into a fresh buffer of ``1 << bits`` slots."""
        cdef size_t old_cap = (<size_t>1) << self._bits, i
        cdef uint64_t mask = ((<uint64_t>1) << bits) - 1
        cdef int shift = 64 - bits
        cdef Py_ssize_t stride = self._stride
        cdef char* fresh = <char*>_agg_alloc(((<size_t>1) << bits) * stride)
        cdef _AggHead* hd
        cdef _AggHead* to
        if fresh == NULL:
            with gil:
                raise MemoryError(f"WindowAggTable: cannot allocate {1 << bits} slots")
        for i in range(old_cap):
            hd = <_AggHead*>(self._slots + i * stride)
            if hd.count == 0:
                continue
            to = _agg_probe(fresh, stride, mask, shift, hd.key, hd.start, _agg_hash(hd.key, hd.start))
            memcpy(to, hd, stride)
        _agg_free(self._slots, old_cap * stride)
        self._slots = fresh
        self._bits = bits
        return 0

    cdef int _add(self, const int64_t* keys, const int64_t* starts, const double* vals,
                  Py_ssize_t n) except -1 nogil:
        cdef uint64_t ring[_AGG_AHEAD]
        cdef Py_ssize_t i, j, nv = self._n_values, stride = self._stride
        cdef uint64_t h, h2
        cdef uint64_t mask = ((<uint64_t>1) << self._bits) - 1
        cdef int shift = 64 - self._bits
        cdef int64_t grow_at = (<int64_t>3 << self._bits) // 4
        cdef int64_t end
        cdef _AggHead* hd
        cdef double* acc
        cdef const double* row
        cdef double v
        # Hash and prefetch _AGG_AHEAD records ahead: the table is far larger than the caches, and
        # independent prefetches overlap the memory latency of consecutive inserts.
        for i in range(min(n, <Py_ssize_t>_AGG_AHEAD)):
            ring[i] = _agg_hash(keys[i], starts[i])
            _agg_prefetch(self._slots + (ring[i] >> shift) * stride)
        for i in range(n):
            h = ring[i & (_AGG_AHEAD - 1)]
            if i + _AGG_AHEAD < n:
                h2 = _agg_hash(keys[i + _AGG_AHEAD], starts[i + _AGG_AHEAD])
                ring[i & (_AGG_AHEAD - 1)] = h2
                _agg_prefetch(self._slots + (h2 >> shift) * stride)
            hd = _agg_probe(self._slots, stride, mask, shift, keys[i], starts[i], h)
            row = vals + i * nv
            acc = <double*>(hd + 1)
            if hd.count == 0:
                if self._live >= grow_at:
                    self._rehash(self._bits + 1)
                    mask = ((<uint64_t>1) << self._bits) - 1
                    shift = 64 - self._bits
                    grow_at = (<int64_t>3 << self._bits) // 4
                    hd = _agg_probe(self._slots, stride, mask, shift, keys[i], starts[i], h)
                    acc = <double*>(hd + 1)
                hd.key = keys[i]
                hd.start = starts[i]
                hd.count = 1
                hd.flags = _AGG_DIRTY
                for j in range(nv):
                    acc[j] = row[j]
                    acc[nv + j] = row[j]
                    acc[2 * nv + j] = row[j]
                self._live += 1
                self._pending += 1
                end = starts[i] + self._size
                if end < self._min_live_end:
                    self._min_live_end = end
                if end < self._min_pending_end:
                    self._min_pending_end = end
                continue
            hd.count += 1
            for j in range(nv):
                v = row[j]
                acc[j] += v
                # NaN-ignoring min/max; the slot holds NaN only while every value seen was NaN
                if v < acc[nv + j] or acc[nv + j] != acc[nv + j]:
                    acc[nv + j] = v
                if v > acc[2 * nv + j] or acc[2 * nv + j] != acc[2 * nv + j]:
                    acc[2 * nv + j] = v
            if not (hd.flags & _AGG_DIRTY):
                hd.flags |= _AGG_DIRTY
                self._pending += 1
                end = hd.start + self._size
                if end < self._min_pending_end:
                    self._min_pending_end = end
        return 0

    cdef int64_t _collect(self, vector[uint64_t]& order, bint due_only, int64_t watermark) noexcept nogil:
        """Fill ``order`` with the slots of the windows to emit, sorted by ``(start, key_id)``.

        ``due_only``: dirty windows with ``end - 1 <= watermark`` (and return the smallest end among
        the dirty windows left out, INT64_MAX if none); otherwise every live window.
        """
        cdef size_t cap = (<size_t>1) << self._bits, i
        cdef Py_ssize_t stride = self._stride
        cdef _AggHead* hd
        cdef int64_t end, next_pending = C_INT64_MAX
        cdef int64_t smin = C_INT64_MAX, smax = C_INT64_MIN, kmin = C_INT64_MAX, kmax = C_INT64_MIN
        cdef uint64_t sspan, kspan, comp, comp_max, slot_mask
        cdef int cbits, sbits = self._bits
        cdef size_t k, m
        cdef vector[pair[pair[int64_t, int64_t], uint64_t]] fallback
        order.clear()
        for i in range(cap):
            hd = <_AggHead*>(self._slots + i * stride)
            if hd.count == 0:
                continue
            if due_only:
                if not (hd.flags & _AGG_DIRTY):
                    continue
                end = hd.start + self._size
                if end - 1 > watermark:
                    if end < next_pending:
                        next_pending = end
                    continue
            order.push_back(i)
            if hd.start < smin:
                smin = hd.start
            if hd.start > smax:
                smax = hd.start
            if hd.key < kmin:
                kmin = hd.key
            if hd.key > kmax:
                kmax = hd.key
        m = order.size()
        if m <= 1:
            return next_pending
        # Sort key: composite c = (start - smin) * (kspan + 1) + (key - kmin) packed above the slot
        # index, when it fits in 64 bits (it does for any realistic batch of windows); the order of c
        # is the (start, key_id) order, and the slot bits ride along.
        sspan = <uint64_t>smax - <uint64_t>smin
        kspan = <uint64_t>kmax - <uint64_t>kmin
        cbits = 65
        if kspan != <uint64_t>0xFFFFFFFFFFFFFFFF and sspan <= (<uint64_t>0xFFFFFFFFFFFFFFFF - kspan) // (kspan + 1):
            comp_max = sspan * (kspan + 1) + kspan
            cbits = _agg_bit_length(comp_max)
        if cbits + sbits <= 64:
            for k in range(m):
                hd = <_AggHead*>(self._slots + order[k] * stride)
                comp = (<uint64_t>hd.start - <uint64_t>smin) * (kspan + 1) + (<uint64_t>hd.key - <uint64_t>kmin)
                order[k] = (comp << sbits) | order[k]
            if m < _AGG_RADIX_MIN:
                _agg_std_sort(order.begin(), order.end())
            else:
                _agg_radix_sort(order, sbits, cbits)
            slot_mask = ((<uint64_t>1) << sbits) - 1
            for k in range(m):
                order[k] = order[k] & slot_mask
        else:
            fallback.resize(m)
            for k in range(m):
                hd = <_AggHead*>(self._slots + order[k] * stride)
                fallback[k].first.first = hd.start
                fallback[k].first.second = hd.key
                fallback[k].second = order[k]
            _agg_std_sort(fallback.begin(), fallback.end())
            for k in range(m):
                order[k] = fallback[k].second
        return next_pending

    cdef int64_t _purge(self, int64_t watermark) except -1 nogil:
        cdef size_t cap = (<size_t>1) << self._bits, i
        cdef _AggHead* hd
        cdef int64_t end, dropped = 0, next_live = C_INT64_MAX
        cdef int bits
        for i in range(cap):
            hd = <_AggHead*>(self._slots + i * self._stride)
            if hd.count == 0:
                continue
            end = hd.start + self._size
            if watermark >= sat_add(end - 1, self._lateness):
                hd.count = 0
                dropped += 1
            elif end < next_live:
                next_live = end
        self._live -= dropped
        self._min_live_end = next_live
        # Linear probing has no tombstones here: rebuild from the survivors, smaller when the load
        # fell below 1/8 (the 1/8 .. 3/4 band keeps a steady stream from resizing back and forth).
        bits = self._bits
        if self._live < ((<int64_t>1 << bits) // 8):
            bits = _agg_bits_for(self._live)
        self._rehash(bits)
        return dropped

    cdef object _gather(self, vector[uint64_t]& order, bint mark_emitted):
        """Arrays of the windows in ``order``: key_ids, starts, ends, counts, sums, mins, maxs, emitted, dirty."""
        cdef Py_ssize_t m = order.size(), nv = self._n_values, r, j
        cdef Py_ssize_t stride = self._stride
        key_ids = np.empty(m, dtype=np.int64)
        starts = np.empty(m, dtype=np.int64)
        ends = np.empty(m, dtype=np.int64)
        counts = np.empty(m, dtype=np.int64)
        sums = np.empty((m, nv), dtype=np.float64)
        mins = np.empty((m, nv), dtype=np.float64)
        maxs = np.empty((m, nv), dtype=np.float64)
        emitted = np.empty(m, dtype=np.bool_)
        dirty = np.empty(m, dtype=np.bool_)
        cdef int64_t* ok = <int64_t*>cnp.PyArray_DATA(key_ids)
        cdef int64_t* os = <int64_t*>cnp.PyArray_DATA(starts)
        cdef int64_t* oe = <int64_t*>cnp.PyArray_DATA(ends)
        cdef int64_t* oc = <int64_t*>cnp.PyArray_DATA(counts)
        cdef double* osum = <double*>cnp.PyArray_DATA(sums)
        cdef double* omin = <double*>cnp.PyArray_DATA(mins)
        cdef double* omax = <double*>cnp.PyArray_DATA(maxs)
        cdef uint8_t* oem = <uint8_t*>cnp.PyArray_DATA(emitted)
        cdef uint8_t* odi = <uint8_t*>cnp.PyArray_DATA(dirty)
        cdef _AggHead* hd
        cdef double* acc
        with nogil:
            for r in range(m):
                if r + 8 < m:
                    _agg_prefetch(self._slots + order[r + 8] * stride)
                hd = <_AggHead*>(self._slots + order[r] * stride)
                acc = <double*>(hd + 1)
                ok[r] = hd.key
                os[r] = hd.start
                oe[r] = hd.start + self._size
                oc[r] = hd.count
                for j in range(nv):
                    osum[r * nv + j] = acc[j]
                    omin[r * nv + j] = acc[nv + j]
                    omax[r * nv + j] = acc[2 * nv + j]
                oem[r] = (hd.flags & _AGG_EMITTED) != 0
                odi[r] = (hd.flags & _AGG_DIRTY) != 0
                if mark_emitted:
                    hd.flags = _AGG_EMITTED
        return key_ids, starts, ends, counts, sums, mins, maxs, emitted, dirty

    # --- public API --------------------------------------------------------------------------------

    def add(self, key_ids, starts, values):
        """Add record ``i`` to window ``(key_ids[i], starts[i])`` with ``values[i]`` (see the class doc)."""
        k_arr = _checks.int64_column("key_ids", key_ids)
        s_arr = _checks.int64_column("starts", starts)
        cdef Py_ssize_t n = _checks.same_length(key_ids=k_arr, starts=s_arr)
        v_arr = _checks.float64_matrix("values", values, n, self._n_values)
        _checks.window_ends_fit("starts", s_arr, self._size)
        if n == 0:
            return
        cdef const int64_t* kp = <const int64_t*>cnp.PyArray_DATA(k_arr)
        cdef const int64_t* sp = <const int64_t*>cnp.PyArray_DATA(s_arr)
        cdef const double* vp = <const double*>cnp.PyArray_DATA(v_arr)
        with nogil:
            self._add(kp, sp, vp, n)

    def fire(self, watermark):
        """Windows with ``watermark >= end - 1`` and unemitted additions, sorted by (end, start, key_id)."""
        cdef int64_t w = _checks.integer("watermark", watermark)
        cdef vector[uint64_t] order
        cdef int64_t next_pending = C_INT64_MAX
        if self._pending == 0 or w < self._min_pending_end - 1:
            order.clear()
        else:
            with nogil:
                next_pending = self._collect(order, True, w)
        out = self._gather(order, True)
        if order.size():
            self._pending -= order.size()
            self._min_pending_end = next_pending
        return FiredWindows(*out[:7])

    def purge(self, watermark):
        """Drop windows with ``watermark >= end - 1 + lateness``; return how many were dropped."""
        cdef int64_t w = _checks.integer("watermark", watermark)
        cdef int64_t dropped
        if self._live == 0 or w < sat_add(self._min_live_end - 1, self._lateness):
            return 0
        if self._pending and w >= sat_add(self._min_pending_end - 1, self._lateness):
            raise ValueError(
                f"purge(watermark={w}) would drop windows with additions not yet emitted "
                f"(earliest end {self._min_pending_end}); call fire(watermark) before purge(watermark)"
            )
        with nogil:
            dropped = self._purge(w)
        return dropped

    def snapshot(self):
        """Canonical state: live windows sorted by (start, key_id) with their flags (see `_core.pyi`)."""
        cdef vector[uint64_t] order
        with nogil:
            self._collect(order, False, 0)
        key_ids, starts, _, counts, sums, mins, maxs, emitted, dirty = self._gather(order, False)
        return {
            "size": self._size,
            "lateness": self._lateness,
            "n_values": self._n_values,
            "key_ids": key_ids,
            "starts": starts,
            "counts": counts,
            "sums": sums,
            "mins": mins,
            "maxs": maxs,
            "emitted": emitted,
            "dirty": dirty,
        }

    @classmethod
    def restore(cls, snapshot):
        """A table equal to the one that produced ``snapshot`` (from either implementation)."""
        size, lateness, n_values, key_ids, starts, counts, sums, mins, maxs, emitted, dirty = (
            _checks.window_agg_snapshot(snapshot)
        )
        cdef WindowAggTable table = cls(size, lateness, n_values)
        cdef Py_ssize_t m = len(key_ids), r, j, nv = n_values
        cdef const int64_t* kp = <const int64_t*>cnp.PyArray_DATA(key_ids)
        cdef const int64_t* sp = <const int64_t*>cnp.PyArray_DATA(starts)
        cdef const int64_t* cp = <const int64_t*>cnp.PyArray_DATA(counts)
        cdef const double* sump = <const double*>cnp.PyArray_DATA(sums)
        cdef const double* minp = <const double*>cnp.PyArray_DATA(mins)
        cdef const double* maxp = <const double*>cnp.PyArray_DATA(maxs)
        cdef const uint8_t* emp = <const uint8_t*>cnp.PyArray_DATA(emitted)
        cdef const uint8_t* dip = <const uint8_t*>cnp.PyArray_DATA(dirty)
        cdef _AggHead* hd
        cdef double* acc
        cdef int64_t end
        table._rehash(_agg_bits_for(m))
        cdef uint64_t mask = ((<uint64_t>1) << table._bits) - 1
        cdef int shift = 64 - table._bits
        with nogil:
            for r in range(m):
                hd = _agg_probe(table._slots, table._stride, mask, shift, kp[r], sp[r], _agg_hash(kp[r], sp[r]))
                acc = <double*>(hd + 1)
                hd.key = kp[r]
                hd.start = sp[r]
                hd.count = cp[r]
                hd.flags = (_AGG_EMITTED if emp[r] else 0) | (_AGG_DIRTY if dip[r] else 0)
                for j in range(nv):
                    acc[j] = sump[r * nv + j]
                    acc[nv + j] = minp[r * nv + j]
                    acc[2 * nv + j] = maxp[r * nv + j]
                end = sp[r] + table._size
                if end < table._min_live_end:
                    table._min_live_end = end
                if dip[r]:
                    table._pending += 1
                    if end < table._min_pending_end:
                        table._min_pending_end = end
            table._live = m
        return table
