# Windowed aggregation: `WindowAggTable`, an open-addressing hash table keyed by (key_id, window start)
# holding count, and per value column sum, min and max.
#
# Layout (entries, index, and an end index over the entries):
# * entries: the live windows, dense (no holes), in insertion order until a purge moves some. Each is an `_AggHead` (key,
#   start, the count with the dirty/emitted flags in its top bits, and its place in its end bucket:
#   32 bytes) followed by `n_values` sums, mins and maxs, so one record's update touches one or two
#   cache lines. Grows by doubling (large blocks are remapped with mremap, not copied). Purge deletes
#   the dropped windows' index slots and moves the last entries into their places while few are
#   dropped (O(dropped) index work: with partitions read unevenly a watermark step drops ~10% of
#   ~250,000 live windows, and rebuilding the whole index for that was most of the purge); when many
#   are dropped or the buffers shrink it compacts the entries in order, rebuilds the index and gives
#   memory back. A dropped table's large block is parked (one, at most 64 MiB, MADV_FREE) for the
#   next table's entries: no fresh pages to fault in and clear.
# * index: 2^bits uint64 slots, linear probing. A slot is 0 (empty) or ``tag << 32 | (entry + 1)``
#   with ``tag`` the top 32 bits of the splitmix64 hash of (key, start). The home slot is the top
#   ``bits`` bits of the hash, so the index is ordered by hash: it is rebuilt when it grows without
#   touching the entries (a near-sequential merge), and the tag rejects nearly every foreign entry
#   before its cache line is read. 8 bytes per slot keep the index mostly in cache.
# * end index: one bucket per distinct start (so per end: end = start + size) of the live windows,
#   holding its entries' numbers, the emitted-and-clean ones first and the dirty ones after them;
#   a small open-addressing map finds a bucket by start, and two min-heaps of (start, bucket) order
#   every bucket (purge) and the buckets with dirty windows (fire). With tumbling windows the
#   distinct ends are few (hundreds with 250,000 live windows), so fire and purge pop the due
#   buckets off a heap and touch only their windows: O(due + log buckets), plus sorting what fires,
#   whatever the number of live windows (before: a scan of every live window per call). A new
#   window joins its bucket in the add loop while its entry is in cache; an emitted window that
#   gets an allowed-late record swaps into its bucket's dirty part after the add; a moved entry
#   rewrites one id in its bucket (its place is in the head); compaction renumbers the ids.
# add: one loop (`_add_run`) with the table's state in locals. Small batches go record by record
# with a two-stage prefetch pipeline; large ones are first partitioned (stably) by the top hash bits,
# so each partition works on one cache-sized stretch of the index and of the entries it creates
# (index slots are still prefetched: the stretch is cold when its partition starts). Per window,
# records are always added in batch order, so sums are bit-identical to the twin's. Bucketing a
# new window costs a start lookup and an id store (~5-10 ns; runs of one start skip the lookup).
# fire and snapshot read the due buckets' ids (entries prefetched ahead), or, when those hold a
# quarter of the table or more, scan the entries in order; either way the windows are ordered by an
# LSD radix sort of a packed (bucket rank or start, key_id, entry) integer (the start packed as its
# number of window sizes past the first, on the scan), then gathered from the entries in that order.
# fire and purge are O(1) when nothing is due (the smallest dirty and live ends are the heaps' tops).
# Tried, measured and left out: the end buckets as doubly linked lists through the entries (a walk
# is a chain of cache misses: fire of a whole 1M-window table 18 -> 120 ms), bucketing new windows
# in a pass after the add (re-reads every new entry: +8 ms per 1M records in one batch), a start map
# at load 1/2 (mispredicted probe loops: +8 ms there); an MSD bucket pass that copies the entries in their own
# order instead of gathering them at random (slower here: the scatter to many streams and the fresh
# scratch memory cost more than the random reads), entries partitioned by start instead of hash
# (fire ~10% faster on one big batch, but the index loses its locality for streams), and huge-page
# scratch for the partitioned add (malloc hands the same blocks back between batches).

from libc.stdlib cimport malloc, calloc, realloc, free
from libc.string cimport memcpy, memset
from libc.stdint cimport uint32_t
from libcpp.vector cimport vector
from libcpp.pair cimport pair
from libcpp.functional cimport greater
from libcpp.algorithm cimport sort as _agg_std_sort, push_heap as _agg_push_heap, pop_heap as _agg_pop_heap

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
    uint32_t pos       # its place in its bucket's ``ids`` (the struct is padded to 32 bytes anyway)

cdef struct _AggBucket:
    # the live windows of one start (so one end): their entry numbers, ``ids[:dirty]`` clean
    # (emitted), ``ids[dirty:len]`` dirty; an array, not a list through the entries, so walking a
    # bucket reads ids in order and prefetches the entries (a list is a chain of cache misses)
    int64_t start
    uint32_t* ids
    uint32_t len
    uint32_t cap
    uint32_t dirty

