# Windowed aggregation: `WindowAggTable`, an open-addressing hash table keyed by (key_id, window start)
# holding count, and per value column sum, min and max.
#
# Layout (two buffers):
# * entries: the live windows, dense (no holes), in insertion order until a purge moves some. Each is an `_AggHead` (key,
#   start, and the count with the dirty/emitted flags in its top bits: 24 bytes) followed by
#   `n_values` sums, mins and maxs, so one record's update touches one or two cache lines. Grows by
#   doubling (large blocks are remapped with mremap, not copied). Purge deletes the dropped windows'
#   index slots and moves the last entries into their places while few are dropped (O(dropped) index
#   work: with partitions read unevenly a watermark step drops ~10% of ~250,000 live windows, and
#   rebuilding the whole index for that was most of the purge); when many are dropped or the buffers
#   shrink it compacts the entries in order, rebuilds the index and gives memory back. A dropped
#   table's large block is parked (one, at most 64 MiB, MADV_FREE) for the next table's entries: no
#   fresh pages to fault in and clear.
# * index: 2^bits uint64 slots, linear probing. A slot is 0 (empty) or ``tag << 32 | (entry + 1)``
#   with ``tag`` the top 32 bits of the splitmix64 hash of (key, start). The home slot is the top
#   ``bits`` bits of the hash, so the index is ordered by hash: it is rebuilt when it grows without
#   touching the entries (a near-sequential merge), and the tag rejects nearly every foreign entry
#   before its cache line is read. 8 bytes per slot keep the index mostly in cache.
# add: one loop (`_add_run`) with the table's state in locals. Small batches go record by record
# with a two-stage prefetch pipeline; large ones are first partitioned (stably) by the top hash bits,
# so each partition works on one cache-sized stretch of the index and of the entries it creates
# (index slots are still prefetched: the stretch is cold when its partition starts). Per window,
# records are always added in batch order, so sums are bit-identical to the twin's.
# fire/purge/snapshot scan the dense entries (O(live), never O(capacity)) and are O(1) when nothing
# is due; fired windows are ordered by an LSD radix sort of a packed (start, key_id, entry) integer,
# in which a start is packed as its number of window sizes past the smallest start while every start
# is on that grid (tumbling windows), which keeps the key dense (two radix passes, not three, for the
# benchmark's million windows), then gathered from the entries in that order.
# Tried, measured and left out: an MSD bucket pass that copies the entries in their own
# order instead of gathering them at random (slower here: the scatter to many streams and the fresh
# scratch memory cost more than the random reads), entries partitioned by start instead of hash
# (fire ~10% faster on one big batch, but the index loses its locality for streams), and huge-page
# scratch for the partitioned add (malloc hands the same blocks back between batches).