ctypedef pair[int64_t, uint32_t] _AggStartId  # (bucket start, bucket id): heap element

cdef extern from *:
    """
    #define ENGINE_AGG_DIRTY (((uint64_t)1) << 63)
    #define ENGINE_AGG_EMITTED (((uint64_t)1) << 62)
    #define ENGINE_AGG_COUNT (ENGINE_AGG_EMITTED - 1)
    #define ENGINE_AGG_GONE (~(uint64_t)0)
    #define ENGINE_AGG_NONE ((uint32_t)0xFFFFFFFF)
    """
    uint64_t _AGG_DIRTY "ENGINE_AGG_DIRTY"      # has additions not emitted yet
    uint64_t _AGG_EMITTED "ENGINE_AGG_EMITTED"  # fired at least once
    uint64_t _AGG_COUNT "ENGINE_AGG_COUNT"      # mask of the record count
    uint64_t _AGG_GONE "ENGINE_AGG_GONE"        # meta of an entry being purged (no live window has it)
    uint32_t _AGG_NONE "ENGINE_AGG_NONE"        # no entry / no bucket

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


cdef inline uint64_t _agg_start_hash(int64_t start) noexcept nogil:
    """Fibonacci hashing of a window start for the start map (use the top bits): one multiply on
    the path of every new window's bucket lookup; starts in arithmetic progression (a window grid)
    spread evenly over the slots."""
    return <uint64_t>start * <uint64_t>0x9E3779B97F4A7C15


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
      among live windows is tracked exactly); otherwise O(windows due + log distinct ends), plus
      sorting what fires: windows are indexed by end, so the live windows that are not due cost
      nothing (purge's compaction, when it drops over a third of the table or shrinks its buffers,
      is O(live), paid for by the drops).
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
    # The end index: one bucket per distinct start of the live windows (ids reused through
    # _free_buckets), found by start through _bmap (open addressing, bucket id + 1 per slot, 0 empty),
    # ordered by two min-heaps of (start, id): every live bucket (purge), and every bucket with dirty
    # windows (fire), each bucket at most once.
    cdef vector[_AggBucket] _buckets
    cdef vector[uint32_t] _free_buckets
    cdef uint32_t* _bmap
    cdef int _bmap_bits
    cdef vector[_AggStartId] _live_heap
    cdef vector[_AggStartId] _dirty_heap
    cdef vector[uint32_t] _redirtied  # emitted windows an `add` made dirty again (moved after it)
    cdef int64_t _kmin, _kmax        # bounds of the key ids of live windows (not tight: for sort keys)

    def __cinit__(self):
        self._entries = NULL
        self._index = NULL
        self._bmap = NULL

    def __init__(self, size, lateness, n_values):
        self._size = _checks.positive("size", size)
        self._lateness = _checks.non_negative("lateness", lateness)
        self._n_values = _checks.value_columns("n_values", n_values)
        self._stride = sizeof(_AggHead) + 3 * self._n_values * sizeof(double)
        self._nothing_fired = None
        self._n = 0
        self._pending = 0
        self._min_live_end = C_INT64_MAX
        self._min_pending_end = C_INT64_MAX
        self._kmin = C_INT64_MAX
        self._kmax = C_INT64_MIN
        self._entry_cap = _AGG_MIN_ENTRIES
        self._entries = <char*>_agg_alloc(self._entry_cap * self._stride)
        self._bits = _AGG_MIN_BITS
        self._index = <uint64_t*>_agg_alloc(((<size_t>1) << self._bits) * sizeof(uint64_t))
        self._bmap_bits = _AGG_MIN_BITS
        self._bmap = <uint32_t*>_agg_alloc(((<size_t>1) << self._bmap_bits) * sizeof(uint32_t))
        if self._entries == NULL or self._index == NULL or self._bmap == NULL:
            raise MemoryError("WindowAggTable: cannot allocate the table")

    def __dealloc__(self):
        cdef size_t k
        for k in range(self._buckets.size()):
            free(self._buckets[k].ids)
        _agg_retire(self._entries, self._entry_cap * self._stride)  # may serve the next table
        _agg_free(self._index, ((<size_t>1) << self._bits) * sizeof(uint64_t))
        _agg_free(self._bmap, ((<size_t>1) << self._bmap_bits) * sizeof(uint32_t))

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
        """Bytes held by the table's buffers (entries, index, end index; the object header is not
        counted)."""
        cdef int64_t ids = 0
        cdef size_t k
        for k in range(self._live_heap.size()):
            ids += self._buckets[self._live_heap[k].second].cap * <int64_t>sizeof(uint32_t)
        return ids + (
            self._entry_cap * self._stride
            + ((<int64_t>1) << self._bits) * <int64_t>sizeof(uint64_t)
            + ((<int64_t>1) << self._bmap_bits) * <int64_t>sizeof(uint32_t)
            + <int64_t>(self._buckets.capacity() * sizeof(_AggBucket))
            + <int64_t>((self._live_heap.capacity() + self._dirty_heap.capacity()) * sizeof(_AggStartId))
            + <int64_t>((self._free_buckets.capacity() + self._redirtied.capacity()) * sizeof(uint32_t))
        )

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

    # --- the end index: buckets of windows by start ----------------------------------------------

    cdef inline uint32_t _bucket_find(self, int64_t start) noexcept nogil:
        """The bucket of ``start``, or _AGG_NONE."""
        cdef uint64_t mask = ((<uint64_t>1) << self._bmap_bits) - 1
        cdef uint64_t i = _agg_start_hash(start) >> (64 - self._bmap_bits)
        cdef uint32_t v
        while True:
            v = self._bmap[i]
            if v == 0:
                return _AGG_NONE
            if self._buckets[v - 1].start == start:
                return v - 1
            i = (i + 1) & mask

    cdef int _bmap_rebuild(self, int bits) except -1 nogil:
        """The start map with ``1 << bits`` slots, from the live buckets (those in the live heap)."""
        cdef uint32_t* fresh = <uint32_t*>_agg_alloc(((<size_t>1) << bits) * sizeof(uint32_t))
        cdef uint64_t mask = ((<uint64_t>1) << bits) - 1, i
        cdef size_t k
        cdef uint32_t b
        if fresh == NULL:
            with gil:
                raise MemoryError("WindowAggTable: cannot allocate the end index")
        for k in range(self._live_heap.size()):
            b = self._live_heap[k].second
            i = _agg_start_hash(self._buckets[b].start) >> (64 - bits)
            while fresh[i] != 0:
                i = (i + 1) & mask
            fresh[i] = b + 1
        _agg_free(self._bmap, ((<size_t>1) << self._bmap_bits) * sizeof(uint32_t))
        self._bmap = fresh
        self._bmap_bits = bits
        return 0

    cdef int64_t _bucket_get(self, int64_t start) except -1 nogil:
        """The bucket of ``start``, created (empty, in the live heap) if there is none."""
        cdef uint32_t b = self._bucket_find(start)
        cdef uint64_t mask, i
        cdef _AggBucket bucket
        if b != _AGG_NONE:
            return b
        # load <= 1/4: a lookup per new window (starts in hash order for a large batch), and at
        # this load nearly every one ends at its home slot (no mispredicted probe loop)
        if 4 * (self._live_heap.size() + 1) > ((<size_t>1) << self._bmap_bits):
            self._bmap_rebuild(self._bmap_bits + 1)
        bucket.start = start
        bucket.ids = NULL
        bucket.len = 0
        bucket.cap = 0
        bucket.dirty = 0
        if self._free_buckets.size():
            b = self._free_buckets.back()
            self._free_buckets.pop_back()
            self._buckets[b] = bucket
        else:
            b = <uint32_t>self._buckets.size()
            self._buckets.push_back(bucket)
        self._live_heap.push_back(_AggStartId(start, b))
        _agg_push_heap(self._live_heap.begin(), self._live_heap.end(), greater[_AggStartId]())
        mask = ((<uint64_t>1) << self._bmap_bits) - 1
        i = _agg_start_hash(start) >> (64 - self._bmap_bits)
        while self._bmap[i] != 0:
            i = (i + 1) & mask
        self._bmap[i] = b + 1
        return b

    cdef int _bucket_forget(self, uint32_t b) except -1 nogil:
        """Remove bucket ``b`` (already taken out of both heaps) from the start map (backward-shift
        deletion, as for the index), free its ids and its id."""
        cdef uint64_t mask = ((<uint64_t>1) << self._bmap_bits) - 1, i, j, home
        cdef int shift = 64 - self._bmap_bits
        cdef uint32_t v
        i = _agg_start_hash(self._buckets[b].start) >> shift
        while self._bmap[i] != b + 1:
            i = (i + 1) & mask
        j = i
        while True:
            j = (j + 1) & mask
            v = self._bmap[j]
            if v == 0:
                break
            home = _agg_start_hash(self._buckets[v - 1].start) >> shift
            if (j > i and (home <= i or home > j)) or (j < i and home <= i and home > j):
                self._bmap[i] = v
                i = j
        self._bmap[i] = 0
        free(self._buckets[b].ids)
        self._buckets[b].ids = NULL
        self._buckets[b].len = 0
        self._buckets[b].cap = 0
        self._buckets[b].dirty = 0
        self._free_buckets.push_back(b)
        return 0

    cdef inline int _bucket_push(self, _AggBucket* bk, uint32_t r) except -1 nogil:
        """Append entry ``r`` to ``bk.ids`` (the caller keeps ``bk.dirty`` right)."""
        cdef uint32_t cap
        cdef uint32_t* ids
        if bk.len == bk.cap:
            cap = 8 if bk.cap == 0 else 2 * bk.cap
            ids = <uint32_t*>realloc(bk.ids, cap * sizeof(uint32_t))
            if ids == NULL:
                with gil:
                    raise MemoryError(f"WindowAggTable: cannot allocate {cap} windows of one end")
            bk.ids = ids
            bk.cap = cap
        bk.ids[bk.len] = r
        (<_AggHead*>(self._entries + r * self._stride)).pos = bk.len
        bk.len += 1
        return 0

    cdef int _bucket_reserve(self, uint32_t b) except -1 nogil:
        """Before a new (dirty) window joins bucket ``b``: room in its ids, and the bucket queued
        for fire if it has no dirty window yet (harmless if the window then fails to appear: fire
        takes nothing from it)."""
        cdef _AggBucket* bk = &self._buckets[b]
        cdef uint32_t cap
        cdef uint32_t* ids
        if bk.len == bk.cap:
            cap = 8 if bk.cap == 0 else 2 * bk.cap
            ids = <uint32_t*>realloc(bk.ids, cap * sizeof(uint32_t))
            if ids == NULL:
                with gil:
                    raise MemoryError(f"WindowAggTable: cannot allocate {cap} windows of one end")
            bk.ids = ids
            bk.cap = cap
        if bk.dirty == bk.len:
            self._queue_dirty(b)
        return 0

    cdef inline int _queue_dirty(self, uint32_t b) except -1 nogil:
        """Bucket ``b`` just got its first dirty window: queue it for fire."""
        self._dirty_heap.push_back(_AggStartId(self._buckets[b].start, b))
        _agg_push_heap(self._dirty_heap.begin(), self._dirty_heap.end(), greater[_AggStartId]())
        return 0

    cdef int _link_redirtied(self) except -1 nogil:
        """After an add: move the windows it made dirty again into the dirty part of their buckets
        (new windows joined theirs in `_add_run`); then the smallest ends from the heaps."""
        cdef uint32_t b, e, p, q
        cdef size_t k
        cdef Py_ssize_t stride = self._stride
        cdef _AggBucket* bk
        cdef _AggHead* hd
        cdef _AggHead* other
        for k in range(self._redirtied.size()):
            e = self._redirtied[k]
            hd = <_AggHead*>(self._entries + e * stride)
            b = self._bucket_find(hd.start)
            bk = &self._buckets[b]
            # swap it with the last clean window, then count it among the dirty ones
            p = hd.pos
            q = bk.dirty - 1
            other = <_AggHead*>(self._entries + bk.ids[q] * stride)
            bk.ids[p] = bk.ids[q]
            other.pos = p
            bk.ids[q] = e
            hd.pos = q
            bk.dirty = q
            if q == bk.len - 1:
                self._queue_dirty(b)
        self._redirtied.clear()
        self._note_heaps()
        return 0

    cdef int _note_redirtied(self, uint32_t r) except -1 nogil:
        """`_add_run`'s rare path, out of its loop (a C++ call that may throw there costs the loop)."""
        self._redirtied.push_back(r)
        return 0

    cdef inline void _note_heaps(self) noexcept nogil:
        """The smallest live and dirty ends, exact, from the tops of the heaps."""
        self._min_live_end = self._live_heap[0].first + self._size if self._live_heap.size() else C_INT64_MAX
        self._min_pending_end = self._dirty_heap[0].first + self._size if self._dirty_heap.size() else C_INT64_MAX

    cdef int _rebuild_buckets(self) except -1 nogil:
        """The end index from the entries alone (restore): in each bucket the clean windows, then
        the dirty ones."""
        cdef int64_t r, last = 0
        cdef uint32_t b = _AGG_NONE
        cdef int dirty_pass
        cdef bint dirty
        cdef _AggHead* hd
        cdef _AggBucket* bk = NULL
        cdef size_t k
        for k in range(self._buckets.size()):
            free(self._buckets[k].ids)
        self._buckets.clear()
        self._free_buckets.clear()
        self._live_heap.clear()
        self._dirty_heap.clear()
        self._kmin = C_INT64_MAX
        self._kmax = C_INT64_MIN
        self._bmap_rebuild(_AGG_MIN_BITS)
        for dirty_pass in range(2):
            for r in range(self._n):
                hd = <_AggHead*>(self._entries + r * self._stride)
                dirty = (hd.meta & _AGG_DIRTY) != 0
                if dirty != dirty_pass:
                    continue
                self._kmin = hd.key if hd.key < self._kmin else self._kmin
                self._kmax = hd.key if hd.key > self._kmax else self._kmax
                if bk == NULL or hd.start != last:
                    b = <uint32_t>self._bucket_get(hd.start)
                    bk = &self._buckets[b]
                    last = hd.start
                self._bucket_push(bk, <uint32_t>r)
                if not dirty:
                    bk.dirty = bk.len
                elif bk.dirty == bk.len - 1:
                    self._queue_dirty(b)
        self._note_heaps()
        return 0

    cdef int _shrink_buckets(self) except -1 nogil:
        """After a purge dropped most buckets: renumber the live ones densely and give the rest of
        the bucket memory and the start map back."""
        cdef vector[uint32_t] renumber
        cdef vector[_AggBucket] kept
        cdef size_t k, live = self._live_heap.size()
        cdef uint32_t b
        renumber.resize(self._buckets.size(), _AGG_NONE)
        kept.reserve(live)
        for k in range(live):
            b = self._live_heap[k].second
            renumber[b] = <uint32_t>kept.size()
            kept.push_back(self._buckets[b])
        for k in range(live):
            self._live_heap[k].second = renumber[self._live_heap[k].second]
        for k in range(self._dirty_heap.size()):
            self._dirty_heap[k].second = renumber[self._dirty_heap[k].second]
        self._buckets.swap(kept)
        self._free_buckets.clear()
        self._free_buckets.shrink_to_fit()
        self._live_heap.shrink_to_fit()
        self._dirty_heap.shrink_to_fit()
        self._bmap_rebuild(_agg_bits_for(2 * <int64_t>live))
        return 0

    cdef inline int _add_run(self, const int64_t* keys, const int64_t* starts, Py_ssize_t step,
                             const double* vals, Py_ssize_t n, int prefetch) except -1 nogil:
        """Add records ``keys[i * step]``, ``starts[i * step]``, ``vals[i * nv:]`` in order.

        A new window joins its end bucket here; windows made dirty again are noted for
        `_link_redirtied`, which the caller runs afterwards. The loop keeps the table's state in
        locals (the
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
        cdef int64_t key, start, bucket_start = 0, kmin = self._kmin, kmax = self._kmax
        cdef _AggHead* hd
        cdef double* acc
        cdef const double* row
        cdef double v, lo, hi
        cdef uint32_t b = 0
        cdef _AggBucket* bk = NULL  # the bucket of `bucket_start` (valid until `_bucket_get`)
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
                if (meta & _AGG_DIRTY) == 0:
                    # an allowed-late addition to an emitted window: `_link_redirtied` moves it into
                    # the dirty part of its bucket afterwards, where fire finds it (rare)
                    self._n = live
                    self._pending = pending
                    self._kmin = kmin
                    self._kmax = kmax
                    self._note_redirtied(<uint32_t>((e & <uint64_t>0xFFFFFFFF) - 1))
                    pending += 1
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
                self._kmin = kmin
                self._kmax = kmax
                if live >= _AGG_MAX_WINDOWS:
                    with gil:
                        raise MemoryError(f"WindowAggTable: more than {_AGG_MAX_WINDOWS} live windows")
                self._resize_entries(2 * cap)
                entries = self._entries
                cap = self._entry_cap
            # its place in the end index, made before the window (what can fail fails first); here,
            # not in a pass after the batch, while the entry is in cache
            if bk == NULL or start != bucket_start:  # (new windows come in runs of one start, mostly)
                b = self._bucket_find(start)
                if b == _AGG_NONE:
                    self._n = live
                    self._pending = pending
                    self._kmin = kmin
                    self._kmax = kmax
                    b = <uint32_t>self._bucket_get(start)
                bk = &self._buckets[b]
                bucket_start = start
            if bk.len == bk.cap or bk.dirty == bk.len:
                self._n = live
                self._pending = pending
                self._kmin = kmin
                self._kmax = kmax
                self._bucket_reserve(b)
            bk.ids[bk.len] = <uint32_t>live
            hd = <_AggHead*>(entries + live * stride)
            acc = <double*>(hd + 1)
            hd.key = key
            hd.start = start
            hd.meta = 1 | _AGG_DIRTY
            hd.pos = bk.len
            bk.len += 1
            kmin = key if key < kmin else kmin
            kmax = key if key > kmax else kmax
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
                self._kmin = kmin
                self._kmax = kmax
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
        self._kmin = kmin
        self._kmax = kmax
        return 0

    cdef int _add(self, const int64_t* keys, const int64_t* starts, const double* vals,
                  Py_ssize_t n) except -1 nogil:
        """Add a batch in record order (per window, so sums are bit-identical to the twin's)."""
        try:
            if n >= _agg_partition_min:
                self._add_partitioned(keys, starts, vals, n)
            else:
                self._add_run(keys, starts, 1, vals, n, 2)
        finally:
            # (also when the add stopped early, out of memory: what it added counts)
            self._link_redirtied()
        return 0

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
        cdef int64_t distinct, need
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
        # pass 1: partition of each record, partition sizes, and a bitmap to estimate how many
        # distinct windows the batch holds
        for b in range(parts):
            offsets[b] = 0
        for i in range(n):
            h = _agg_hash(keys[i], starts[i])
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
            self._add_run(&recs[0].key, &recs[0].start, 2, pvals, n, 1)
        finally:
            free(recs)
            free(pvals)
        if self._n < ((<int64_t>1 << self._bits) // 8):  # the batch hit few windows: give the index back
            self._reindex(_agg_bits_for(self._n))
        return 0

    cdef int _collect(self, vector[uint32_t]& buckets, bint dirty_only, vector[uint64_t]& order) except -1 nogil:
        """Fill ``order`` with the entries of ``buckets`` (ascending start), only the dirty ones with
        ``dirty_only``, sorted by ``(start, key_id)``: O(entries + their sort), never O(live).

        The sort key is the bucket's rank among ``buckets`` and the key id (from the table-wide key
        bounds), packed above the entry number: dense whatever the starts are, and exact; a key id
        span too wide to pack falls back to std::sort of (rank, key_id, entry).
        """
        cdef Py_ssize_t stride = self._stride
        cdef size_t nb = buckets.size(), i, k, m = 0, at
        cdef uint32_t j, lo
        cdef uint64_t kspan, low_mask, comp
        cdef int ebits, cbits
        cdef int64_t kmin = self._kmin, key
        cdef _AggBucket* bk
        cdef vector[pair[pair[size_t, int64_t], uint64_t]] fallback
        order.clear()
        for i in range(nb):
            bk = &self._buckets[buckets[i]]
            m += bk.len - (bk.dirty if dirty_only else 0)
        if m == 0:
            return 0
        ebits = _agg_bit_length(<uint64_t>(self._n - 1))
        if 4 * m >= <size_t>self._n and self._scan(buckets, dirty_only, m, ebits, order):
            return 0
        order.resize(m)
        kspan = <uint64_t>self._kmax - <uint64_t>kmin
        cbits = 65
        if kspan != <uint64_t>0xFFFFFFFFFFFFFFFF and nb - 1 <= (<uint64_t>0xFFFFFFFFFFFFFFFF - kspan) // (kspan + 1):
            cbits = _agg_bit_length((nb - 1) * (kspan + 1) + kspan)
        if cbits + ebits > 64:
            fallback.resize(m)
        at = 0
        for i in range(nb):
            bk = &self._buckets[buckets[i]]
            lo = bk.dirty if dirty_only else 0
            for j in range(lo, bk.len):
                if j + 16 < bk.len:  # the entries are scattered: read ahead
                    _agg_prefetch(self._entries + bk.ids[j + 16] * stride)
                key = (<_AggHead*>(self._entries + bk.ids[j] * stride)).key
                if cbits + ebits <= 64:
                    comp = i * (kspan + 1) + (<uint64_t>key - <uint64_t>kmin)
                    order[at] = (comp << ebits) | bk.ids[j]
                else:
                    fallback[at].first.first = i
                    fallback[at].first.second = key
                    fallback[at].second = bk.ids[j]
                at += 1
        if cbits + ebits <= 64:
            if m > 1:
                if m < _AGG_RADIX_MIN:
                    _agg_std_sort(order.begin(), order.end())
                else:
                    _agg_radix_sort(order, ebits, cbits)
            low_mask = ((<uint64_t>1) << ebits) - 1
            for k in range(m):
                order[k] = order[k] & low_mask
        else:
            _agg_std_sort(fallback.begin(), fallback.end())
            for k in range(m):
                order[k] = fallback[k].second
        return 0

    cdef bint _scan(self, vector[uint32_t]& buckets, bint dirty_only, size_t m, int ebits,
                    vector[uint64_t]& order) except -1 nogil:
        """`_collect` by one sequential pass over the entries, for when ``buckets`` hold a large part
        of the table (a walk of their ids reads the entries at random: slower then). The start is
        packed as its number of window sizes past the first one's, so this works while the starts
        of ``buckets`` lie on one size grid (tumbling windows); a start off it, or a sort key too
        wide for 64 bits, returns False and leaves the work to the walk."""
        cdef Py_ssize_t stride = self._stride
        cdef size_t nb = buckets.size(), k
        cdef int64_t r, smin = self._buckets[buckets[0]].start, smax = self._buckets[buckets[nb - 1]].start
        cdef uint64_t grid = <uint64_t>self._size, odd, inv, limit, tz_mask, x, q, sspan, kspan
        cdef uint64_t comp, low_mask, kmin = <uint64_t>self._kmin
        cdef int tz, p, cbits
        cdef _AggHead* hd
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
        for k in range(nb):
            x = <uint64_t>self._buckets[buckets[k]].start - <uint64_t>smin
            if (x & tz_mask) != 0 or ((x >> tz) * inv) > limit:
                return False
        sspan = ((<uint64_t>smax - <uint64_t>smin) >> tz) * inv
        kspan = <uint64_t>self._kmax - kmin
        if kspan == <uint64_t>0xFFFFFFFFFFFFFFFF or sspan > (<uint64_t>0xFFFFFFFFFFFFFFFF - kspan) // (kspan + 1):
            return False
        cbits = _agg_bit_length(sspan * (kspan + 1) + kspan)
        if cbits + ebits > 64:
            return False
        order.reserve(m)
        for r in range(self._n):
            hd = <_AggHead*>(self._entries + r * stride)
            if hd.start < smin or hd.start > smax:
                continue
            if dirty_only and not (hd.meta & _AGG_DIRTY):
                continue
            # (every dirty window in [smin, smax] is in one of `buckets`: those are the due ends,
            # with the fire's dirty windows; every window at all when not dirty_only)
            q = ((<uint64_t>hd.start - <uint64_t>smin) >> tz) * inv
            comp = q * (kspan + 1) + (<uint64_t>hd.key - kmin)
            order.push_back((comp << ebits) | <uint64_t>r)
        if m > 1:
            if m < _AGG_RADIX_MIN:
                _agg_std_sort(order.begin(), order.end())
            else:
                _agg_radix_sort(order, ebits, cbits)
        low_mask = ((<uint64_t>1) << ebits) - 1
        for k in range(m):
            order[k] = order[k] & low_mask
        return True

    cdef int64_t _purge(self, int64_t watermark) except -1 nogil:
        """Drop the windows due at ``watermark``: whole buckets, taken from the top of the live heap
        (O(dropped)). Then either their index slots are deleted and the last live entries moved into
        their places (few dropped: O(dropped)), or the entries are compacted in order and the index
        rebuilt (many dropped, or the buffers shrink: O(live), amortised by the drops)."""
        cdef int64_t n = self._n, kept, cap, last_dropped
        cdef int bits
        cdef uint32_t b, j
        cdef _AggBucket* bk
        cdef vector[int64_t] gone
        # A window goes when watermark >= min(start + size - 1 + lateness, INT64_MAX). Below INT64_MAX
        # that is start <= watermark + 1 - lateness - size (exact; nothing goes when that is below
        # INT64_MIN), so buckets are compared by start with one bound.
        if watermark == C_INT64_MAX:
            last_dropped = C_INT64_MAX
        elif watermark + 1 < C_INT64_MIN + self._lateness or watermark + 1 - self._lateness < C_INT64_MIN + self._size:
            return 0
        else:
            last_dropped = watermark + 1 - self._lateness - self._size
        while self._live_heap.size() and self._live_heap[0].first <= last_dropped:
            b = self._live_heap[0].second
            _agg_pop_heap(self._live_heap.begin(), self._live_heap.end(), greater[_AggStartId]())
            self._live_heap.pop_back()
            bk = &self._buckets[b]
            for j in range(bk.len):
                if j + 16 < bk.len:
                    _agg_prefetch(self._entries + bk.ids[j + 16] * self._stride)
                gone.push_back(bk.ids[j])
                (<_AggHead*>(self._entries + bk.ids[j] * self._stride)).meta = _AGG_GONE
            self._bucket_forget(b)
        self._note_heaps()
        kept = n - <int64_t>gone.size()
        bits = self._bits
        # Shrink only when the load fell below 1/8 (index) or 1/4 (entries): the gap to the growth
        # thresholds keeps a steady stream from resizing back and forth.
        if (kept < self._entry_cap // 4 and self._entry_cap > _AGG_MIN_ENTRIES) or kept < ((<int64_t>1 << bits) // 8) \
                or <int64_t>gone.size() > kept // 2:
            self._compact()
            if kept < self._entry_cap // 4 and self._entry_cap > _AGG_MIN_ENTRIES:
                cap = max(<int64_t>_AGG_MIN_ENTRIES, 2 * kept)
                self._resize_entries(cap)
            if kept < ((<int64_t>1 << bits) // 8):
                bits = _agg_bits_for(kept)
            self._reindex(bits)
        else:
            self._delete(gone)
        if self._buckets.size() > 64 and 4 * self._live_heap.size() < self._buckets.size():
            self._shrink_buckets()
        return n - kept

    cdef int _compact(self) except -1 nogil:
        """Remove the _AGG_GONE entries from the dense array, keeping the others' order, renumber
        them in their buckets and tighten the key bounds (the index is stale afterwards: rebuild it)."""
        cdef Py_ssize_t stride = self._stride
        cdef int64_t r, kept = 0, kmin = C_INT64_MAX, kmax = C_INT64_MIN
        cdef size_t k
        cdef uint32_t j
        cdef uint32_t* renumber
        cdef _AggBucket* bk
        cdef _AggHead* hd
        if self._n == 0:
            return 0
        renumber = <uint32_t*>malloc(self._n * sizeof(uint32_t))
        if renumber == NULL:
            with gil:
                raise MemoryError(f"WindowAggTable: cannot compact {self._n} windows")
        for r in range(self._n):
            hd = <_AggHead*>(self._entries + r * stride)
            if hd.meta == _AGG_GONE:
                continue
            kmin = hd.key if hd.key < kmin else kmin
            kmax = hd.key if hd.key > kmax else kmax
            renumber[r] = <uint32_t>kept
            if kept != r:
                memcpy(self._entries + kept * stride, hd, stride)
            kept += 1
        self._n = kept
        self._kmin = kmin
        self._kmax = kmax
        for k in range(self._live_heap.size()):
            bk = &self._buckets[self._live_heap[k].second]
            for j in range(bk.len):
                bk.ids[j] = renumber[bk.ids[j]]
        free(renumber)
        return 0

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

    cdef int _delete(self, vector[int64_t]& gone) except -1 nogil:
        """Remove the entries ``gone`` (marked _AGG_GONE, any order): delete their index slots
        (backward-shift deletion, so no tombstones), then move the live entries above the new end
        into the holes below it and repoint their index slots and links. O(len(gone)). The order of
        the live entries changes (any order is valid; fire and snapshot sort). Both loops hash and
        prefetch `_AGG_AHEAD` entries ahead: the slots are random reads of a large index."""
        cdef Py_ssize_t stride = self._stride
        cdef uint64_t mask = ((<uint64_t>1) << self._bits) - 1, i, j, home, e, h
        cdef int shift = 32 - self._bits, shift64 = 64 - self._bits
        cdef size_t k, m = gone.size(), holes
        cdef int64_t n = self._n, kept = n - <int64_t>m, t
        cdef uint64_t ring[_AGG_AHEAD]
        cdef vector[int64_t] sources, holes_at
        cdef _AggBucket* bk = NULL
        cdef _AggHead* hd
        cdef int64_t last_start = 0
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
        # The holes below `kept` are filled with the live entries at or above it (as many).
        for k in range(m):
            if gone[k] < kept:
                holes_at.push_back(gone[k])
        for t in range(kept, n):
            if (<_AggHead*>(self._entries + t * stride)).meta != _AGG_GONE:
                sources.push_back(t)
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
                _agg_prefetch(self._entries + holes_at[k + _AGG_AHEAD] * stride)
            i = self._slot_of(sources[k], h)
            self._index[i] = (h & <uint64_t>0xFFFFFFFF00000000) | <uint64_t>(holes_at[k] + 1)
            memcpy(self._entries + holes_at[k] * stride, self._entries + sources[k] * stride, stride)
            # its bucket names it at the same place (the moved entries are the newest windows:
            # runs of one start, so the bucket of the last one is usually theirs)
            hd = <_AggHead*>(self._entries + holes_at[k] * stride)
            if bk == NULL or hd.start != last_start:
                bk = &self._buckets[self._bucket_find(hd.start)]
                last_start = hd.start
            bk.ids[hd.pos] = <uint32_t>holes_at[k]
        self._n = kept
        return 0

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
        cdef vector[uint32_t] due
        cdef size_t k
        if self._pending == 0 or w < self._min_pending_end - 1:
            # the common case after a micro-batch: O(1), and no new arrays
            if self._nothing_fired is None:
                empty = self._gather(order, True)[:7]
                for array in empty:
                    array.flags.writeable = False
                self._nothing_fired = FiredWindows(*empty)
            return self._nothing_fired
        with nogil:
            # the due buckets with dirty windows, ascending start (end - 1 <= w; ends fit int64)
            while self._dirty_heap.size() and self._dirty_heap[0].first + (self._size - 1) <= w:
                due.push_back(self._dirty_heap[0].second)
                _agg_pop_heap(self._dirty_heap.begin(), self._dirty_heap.end(), greater[_AggStartId]())
                self._dirty_heap.pop_back()
            self._collect(due, True, order)
            for k in range(due.size()):
                self._buckets[due[k]].dirty = self._buckets[due[k]].len  # (clean once gathered)
        out = self._gather(order, True)
        self._pending -= order.size()
        self._note_heaps()
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
        cdef vector[_AggStartId] by_start = self._live_heap
        cdef vector[uint32_t] buckets
        cdef size_t k
        with nogil:
            _agg_std_sort(by_start.begin(), by_start.end())
            for k in range(by_start.size()):
                buckets.push_back(by_start[k].second)
            self._collect(buckets, False, order)
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
                if dip[r]:
                    table._pending += 1
            table._n = m
            table._reindex(_agg_bits_for(m))
            r = table._first_duplicate()
        if r >= 0:
            raise ValueError(
                f"snapshot holds window (start={starts[r]}, key_id={key_ids[r]}) twice; it is corrupt"
            )
        with nogil:
            table._rebuild_buckets()
        return table