from libc.stdlib cimport malloc, calloc, free
from libc.string cimport memcpy, memset
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
    /* Zeroed memory for the table and its large temporaries. Large blocks come straight from mmap
       with transparent huge pages requested, so first touching one costs a few page faults instead
       of thousands, and grow with mremap (pages are remapped, not copied). */
    #include <stdlib.h>
    #include <string.h>
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
    /* One retired entries mapping (of a table that was freed) is kept for the next table that
       grows its entries to a large block: entries need no zeroing, so reusing it saves faulting in
       and clearing fresh pages (a create-fill-drop loop of big tables, as a restore or a batch job
       does, would otherwise pay that every time; glibc gives numpy arrays the same reuse). The
       parked pages are MADV_FREE: the kernel may still reclaim them under memory pressure. At
       most ENGINE_AGG_SPARE_MAX bytes are parked; the slot is taken and filled atomically. */
    #define ENGINE_AGG_SPARE_MAX ((size_t)64 << 20)
    #define ENGINE_AGG_PAGE ((size_t)4096)
    static void* engine_agg_spare = NULL;  /* its first word holds its size in bytes */
    static void engine_agg_retire(void* p, size_t bytes) {
    #if defined(__GNUC__) || defined(__clang__)
        if (p != NULL && bytes >= ENGINE_AGG_MMAP_MIN && bytes <= ENGINE_AGG_SPARE_MAX) {
            void* expected = NULL;
    #ifdef MADV_FREE
            madvise(p, bytes, MADV_FREE);
    #endif
            *(size_t*)p = bytes;
            if (__atomic_compare_exchange_n(&engine_agg_spare, &expected, p, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
                return;
        }
    #endif
        engine_agg_free(p, bytes);
    }
    /* The parked mapping trimmed to `bytes` (contents undefined), or NULL. */
    static void* engine_agg_take_spare(size_t bytes) {
    #if defined(__GNUC__) || defined(__clang__)
        void* q = __atomic_exchange_n(&engine_agg_spare, NULL, __ATOMIC_ACQ_REL);
        if (q == NULL) return NULL;
        size_t size = *(size_t*)q;
        size_t keep = (bytes + ENGINE_AGG_PAGE - 1) / ENGINE_AGG_PAGE * ENGINE_AGG_PAGE;
        if (size < bytes) {
            engine_agg_retire(q, size);
            return NULL;
        }
        if (keep < size) munmap((char*)q + keep, size - keep);
        return q;
    #else
        (void)bytes;
        return NULL;
    #endif
    }
    static void* engine_agg_realloc(void* p, size_t old_bytes, size_t new_bytes) {
    #ifdef MREMAP_MAYMOVE
        if (old_bytes >= ENGINE_AGG_MMAP_MIN && new_bytes >= ENGINE_AGG_MMAP_MIN) {
            void* q = mremap(p, old_bytes, new_bytes, MREMAP_MAYMOVE);
            if (q == MAP_FAILED) return NULL;
    #ifdef MADV_HUGEPAGE
            madvise(q, new_bytes, MADV_HUGEPAGE);
    #endif
            return q;
        }
    #endif
        void* q = NULL;
        if (new_bytes >= ENGINE_AGG_MMAP_MIN) q = engine_agg_take_spare(new_bytes);
        if (q == NULL) q = engine_agg_alloc(new_bytes);
        if (q == NULL) return NULL;
        if (p != NULL) memcpy(q, p, old_bytes < new_bytes ? old_bytes : new_bytes);
        engine_agg_free(p, old_bytes);
        return q;
    }
    #else
    static void* engine_agg_alloc(size_t bytes) { return calloc(bytes, 1); }
    static void* engine_agg_realloc(void* p, size_t old_bytes, size_t new_bytes) {
        (void)old_bytes; return realloc(p, new_bytes);
    }
    static void engine_agg_free(void* p, size_t bytes) { (void)bytes; free(p); }
    static void engine_agg_retire(void* p, size_t bytes) { (void)bytes; free(p); }
    #endif
    """
    void* _agg_alloc "engine_agg_alloc"(size_t nbytes) noexcept nogil
    void _agg_free "engine_agg_free"(void* p, size_t nbytes) noexcept nogil
    void* _agg_realloc "engine_agg_realloc"(void* p, size_t old_nbytes, size_t new_nbytes) noexcept nogil
    void _agg_retire "engine_agg_retire"(void* p, size_t nbytes) noexcept nogil


cdef extern from *:
    """
    #include <math.h>
    /* Linear counting: the number of distinct hashes that set `ones` of the m bits of a bitmap is
       about m * ln(m / zeros) (a few percent off while the bitmap is not saturated). */
    static int64_t engine_agg_distinct(const uint64_t* words, size_t nwords, int64_t n) {
        size_t ones = 0, i;
        for (i = 0; i < nwords; i++) {
    #if defined(__GNUC__) || defined(__clang__)
            ones += (size_t)__builtin_popcountll(words[i]);
    #else
            uint64_t w = words[i];
            while (w) { w &= w - 1; ones++; }
    #endif
        }
        double m = (double)nwords * 64.0, zeros = m - (double)ones;
        if (zeros < 1.0) return n;
        double estimate = m * log(m / zeros);
        return estimate >= (double)n ? n : (int64_t)estimate + 1;
    }
    """
    int64_t _agg_distinct "engine_agg_distinct"(const uint64_t* words, size_t nwords, int64_t n) noexcept nogil


cdef struct _AggHead:
    int64_t key
    int64_t start
    uint64_t meta      # records added (>= 1, low 62 bits) | _AGG_DIRTY | _AGG_EMITTED (top bits)

cdef extern from *:
    """
    #define ENGINE_AGG_DIRTY (((uint64_t)1) << 63)
    #define ENGINE_AGG_EMITTED (((uint64_t)1) << 62)
    #define ENGINE_AGG_COUNT (ENGINE_AGG_EMITTED - 1)
    """
    uint64_t _AGG_DIRTY "ENGINE_AGG_DIRTY"      # has additions not emitted yet
    uint64_t _AGG_EMITTED "ENGINE_AGG_EMITTED"  # fired at least once
    uint64_t _AGG_COUNT "ENGINE_AGG_COUNT"      # mask of the record count

cdef enum:
    _AGG_MIN_BITS = 4  # smallest index: 16 slots
    _AGG_MAX_BITS = 32  # the tag (32 bits) must hold the home slot
    _AGG_MIN_ENTRIES = 8
    _AGG_AHEAD = 16    # records hashed and their index slot prefetched ahead (a power of two)
    _AGG_AHEAD2 = 8    # ... and their entry prefetched ahead (index slot already in cache)
    _AGG_RADIX_MIN = 512  # below this many windows, std::sort beats the radix sort
    _AGG_PARTITION_MIN = 65536  # batches at least this long are partitioned by hash first
    _AGG_PARTITION_BITS = 8

cdef Py_ssize_t _agg_partition_min = _AGG_PARTITION_MIN

def _agg_set_partition_min(n):
    """Tuning hook for the benchmark: batches of at least ``n`` records are partitioned first."""
    global _agg_partition_min
    _agg_partition_min = n

cdef struct _AggRec:
    int64_t key
    int64_t start

# at most this many live windows (entry + 1 must fit the low 32 bits of an index slot)
cdef int64_t _AGG_MAX_WINDOWS = <int64_t>4294967294


cdef inline uint64_t _agg_hash(int64_t key, int64_t start) noexcept nogil:
    """splitmix64 finaliser of a linear combination of key and start (a bijection after the mix)."""
    cdef uint64_t x = <uint64_t>start * <uint64_t>0x9E3779B97F4A7C15 + <uint64_t>key
    x = (x ^ (x >> 30)) * <uint64_t>0xBF58476D1CE4E5B9
    x = (x ^ (x >> 27)) * <uint64_t>0x94D049BB133111EB
    return x ^ (x >> 31)


cdef inline int _agg_bit_length(uint64_t x) noexcept nogil:
    cdef int n = 0
    while x:
        x >>= 1
        n += 1
    return n


cdef inline int _agg_bits_for(int64_t n) noexcept nogil:
    """Index size (log2) holding ``n`` windows at load <= 1/2."""
    cdef int bits = _AGG_MIN_BITS
    while (<int64_t>1 << bits) < 2 * n:
        bits += 1
    return bits


cdef int _agg_radix_sort(vector[uint64_t]& a, int lo_bit, int nbits) except -1 nogil:
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
    return 0


cdef class WindowAggTable:
    """Open-addressing hash table keyed by ``(key_id, window start)`` of count, sum, min and max.

    ``WindowAggTable(size, lateness, n_values)``: windows are ``[start, start + size)``; ``lateness``
    is the allowed lateness; ``n_values`` the number of float64 value columns (0 = count only).

    * ``add(key_ids, starts, values)`` adds record ``i`` (``values[i]`` of shape ``(n_values,)``) to
      window ``(key_ids[i], starts[i])``. The caller assigns windows and filters late records first.
      A start whose end ``start + size`` overflows int64 raises ``ValueError`` before anything is added.
      Sums propagate NaN (added in record order); min and max ignore NaN (NaN only while every value
      seen is NaN).
    * ``fire(W)`` returns `FiredWindows` for every window with ``W >= end - 1`` that has additions not
      yet emitted (first firing, and again after allowed-late additions), sorted by
      ``(end, start, key_id)``; ``sums``/``mins``/``maxs`` are float64 of shape ``(m, n_values)``.
    * ``purge(W)`` drops windows with ``W >= end - 1 + lateness`` (saturating) and returns how many.
      A window with additions never emitted is never dropped silently: if ``purge(W)`` would drop one,
      it raises ``ValueError`` and changes nothing (call ``fire(W)`` first, as the runtime does).
    * ``fire`` and ``purge`` are O(1) when nothing is due (the smallest end among dirty windows and
      among live windows is tracked exactly); otherwise O(live windows), plus sorting what fires.
    * Grows without practical limit (up to 2**32 - 2 live windows; the index doubles at load 3/4);
      purge compacts the windows and shrinks both buffers when the load falls low, so ``nbytes``
      drops once windows are purged.
    * ``snapshot()`` is canonical (live windows sorted by ``(start, key_id)``, with their ``emitted``
      and ``dirty`` flags), identical to the one of ``engine._reference.WindowAggTable``.
      ``snapshot_unordered()`` is the same state in the table's own order, without the sort (for
      checkpoints); ``restore`` accepts windows in any order.

    A table belongs to one operator instance: ``add`` releases the GIL, so calls on one table must
    not run concurrently from several threads.
    """

    cdef object _nothing_fired       # the shared empty FiredWindows returned when nothing is due
    cdef int64_t _size
    cdef int64_t _lateness
    cdef Py_ssize_t _n_values
    cdef Py_ssize_t _stride          # bytes per entry
    cdef char* _entries              # _n live windows, dense
    cdef int64_t _n
    cdef int64_t _entry_cap
    cdef uint64_t* _index
    cdef int _bits                   # index slots == 1 << _bits
    cdef int64_t _pending            # windows with _AGG_DIRTY
    cdef int64_t _min_live_end       # exact smallest end of live windows (INT64_MAX if none)
    cdef int64_t _min_pending_end    # exact smallest end of dirty windows (INT64_MAX if none)
    # bounds (not always tight) of the starts and key ids of live windows, for the sort key
    cdef int64_t _smin, _smax, _kmin, _kmax
    cdef int64_t _grid               # size while every window start seen is on one size grid, else 1

    def __cinit__(self):
        self._entries = NULL
        self._index = NULL

    def __init__(self, size, lateness, n_values):
        self._size = _checks.positive("size", size)
        self._lateness = _checks.non_negative("lateness", lateness)
        self._n_values = _checks.value_columns("n_values", n_values)
        self._stride = sizeof(_AggHead) + 3 * self._n_values * sizeof(double)
        self._nothing_fired = None
        self._grid = self._size
        self._n = 0
        self._pending = 0
        self._min_live_end = C_INT64_MAX
        self._min_pending_end = C_INT64_MAX
        self._smin = C_INT64_MAX
        self._smax = C_INT64_MIN
        self._kmin = C_INT64_MAX
        self._kmax = C_INT64_MIN
        self._entry_cap = _AGG_MIN_ENTRIES
        self._entries = <char*>_agg_alloc(self._entry_cap * self._stride)
        self._bits = _AGG_MIN_BITS
        self._index = <uint64_t*>_agg_alloc(((<size_t>1) << self._bits) * sizeof(uint64_t))
        if self._entries == NULL or self._index == NULL:
            raise MemoryError("WindowAggTable: cannot allocate the table")

    def __dealloc__(self):
        _agg_retire(self._entries, self._entry_cap * self._stride)  # may serve the next table
        _agg_free(self._index, ((<size_t>1) << self._bits) * sizeof(uint64_t))

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
        return self._n

    @property
    def nbytes(self):
        """Bytes held by the table's two buffers (the object header is not counted)."""
        return self._entry_cap * self._stride + ((<int64_t>1) << self._bits) * <int64_t>sizeof(uint64_t)

    # --- internals ---------------------------------------------------------------------------------

    cdef int _reindex(self, int bits) except -1 nogil:
        """Rebuild the index with ``1 << bits`` slots from the entries (order of the dense array)."""
        cdef size_t old_bytes = ((<size_t>1) << self._bits) * sizeof(uint64_t)
        cdef size_t new_bytes = ((<size_t>1) << bits) * sizeof(uint64_t)
        cdef uint64_t* fresh
        cdef uint64_t mask = ((<uint64_t>1) << bits) - 1, i, h
        cdef int64_t r
        cdef _AggHead* hd
        if bits > _AGG_MAX_BITS:
            with gil:
                raise MemoryError(f"WindowAggTable: more than {_AGG_MAX_WINDOWS} live windows")
        if bits == self._bits:
            memset(self._index, 0, old_bytes)
            fresh = self._index
        else:
            fresh = <uint64_t*>_agg_alloc(new_bytes)
            if fresh == NULL:
                with gil:
                    raise MemoryError(f"WindowAggTable: cannot allocate an index of {1 << bits} slots")
            _agg_free(self._index, old_bytes)
            self._index = fresh
            self._bits = bits
        for r in range(self._n):
            hd = <_AggHead*>(self._entries + r * self._stride)
            h = _agg_hash(hd.key, hd.start)
            i = h >> (64 - bits)
            while fresh[i] != 0:
                i = (i + 1) & mask
            fresh[i] = ((h >> 32) << 32) | <uint64_t>(r + 1)
        return 0

    cdef int64_t _first_duplicate(self) noexcept nogil:
        """After `_reindex`: the entry number of a window that another entry already holds, or -1.

        A snapshot restored in any order cannot be checked for duplicates by its order; the index can:
        equal windows share a home slot, so a probe from each entry's home slot meets every earlier
        entry with its hash (the tag rejects the others without reading them).
        """
        cdef uint64_t mask = ((<uint64_t>1) << self._bits) - 1, i, h, e
        cdef int64_t r, other
        cdef _AggHead* hd
        cdef _AggHead* od
        for r in range(self._n):
            hd = <_AggHead*>(self._entries + r * self._stride)
            h = _agg_hash(hd.key, hd.start)
            i = h >> (64 - self._bits)
            while True:
                e = self._index[i]
                if e == 0:
                    break
                other = <int64_t>(e & <uint64_t>0xFFFFFFFF) - 1
                if other != r and (e >> 32) == (h >> 32):
                    od = <_AggHead*>(self._entries + other * self._stride)
                    if od.key == hd.key and od.start == hd.start:
                        return r
                i = (i + 1) & mask
        return -1

    cdef int _grow_index(self) except -1 nogil:
        """Double the index, moving the slot values (no entry is read: the tag gives the home slot)."""
        cdef int bits = self._bits + 1
        cdef size_t old_slots = (<size_t>1) << self._bits, k
        cdef uint64_t* fresh
        cdef uint64_t mask = ((<uint64_t>1) << bits) - 1, i, e
        if bits > _AGG_MAX_BITS:
            with gil:
                raise MemoryError(f"WindowAggTable: more than {_AGG_MAX_WINDOWS} live windows")
        fresh = <uint64_t*>_agg_alloc(((<size_t>1) << bits) * sizeof(uint64_t))
        if fresh == NULL:
            with gil:
                raise MemoryError(f"WindowAggTable: cannot allocate an index of {1 << bits} slots")
        for k in range(old_slots):
            e = self._index[k]
            if e == 0:
                continue
            i = (e >> 32) >> (32 - bits)
            while fresh[i] != 0:
                i = (i + 1) & mask
            fresh[i] = e
        _agg_free(self._index, old_slots * sizeof(uint64_t))
        self._index = fresh
        self._bits = bits
        return 0

    cdef int _resize_entries(self, int64_t cap) except -1 nogil:
        cdef char* fresh = <char*>_agg_realloc(self._entries, self._entry_cap * self._stride, cap * self._stride)
        if fresh == NULL:
            with gil:
                raise MemoryError(f"WindowAggTable: cannot allocate {cap} windows")
        self._entries = fresh
        self._entry_cap = cap
        return 0

    cdef inline void _widen_bounds(self, int64_t key, int64_t start) noexcept nogil:
        if start < self._smin:
            self._smin = start
        if start > self._smax:
            self._smax = start
        if key < self._kmin:
            self._kmin = key
        if key > self._kmax:
            self._kmax = key

    cdef void _note_batch(self, const int64_t* keys, const int64_t* starts, Py_ssize_t step,
                          Py_ssize_t n) noexcept nogil:
        """Widen the bounds and the smallest live/pending ends for a batch about to be added.

        Every record's window is live and dirty once the batch is in, so the batch's smallest start
        gives both ends exactly, and the bounds stay a superset of the live windows' (all they need).
        """
        cdef Py_ssize_t i
        cdef int64_t kmin = C_INT64_MAX, kmax = C_INT64_MIN, smin = C_INT64_MAX, smax = C_INT64_MIN, k, s
        for i in range(n):
            k = keys[i * step]
            s = starts[i * step]
            kmin = k if k < kmin else kmin
            kmax = k if k > kmax else kmax
            smin = s if s < smin else smin
            smax = s if s > smax else smax
        if n:
            self._note_bounds(kmin, kmax, smin, smax)

    cdef void _note_bounds(self, int64_t kmin, int64_t kmax, int64_t smin, int64_t smax) noexcept nogil:
        """`_note_batch` given the batch's smallest and largest key id and start."""
        self._widen_bounds(kmin, smin)
        self._widen_bounds(kmax, smax)
        if smin + self._size < self._min_live_end:
            self._min_live_end = smin + self._size
        if smin + self._size < self._min_pending_end:
            self._min_pending_end = smin + self._size

    cdef inline int _add_run(self, const int64_t* keys, const int64_t* starts, Py_ssize_t step,
                             const double* vals, Py_ssize_t n, int prefetch) except -1 nogil:
        """Add records ``keys[i * step]``, ``starts[i * step]``, ``vals[i * nv:]`` in order.

        The caller has called `_note_batch`. The loop keeps the table's state in locals (the
        compiler cannot keep fields of ``self`` in registers across the stores into the entries) and
        writes it back before anything that can raise or move the buffers. A software pipeline hashes
        record ``i + _AGG_AHEAD`` and, with ``prefetch >= 1``, prefetches its index slot; with
        ``prefetch >= 2`` it also prefetches, at ``i + _AGG_AHEAD2``, the entry that slot points to
        (worth it for records in batch order over a table larger than the cache; a partitioned
        batch, whose entries are cache-resident, measured faster with ``prefetch=1``). ``prefetch``
        is a constant at each call site, so the compiler drops the unused stages.
        Records reach their window in batch order, so sums are bit-identical to the twin's.
        """
        cdef uint64_t ring[_AGG_AHEAD]
        cdef Py_ssize_t i, j, nv = self._n_values, stride = self._stride
        cdef uint64_t* index = self._index
        cdef char* entries = self._entries
        cdef int shift = 64 - self._bits
        cdef uint64_t mask = ((<uint64_t>1) << self._bits) - 1
        cdef int64_t live = self._n, cap = self._entry_cap, pending = self._pending
        cdef int64_t grow_at = 3 * (((<int64_t>1) << self._bits) // 4)
        cdef uint64_t h, ahead, slot, e, meta
        cdef int64_t key, start
        cdef _AggHead* hd
        cdef double* acc
        cdef const double* row
        cdef double v, lo, hi
        for i in range(min(n, <Py_ssize_t>_AGG_AHEAD)):
            ring[i] = _agg_hash(keys[i * step], starts[i * step])
            if prefetch >= 1:
                _agg_prefetch(index + (ring[i] >> shift))
        for i in range(n):
            h = ring[i & (_AGG_AHEAD - 1)]
            if i + _AGG_AHEAD < n:
                ahead = _agg_hash(keys[(i + _AGG_AHEAD) * step], starts[(i + _AGG_AHEAD) * step])
                ring[i & (_AGG_AHEAD - 1)] = ahead
                if prefetch >= 1:
                    _agg_prefetch(index + (ahead >> shift))
            if prefetch >= 2 and i + _AGG_AHEAD2 < n:
                ahead = ring[(i + _AGG_AHEAD2) & (_AGG_AHEAD - 1)]
                e = index[ahead >> shift]
                if e != 0 and ((e ^ ahead) >> 32) == 0:
                    _agg_prefetch(entries + ((e & <uint64_t>0xFFFFFFFF) - 1) * stride)
            key = keys[i * step]
            start = starts[i * step]
            row = vals + i * nv
            # linear probing; the tag (top hash bits in the slot) rejects almost every foreign entry
            # before its cache line is read
            slot = h >> shift
            while True:
                e = index[slot]
                if e == 0:
                    break
                if ((e ^ h) >> 32) == 0:
                    hd = <_AggHead*>(entries + ((e & <uint64_t>0xFFFFFFFF) - 1) * stride)
                    if hd.key == key and hd.start == start:
                        break
                slot = (slot + 1) & mask
            if e != 0:
                acc = <double*>(hd + 1)
                meta = hd.meta
                pending += <int64_t>((meta >> 63) ^ 1)  # clean -> dirty
                hd.meta = (meta + 1) | _AGG_DIRTY  # the count; 2**62 records in one window are out of reach
                for j in range(nv):
                    v = row[j]
                    acc[j] += v
                    # NaN-ignoring min/max: the selects compile to minsd/maxsd (no branch to
                    # mispredict); a NaN result means every value before was NaN, so take v
                    lo = v if v < acc[nv + j] else acc[nv + j]
                    hi = v if v > acc[2 * nv + j] else acc[2 * nv + j]
                    if lo != lo:
                        lo = v
                    if hi != hi:
                        hi = v
                    acc[nv + j] = lo
                    acc[2 * nv + j] = hi
                continue
            # a new window
            if live == cap or live >= _AGG_MAX_WINDOWS:
                self._n = live
                self._pending = pending
                if live >= _AGG_MAX_WINDOWS:
                    with gil:
                        raise MemoryError(f"WindowAggTable: more than {_AGG_MAX_WINDOWS} live windows")
                self._resize_entries(2 * cap)
                entries = self._entries
                cap = self._entry_cap
            hd = <_AggHead*>(entries + live * stride)
            acc = <double*>(hd + 1)
            hd.key = key
            hd.start = start
            hd.meta = 1 | _AGG_DIRTY
            # (GCC turns these short loops into calls to memcpy: one value column, the usual
            # case, is written out)
            if nv == 1:
                v = row[0]
                acc[0] = v
                acc[1] = v
                acc[2] = v
            else:
                for j in range(nv):
                    v = row[j]
                    acc[j] = v
                    acc[nv + j] = v
                    acc[2 * nv + j] = v
            live += 1
            pending += 1
            index[slot] = (h & <uint64_t>0xFFFFFFFF00000000) | <uint64_t>live
            if live > grow_at:
                self._n = live
                self._pending = pending
                self._grow_index()
                index = self._index
                shift = 64 - self._bits
                mask = ((<uint64_t>1) << self._bits) - 1
                grow_at = 3 * (((<int64_t>1) << self._bits) // 4)
                # the slots prefetched ahead moved: re-prefetch them (only for speed)
                for j in range(i + 1, min(n, i + 1 + <Py_ssize_t>_AGG_AHEAD)):
                    _agg_prefetch(index + (ring[j & (_AGG_AHEAD - 1)] >> shift))
        self._n = live
        self._pending = pending
        return 0

    cdef int _add(self, const int64_t* keys, const int64_t* starts, const double* vals,
                  Py_ssize_t n) except -1 nogil:
        """Add a batch in record order (per window, so sums are bit-identical to the twin's)."""
        if n >= _agg_partition_min:
            return self._add_partitioned(keys, starts, vals, n)
        self._note_batch(keys, starts, 1, n)
        return self._add_run(keys, starts, 1, vals, n, 2)

    cdef int _add_partitioned(self, const int64_t* keys, const int64_t* starts, const double* vals,
                              Py_ssize_t n) except -1 nogil:
        """Large batches: a stable radix partition by the top hash bits, then one partition at a time.

        The index is ordered by the top hash bits, so each partition works on one small stretch of
        the index, and the windows it creates are appended next to each other: the random accesses
        of a big batch become cache-resident ones. The partition is stable, so every window still
        sees its records in batch order.
        """
        cdef int pbits = _AGG_PARTITION_BITS
        cdef size_t parts = (<size_t>1) << pbits, b
        cdef Py_ssize_t i, j, nv = self._n_values, pos
        cdef size_t offsets[1 << _AGG_PARTITION_BITS]
        cdef size_t total, cnt
        cdef size_t rec_bytes = n * sizeof(_AggRec), val_bytes = n * nv * sizeof(double)
        cdef _AggRec* recs
        cdef double* pvals
        cdef _AggRec* rec
        cdef uint64_t h
        cdef int bits = self._bits
        cdef int mbits = min(max(_agg_bit_length(<uint64_t>n), 10), 24)
        cdef size_t nwords = ((<size_t>1) << mbits) // 64
        cdef uint64_t* bitmap
        cdef uint8_t* part
        cdef int64_t distinct, need, k, s
        cdef int64_t kmin = C_INT64_MAX, kmax = C_INT64_MIN, smin = C_INT64_MAX, smax = C_INT64_MIN
        # plain malloc for what needs no zeroing: the allocator hands the same blocks back to the
        # next large batch (no fresh pages to fault in and clear)
        recs = <_AggRec*>malloc(rec_bytes)
        pvals = <double*>malloc(val_bytes if val_bytes else 8)
        part = <uint8_t*>malloc(n)
        bitmap = <uint64_t*>calloc(nwords, sizeof(uint64_t))
        if recs == NULL or pvals == NULL or part == NULL or bitmap == NULL:
            free(recs)
            free(pvals)
            free(part)
            free(bitmap)
            with gil:
                raise MemoryError(f"WindowAggTable: cannot allocate a batch of {n} records")
        # pass 1: partition of each record, partition sizes, a bitmap to estimate how many distinct
        # windows the batch holds, and the batch's bounds (see `_note_batch`)
        for b in range(parts):
            offsets[b] = 0
        for i in range(n):
            k = keys[i]
            s = starts[i]
            kmin = k if k < kmin else kmin
            kmax = k if k > kmax else kmax
            smin = s if s < smin else smin
            smax = s if s > smax else smax
            h = _agg_hash(k, s)
            part[i] = <uint8_t>(h >> (64 - pbits))
            offsets[part[i]] += 1
            bitmap[(h & ((nwords << 6) - 1)) >> 6] |= (<uint64_t>1) << (h & 63)
        distinct = _agg_distinct(bitmap, nwords, n)
        free(bitmap)
        total = 0
        for b in range(parts):
            cnt = offsets[b]
            offsets[b] = total
            total += cnt
        # pass 2: stable scatter into partitions
        for i in range(n):
            pos = offsets[part[i]]
            offsets[part[i]] += 1
            rec = &recs[pos]
            rec.key = keys[i]
            rec.start = starts[i]
            if nv == 1:
                pvals[pos] = vals[i]
            else:
                for j in range(nv):
                    pvals[pos * nv + j] = vals[i * nv + j]
        free(part)
        # Records now come sorted by hash: were the index far too small for them, a partition would
        # pile up behind its few home slots in one long cluster (quadratic probing). Size the index
        # for the estimated new windows (+10%) up front; if the estimate falls short, the usual
        # growth at load 3/4 still happens, when every stretch already processed is at that load.
        # The entries get room for them too: one allocation instead of a chain of doublings, the
        # first ones of which (below the mmap threshold) copy.
        need = self._n + distinct + distinct // 10 + 16
        while 4 * need > 3 * ((<int64_t>1) << bits):
            bits += 1
        try:
            if need > self._entry_cap:
                self._resize_entries(need)
            if bits != self._bits:
                self._reindex(bits)
            self._note_bounds(kmin, kmax, smin, smax)
            self._add_run(&recs[0].key, &recs[0].start, 2, pvals, n, 1)
        finally:
            free(recs)
            free(pvals)
        if self._n < ((<int64_t>1 << self._bits) // 8):  # the batch hit few windows: give the index back
            self._reindex(_agg_bits_for(self._n))
        return 0

    cdef int64_t _collect(self, vector[uint64_t]& order, bint due_only, int64_t watermark) except? -2 nogil:
        """Fill ``order`` with the entries to emit, sorted by ``(start, key_id)``.

        ``due_only``: dirty windows with ``end - 1 <= watermark`` (and return the smallest end among
        the dirty windows left out, INT64_MAX if none); otherwise every live window.
        """
        cdef Py_ssize_t stride = self._stride
        cdef _AggHead* hd
        cdef int64_t r, end, next_pending = C_INT64_MAX
        cdef int64_t smin = C_INT64_MAX, smax = C_INT64_MIN, kmin = C_INT64_MAX, kmax = C_INT64_MIN
        cdef uint64_t sspan, kspan, comp, comp_max, low_mask, grid, odd, inv, limit, tz_mask, x, q
        cdef int tz, p
        cdef bint off_grid
        cdef int cbits, ebits
        cdef size_t k, m
        cdef vector[pair[pair[int64_t, int64_t], uint64_t]] fallback
        order.clear()
        order.reserve(self._pending if due_only else self._n)
        ebits = _agg_bit_length(<uint64_t>(self._n - 1)) if self._n > 1 else 0
        # Fast path: one pass packing the sort key from the table-wide bounds of start and key_id,
        # when the packed key fits in 64 bits (always, for realistic windows). While every start is
        # smin plus a multiple of ``grid`` (tumbling windows: the size), the start is packed as that
        # multiple: a key span as dense as the windows, so fewer radix passes.
        grid = <uint64_t>self._grid
        while True:
            sspan = (<uint64_t>self._smax - <uint64_t>self._smin) / grid
            kspan = <uint64_t>self._kmax - <uint64_t>self._kmin
            cbits = 65
            if self._n and kspan != <uint64_t>0xFFFFFFFFFFFFFFFF and sspan <= (<uint64_t>0xFFFFFFFFFFFFFFFF - kspan) // (kspan + 1):
                cbits = _agg_bit_length(sspan * (kspan + 1) + kspan)
            if cbits + ebits > 64:
                break
            # exact division by grid = odd << tz: x is a multiple of grid iff its low tz bits are 0
            # and (x >> tz) * inverse(odd) mod 2**64 <= UINT64_MAX / odd; that product is then x / grid
            odd = grid
            tz = 0
            while (odd & 1) == 0:
                odd >>= 1
                tz += 1
            tz_mask = ((<uint64_t>1) << tz) - 1
            limit = <uint64_t>0xFFFFFFFFFFFFFFFF / odd
            inv = odd  # Newton's iteration for the inverse modulo 2**64: 3, 6, 12, 24, 48, 96 bits
            for p in range(5):
                inv *= 2 - odd * inv
            smin = self._smin
            kmin = self._kmin
            off_grid = False
            for r in range(self._n):
                hd = <_AggHead*>(self._entries + r * stride)
                if due_only:
                    if not (hd.meta & _AGG_DIRTY):
                        continue
                    end = hd.start + self._size
                    if end - 1 > watermark:
                        if end < next_pending:
                            next_pending = end
                        continue
                x = <uint64_t>hd.start - <uint64_t>smin
                q = (x >> tz) * inv
                if (x & tz_mask) != 0 or q > limit:
                    off_grid = True
                    break
                comp = q * (kspan + 1) + (<uint64_t>hd.key - <uint64_t>kmin)
                order.push_back((comp << ebits) | <uint64_t>r)
            if off_grid:  # windows off the size grid (sliding windows, say): stop trying it
                self._grid = 1
                grid = 1
                order.clear()
                next_pending = C_INT64_MAX
                continue
            m = order.size()
            if m > 1:
                if m < _AGG_RADIX_MIN:
                    _agg_std_sort(order.begin(), order.end())
                else:
                    _agg_radix_sort(order, ebits, cbits)
            low_mask = ((<uint64_t>1) << ebits) - 1
            for k in range(m):
                order[k] = order[k] & low_mask
            return next_pending
        # Fallback: the packed key does not fit; sort (start, key_id) pairs of the selected windows.
        for r in range(self._n):
            hd = <_AggHead*>(self._entries + r * stride)
            if due_only:
                if not (hd.meta & _AGG_DIRTY):
                    continue
                end = hd.start + self._size
                if end - 1 > watermark:
                    if end < next_pending:
                        next_pending = end
                    continue
            order.push_back(r)
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
        # Sort key: c = (start - smin) * (kspan + 1) + (key - kmin), packed above the entry number
        # when it fits in 64 bits (it does for any realistic set of windows). c orders by
        # (start, key_id); the entry number rides along in the low bits.
        sspan = <uint64_t>smax - <uint64_t>smin
        kspan = <uint64_t>kmax - <uint64_t>kmin
        cbits = 65
        if kspan != <uint64_t>0xFFFFFFFFFFFFFFFF and sspan <= (<uint64_t>0xFFFFFFFFFFFFFFFF - kspan) // (kspan + 1):
            comp_max = sspan * (kspan + 1) + kspan
            cbits = _agg_bit_length(comp_max)
        if cbits + ebits <= 64:
            for k in range(m):
                hd = <_AggHead*>(self._entries + order[k] * stride)
                comp = (<uint64_t>hd.start - <uint64_t>smin) * (kspan + 1) + (<uint64_t>hd.key - <uint64_t>kmin)
                order[k] = (comp << ebits) | order[k]
            if m < _AGG_RADIX_MIN:
                _agg_std_sort(order.begin(), order.end())
            else:
                _agg_radix_sort(order, ebits, cbits)
            low_mask = ((<uint64_t>1) << ebits) - 1
            for k in range(m):
                order[k] = order[k] & low_mask
        else:
            fallback.resize(m)
            for k in range(m):
                hd = <_AggHead*>(self._entries + order[k] * stride)
                fallback[k].first.first = hd.start
                fallback[k].first.second = hd.key
                fallback[k].second = order[k]
            _agg_std_sort(fallback.begin(), fallback.end())
            for k in range(m):
                order[k] = fallback[k].second
        return next_pending

    cdef int64_t _purge(self, int64_t watermark) except -1 nogil:
        """Drop the windows due at ``watermark``: one scan finds them (and the new bounds); then either
        their index slots are deleted and the last live entries moved into their places (few dropped:
        O(dropped) index work), or the entries are compacted in order and the index rebuilt (many
        dropped, or the buffers shrink)."""
        cdef Py_ssize_t stride = self._stride
        cdef _AggHead* hd
        cdef int64_t r, n = self._n, kept, start, key, cap, last_dropped
        cdef int64_t smin = C_INT64_MAX, smax = C_INT64_MIN, kmin = C_INT64_MAX, kmax = C_INT64_MIN
        cdef int bits
        cdef vector[int64_t] gone
        # A window goes when watermark >= min(start + size - 1 + lateness, INT64_MAX). Below INT64_MAX
        # that is start <= watermark + 1 - lateness - size (exact; nothing goes when that is below
        # INT64_MIN), so the scan compares starts with one bound.
        if watermark == C_INT64_MAX:
            last_dropped = C_INT64_MAX
        elif watermark + 1 < C_INT64_MIN + self._lateness or watermark + 1 - self._lateness < C_INT64_MIN + self._size:
            return 0
        else:
            last_dropped = watermark + 1 - self._lateness - self._size
        for r in range(n):
            hd = <_AggHead*>(self._entries + r * stride)
            start = hd.start
            if start <= last_dropped:
                gone.push_back(r)
                continue
            key = hd.key
            smin = start if start < smin else smin
            smax = start if start > smax else smax
            kmin = key if key < kmin else kmin
            kmax = key if key > kmax else kmax
        self._smin = smin
        self._smax = smax
        self._kmin = kmin
        self._kmax = kmax
        kept = n - <int64_t>gone.size()
        # the smallest live end is the smallest live start's (ends are start + size, no overflow:
        # `add` refuses starts whose end overflows)
        self._min_live_end = smin + self._size if kept else C_INT64_MAX
        bits = self._bits
        # Shrink only when the load fell below 1/8 (index) or 1/4 (entries): the gap to the growth
        # thresholds keeps a steady stream from resizing back and forth.
        if (kept < self._entry_cap // 4 and self._entry_cap > _AGG_MIN_ENTRIES) or kept < ((<int64_t>1 << bits) // 8) \
                or <int64_t>gone.size() > kept // 2:
            self._compact(gone)
            if kept < self._entry_cap // 4 and self._entry_cap > _AGG_MIN_ENTRIES:
                cap = max(<int64_t>_AGG_MIN_ENTRIES, 2 * kept)
                self._resize_entries(cap)
            if kept < ((<int64_t>1 << bits) // 8):
                bits = _agg_bits_for(kept)
            self._reindex(bits)
        else:
            self._delete(gone)
        return n - kept

    cdef void _compact(self, vector[int64_t]& gone) noexcept nogil:
        """Remove the entries ``gone`` (ascending) from the dense array, keeping the others' order
        (the index is stale afterwards: rebuild it)."""
        cdef Py_ssize_t stride = self._stride
        cdef size_t g = 0, m = gone.size()
        cdef int64_t r, kept = 0
        for r in range(self._n):
            if g < m and gone[g] == r:
                g += 1
                continue
            if kept != r:
                memcpy(self._entries + kept * stride, self._entries + r * stride, stride)
            kept += 1
        self._n = kept

    cdef inline uint64_t _entry_hash(self, int64_t r) noexcept nogil:
        cdef _AggHead* hd = <_AggHead*>(self._entries + r * self._stride)
        return _agg_hash(hd.key, hd.start)

    cdef inline uint64_t _slot_of(self, int64_t r, uint64_t h) noexcept nogil:
        """The index slot holding entry ``r`` (which must be indexed; ``h`` is its hash)."""
        cdef uint64_t mask = ((<uint64_t>1) << self._bits) - 1
        cdef uint64_t slot = h >> (64 - self._bits)
        cdef uint64_t want = (h & <uint64_t>0xFFFFFFFF00000000) | <uint64_t>(r + 1)
        while self._index[slot] != want:
            slot = (slot + 1) & mask
        return slot

    cdef void _delete(self, vector[int64_t]& gone) noexcept nogil:
        """Remove the entries ``gone`` (ascending): delete their index slots (backward-shift deletion,
        so no tombstones), then move the last live entries into the holes and repoint their slots.
        The order of the live entries changes (any order is valid; fire and snapshot sort). Both loops
        hash and prefetch `_AGG_AHEAD` entries ahead: the slots are random reads of a large index."""
        cdef Py_ssize_t stride = self._stride
        cdef uint64_t mask = ((<uint64_t>1) << self._bits) - 1, i, j, home, e, h
        cdef int shift = 32 - self._bits, shift64 = 64 - self._bits
        cdef size_t k, m = gone.size(), holes
        cdef int64_t n = self._n, kept = n - <int64_t>m, t
        cdef Py_ssize_t top
        cdef uint64_t ring[_AGG_AHEAD]
        cdef vector[int64_t] sources
        for k in range(min(m, <size_t>_AGG_AHEAD)):
            ring[k] = self._entry_hash(gone[k])
            _agg_prefetch(self._index + (ring[k] >> shift64))
        for k in range(m):
            h = ring[k & (_AGG_AHEAD - 1)]
            if k + _AGG_AHEAD < m:
                e = self._entry_hash(gone[k + _AGG_AHEAD])
                ring[k & (_AGG_AHEAD - 1)] = e
                _agg_prefetch(self._index + (e >> shift64))
            i = self._slot_of(gone[k], h)
            # backward shift: pull later slots of the probe run into the hole unless their home slot
            # lies cyclically in (hole, their slot]
            j = i
            while True:
                j = (j + 1) & mask
                e = self._index[j]
                if e == 0:
                    break
                home = (e >> 32) >> shift
                if (j > i and (home <= i or home > j)) or (j < i and home <= i and home > j):
                    self._index[i] = e
                    i = j
            self._index[i] = 0
        # The holes below `kept` are filled with the live entries at or above it, last first.
        t = n - 1
        top = <Py_ssize_t>m - 1
        for k in range(m):
            if gone[k] >= kept:
                break
            while top >= 0 and gone[top] == t:
                top -= 1
                t -= 1
            sources.push_back(t)
            t -= 1
        holes = sources.size()
        for k in range(min(holes, <size_t>_AGG_AHEAD)):
            ring[k] = self._entry_hash(sources[k])
            _agg_prefetch(self._index + (ring[k] >> shift64))
        for k in range(holes):
            h = ring[k & (_AGG_AHEAD - 1)]
            if k + _AGG_AHEAD < holes:
                e = self._entry_hash(sources[k + _AGG_AHEAD])
                ring[k & (_AGG_AHEAD - 1)] = e
                _agg_prefetch(self._index + (e >> shift64))
                _agg_prefetch(self._entries + gone[k + _AGG_AHEAD] * stride)
            i = self._slot_of(sources[k], h)
            self._index[i] = (h & <uint64_t>0xFFFFFFFF00000000) | <uint64_t>(gone[k] + 1)
            memcpy(self._entries + gone[k] * stride, self._entries + sources[k] * stride, stride)
        self._n = kept

    cdef object _gather(self, vector[uint64_t]& order, bint mark_emitted):
        """Arrays of the entries in ``order``: key_ids, starts, ends, counts, sums, mins, maxs, emitted, dirty.

        ``mark_emitted`` (fire): mark the entries emitted and clean; the flag arrays are then empty.
        """
        cdef Py_ssize_t m = order.size(), nv = self._n_values, r, j
        cdef Py_ssize_t stride = self._stride
        key_ids = np.empty(m, dtype=np.int64)
        starts = np.empty(m, dtype=np.int64)
        ends = np.empty(m, dtype=np.int64)
        counts = np.empty(m, dtype=np.int64)
        sums = np.empty((m, nv), dtype=np.float64)
        mins = np.empty((m, nv), dtype=np.float64)
        maxs = np.empty((m, nv), dtype=np.float64)
        emitted = np.empty(0 if mark_emitted else m, dtype=np.bool_)
        dirty = np.empty(0 if mark_emitted else m, dtype=np.bool_)
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
                if r + 16 < m:
                    _agg_prefetch(self._entries + order[r + 16] * stride)
                hd = <_AggHead*>(self._entries + order[r] * stride)
                acc = <double*>(hd + 1)
                ok[r] = hd.key
                os[r] = hd.start
                oe[r] = hd.start + self._size
                oc[r] = <int64_t>(hd.meta & _AGG_COUNT)
                if nv == 1:  # (a loop would become three calls to memcpy)
                    osum[r] = acc[0]
                    omin[r] = acc[1]
                    omax[r] = acc[2]
                else:
                    for j in range(nv):
                        osum[r * nv + j] = acc[j]
                        omin[r * nv + j] = acc[nv + j]
                        omax[r * nv + j] = acc[2 * nv + j]
                if mark_emitted:
                    hd.meta = (hd.meta & _AGG_COUNT) | _AGG_EMITTED
                else:
                    oem[r] = (hd.meta & _AGG_EMITTED) != 0
                    odi[r] = (hd.meta & _AGG_DIRTY) != 0
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
            # the common case after a micro-batch: O(1), and no new arrays
            if self._nothing_fired is None:
                empty = self._gather(order, True)[:7]
                for array in empty:
                    array.flags.writeable = False
                self._nothing_fired = FiredWindows(*empty)
            return self._nothing_fired
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
        if self._n == 0 or w < sat_add(self._min_live_end - 1, self._lateness):
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

    def snapshot_unordered(self, sums=True, mins=True, maxs=True):
        """The state of `snapshot` with the live windows in the table's own order: no sort, one
        sequential pass over the entries (what checkpoints take; `restore` accepts either order).

        ``sums``/``mins``/``maxs`` False leaves that accumulator out (``None`` in the result): a caller
        that never reads it need not copy it.
        """
        cdef Py_ssize_t m = self._n, nv = self._n_values, r, j
        cdef Py_ssize_t stride = self._stride
        cdef bint want_sums = bool(sums), want_mins = bool(mins), want_maxs = bool(maxs)
        key_ids = np.empty(m, dtype=np.int64)
        starts = np.empty(m, dtype=np.int64)
        counts = np.empty(m, dtype=np.int64)
        emitted = np.empty(m, dtype=np.bool_)
        dirty = np.empty(m, dtype=np.bool_)
        sum_arr = np.empty((m, nv), dtype=np.float64) if want_sums else None
        min_arr = np.empty((m, nv), dtype=np.float64) if want_mins else None
        max_arr = np.empty((m, nv), dtype=np.float64) if want_maxs else None
        cdef int64_t* ok = <int64_t*>cnp.PyArray_DATA(key_ids)
        cdef int64_t* os = <int64_t*>cnp.PyArray_DATA(starts)
        cdef int64_t* oc = <int64_t*>cnp.PyArray_DATA(counts)
        cdef uint8_t* oem = <uint8_t*>cnp.PyArray_DATA(emitted)
        cdef uint8_t* odi = <uint8_t*>cnp.PyArray_DATA(dirty)
        cdef double* osum = <double*>cnp.PyArray_DATA(sum_arr) if want_sums else NULL
        cdef double* omin = <double*>cnp.PyArray_DATA(min_arr) if want_mins else NULL
        cdef double* omax = <double*>cnp.PyArray_DATA(max_arr) if want_maxs else NULL
        cdef _AggHead* hd
        cdef double* acc
        with nogil:
            for r in range(m):
                hd = <_AggHead*>(self._entries + r * stride)
                acc = <double*>(hd + 1)
                ok[r] = hd.key
                os[r] = hd.start
                oc[r] = <int64_t>(hd.meta & _AGG_COUNT)
                oem[r] = (hd.meta & _AGG_EMITTED) != 0
                odi[r] = (hd.meta & _AGG_DIRTY) != 0
                for j in range(nv):
                    if want_sums:
                        osum[r * nv + j] = acc[j]
                    if want_mins:
                        omin[r * nv + j] = acc[nv + j]
                    if want_maxs:
                        omax[r * nv + j] = acc[2 * nv + j]
        return {
            "size": self._size,
            "lateness": self._lateness,
            "n_values": self._n_values,
            "key_ids": key_ids,
            "starts": starts,
            "counts": counts,
            "sums": sum_arr,
            "mins": min_arr,
            "maxs": max_arr,
            "emitted": emitted,
            "dirty": dirty,
        }

    @classmethod
    def restore(cls, snapshot):
        """A table equal to the one that produced ``snapshot`` (from either implementation), whose
        windows may come in any order (`snapshot` or `snapshot_unordered`); a window given twice raises
        ``ValueError``."""
        size, lateness, n_values, key_ids, starts, counts, sums, mins, maxs, emitted, dirty = (
            _checks.window_agg_snapshot(snapshot)
        )
        cdef WindowAggTable table = cls(size, lateness, n_values)
        cdef Py_ssize_t m = len(key_ids), r, j, nv = n_values
        if m > _AGG_MAX_WINDOWS:
            raise MemoryError(f"WindowAggTable: more than {_AGG_MAX_WINDOWS} live windows")
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
        table._resize_entries(max(<Py_ssize_t>_AGG_MIN_ENTRIES, m))
        with nogil:
            for r in range(m):
                hd = <_AggHead*>(table._entries + r * table._stride)
                acc = <double*>(hd + 1)
                hd.key = kp[r]
                hd.start = sp[r]
                hd.meta = <uint64_t>cp[r] | (_AGG_EMITTED if emp[r] else 0) | (_AGG_DIRTY if dip[r] else 0)
                for j in range(nv):
                    acc[j] = sump[r * nv + j]
                    acc[nv + j] = minp[r * nv + j]
                    acc[2 * nv + j] = maxp[r * nv + j]
                table._widen_bounds(kp[r], sp[r])
                end = sp[r] + table._size
                if end < table._min_live_end:
                    table._min_live_end = end
                if dip[r]:
                    table._pending += 1
                    if end < table._min_pending_end:
                        table._min_pending_end = end
            table._n = m
            table._reindex(_agg_bits_for(m))
            r = table._first_duplicate()
        if r >= 0:
            raise ValueError(
                f"snapshot holds window (start={starts[r]}, key_id={key_ids[r]}) twice; it is corrupt"
            )
        return table
