# Interval join buffers (kernel 6 of `_core.pyi`; semantics in SEMANTICS.md "Interval join").
#
# Layout: an unordered_map from key id to the key's left and right `JoinBuffer`: a vector of
# (ts, row_id) sorted by (ts, row_id) whose first `head` entries are already purged (purging always
# removes a prefix, because the purge time grows with ts). A side purged empty frees its vector and a key
# with nothing buffered on either side leaves the map, so memory follows the live state, not the number
# of keys ever seen. Per side, a min-heap of (front ts, key id) finds the
# buffers with something due in `purge` without visiting every key (a purge costs O(log keys) per
# purged row); a purge with nothing due costs one comparison against the heap top, the minimum purge
# time. Heap entries go stale when a key's front changes; they are recognised and dropped when they
# surface, so the heap holds at most one entry per buffered row plus one per key.

from libcpp.vector cimport vector
from libcpp.unordered_map cimport unordered_map
from libcpp.utility cimport pair
from libcpp.algorithm cimport is_sorted, sort as cpp_sort
from cython.operator cimport dereference as deref, preincrement as inc


cdef struct JoinEntry:
    int64_t ts
    int64_t row


cdef struct JoinBuffer:
    vector[JoinEntry] items
    size_t head  # items[:head] are purged and wait for compaction


cdef struct KeyBuffers:
    JoinBuffer left
    JoinBuffer right


# one map for both sides, so a record costs one hash lookup (its probe and its insert share it)
ctypedef unordered_map[int64_t, KeyBuffers] KeyMap


cdef inline JoinBuffer* side_buffer(KeyBuffers* kb, int side) noexcept nogil:
    return &kb.left if side == 0 else &kb.right


cdef inline bint buffer_empty(const JoinBuffer* buf) noexcept nogil:
    return buf.head == buf.items.size()
ctypedef pair[int64_t, int64_t] HeapEntry  # (front ts, key id), a min-heap on ts
ctypedef pair[int64_t, int64_t] TsRow


cdef inline void heap_sift_up(HeapEntry* h, size_t i) noexcept nogil:
    cdef HeapEntry x = h[i]
    cdef size_t parent
    while i > 0:
        parent = (i - 1) // 2
        if h[parent].first <= x.first:
            break
        h[i] = h[parent]
        i = parent
    h[i] = x


cdef inline void heap_sift_down(HeapEntry* h, size_t n, size_t i) noexcept nogil:
    cdef HeapEntry x = h[i]
    cdef size_t child
    while True:
        child = 2 * i + 1
        if child >= n:
            break
        if child + 1 < n and h[child + 1].first < h[child].first:
            child += 1
        if x.first <= h[child].first:
            break
        h[i] = h[child]
        i = child
    h[i] = x


cdef inline void heap_pop_top(vector[HeapEntry]* heap) noexcept nogil:
    heap[0][0] = heap.back()
    heap.pop_back()
    if heap.size() > 1:
        heap_sift_down(heap.data(), heap.size(), 0)


cdef inline void heap_replace_top(vector[HeapEntry]* heap, int64_t ts, int64_t key) noexcept nogil:
    heap[0][0] = HeapEntry(ts, key)
    heap_sift_down(heap.data(), heap.size(), 0)


cdef inline int64_t add_clamped(int64_t a, int64_t b, int* over) noexcept nogil:
    """a + b clamped to int64; `over` is +1 / -1 when the exact sum is above / below the range."""
    over[0] = 0
    if b > 0 and a > C_INT64_MAX - b:
        over[0] = 1
        return C_INT64_MAX
    if b < 0 and a < C_INT64_MIN - b:
        over[0] = -1
        return C_INT64_MIN
    return a + b


cdef inline int64_t sub_clamped(int64_t a, int64_t b, int* over) noexcept nogil:
    """a - b clamped to int64; `over` as in `add_clamped`."""
    over[0] = 0
    if b < 0 and a > C_INT64_MAX + b:
        over[0] = 1
        return C_INT64_MAX
    if b > 0 and a < C_INT64_MIN + b:
        over[0] = -1
        return C_INT64_MIN
    return a - b


cdef inline bint low_bound(int64_t value, int over, bint exclusive, int64_t* out) noexcept nogil:
    """Smallest int64 ``x`` with ``x >= exact`` (``x > exact`` when exclusive); False when none exists."""
    if over > 0:
        return False
    if over < 0:
        out[0] = C_INT64_MIN  # exact < INT64_MIN, so even exact + 1 <= INT64_MIN
        return True
    if exclusive:
        if value == C_INT64_MAX:
            return False
        value += 1
    out[0] = value
    return True


cdef inline bint high_bound(int64_t value, int over, bint exclusive, int64_t* out) noexcept nogil:
    """Largest int64 ``x`` with ``x <= exact`` (``x < exact`` when exclusive); False when none exists."""
    if over < 0:
        return False
    if over > 0:
        out[0] = C_INT64_MAX
        return True
    if exclusive:
        if value == C_INT64_MIN:
            return False
        value -= 1
    out[0] = value
    return True


cdef inline bint entry_less(int64_t ts, int64_t row, const JoinEntry* b) noexcept nogil:
    """(ts, row) < (b.ts, b.row)."""
    return ts < b.ts or (ts == b.ts and row < b.row)


cdef inline size_t first_at_or_after(const JoinEntry* items, size_t lo, size_t hi, int64_t ts) noexcept nogil:
    """First index in [lo, hi) whose ts >= `ts` (hi when none); items sorted by ts."""
    cdef size_t mid
    while lo < hi:
        mid = lo + (hi - lo) // 2
        if items[mid].ts < ts:
            lo = mid + 1
        else:
            hi = mid
    return lo


cdef inline size_t first_after_entry(const JoinEntry* items, size_t lo, size_t hi, int64_t ts, int64_t row) noexcept nogil:
    """First index in [lo, hi) whose (ts, row) > (ts, row): the insertion point that keeps ties stable."""
    cdef size_t mid
    while lo < hi:
        mid = lo + (hi - lo) // 2
        if items[mid].ts < ts or (items[mid].ts == ts and items[mid].row <= row):
            lo = mid + 1
        else:
            hi = mid
    return lo


cdef class IntervalJoinBuffers:
    """Per-key left and right buffers ordered by time, holding caller-assigned row ids.

    A pair ``(l, r)`` matches when the keys are equal and ``l.ts + lower <= r.ts <= l.ts + upper``
    (each bound exclusive by flag). ``process`` handles one side's batch in order: record ``i`` is late
    when ``ts[i] <= wm_before[i]`` (dropped, ``True`` in ``late``); otherwise it probes the other side's
    buffer, then is buffered. Pairs come in probe-record order, then by the buffered record's
    ``(ts, row_id)``. ``purge(W)`` drops left rows with ``W >= ts + upper`` and right rows with
    ``W >= ts - lower`` (saturating) and returns their row ids sorted by ``(ts, row_id)``.

    The match condition is evaluated exactly (as with unbounded ints): a bound such as ``ts + upper``
    beyond the int64 range matches every representable timestamp on that side, and an exclusive bound
    there excludes nothing representable. Saturation applies to purge times, as SEMANTICS.md says.
    A record at ``INT64_MIN`` is always late (no watermark is below it).

    Not thread-safe: `process` and `purge` release the GIL while they mutate the buffers, so one object
    must be driven by one thread at a time (the runtime's one asyncio loop per worker does that).
    """

    # C++ members are single attributes (Cython constructs those, but not arrays of them)
    cdef KeyMap _keys
    cdef vector[HeapEntry] _left_heap, _right_heap
    cdef int64_t _lower, _upper
    cdef bint _lower_exclusive, _upper_exclusive
    cdef Py_ssize_t _size

    def __init__(self, lower, upper, lower_exclusive=False, upper_exclusive=False):
        self._lower, self._upper = _checks.interval_bounds(lower, upper)
        self._lower_exclusive = _checks.flag("lower_exclusive", lower_exclusive)
        self._upper_exclusive = _checks.flag("upper_exclusive", upper_exclusive)
        self._keys.clear()
        self._left_heap.clear()
        self._right_heap.clear()
        self._size = 0

    cdef inline vector[HeapEntry]* _heap(self, int side) noexcept nogil:
        return &self._left_heap if side == 0 else &self._right_heap

    # --- matching ----------------------------------------------------------------------------------

    cdef inline bint _other_range(self, int side, int64_t ts, int64_t* lo, int64_t* hi) noexcept nogil:
        """The int64 range [lo, hi] of the other side's ts that match a record at `ts`; False if empty."""
        cdef int over_lo, over_hi
        cdef int64_t a, b
        if side == 0:  # right r: ts + lower <= r.ts <= ts + upper
            a = add_clamped(ts, self._lower, &over_lo)
            b = add_clamped(ts, self._upper, &over_hi)
            if not low_bound(a, over_lo, self._lower_exclusive, lo):
                return False
            if not high_bound(b, over_hi, self._upper_exclusive, hi):
                return False
        else:  # left l: ts - upper <= l.ts <= ts - lower
            a = sub_clamped(ts, self._upper, &over_lo)
            b = sub_clamped(ts, self._lower, &over_hi)
            if not low_bound(a, over_lo, self._upper_exclusive, lo):
                return False
            if not high_bound(b, over_hi, self._lower_exclusive, hi):
                return False
        return lo[0] <= hi[0]

    cdef inline int64_t _purge_time(self, int side, int64_t ts) noexcept nogil:
        if side == 0:
            return sat_add(ts, self._upper)
        return sat_sub(ts, self._lower)

    # --- buffering ---------------------------------------------------------------------------------

    cdef int _insert(self, JoinBuffer* buf, int side, int64_t key, int64_t ts, int64_t row) except -1 nogil:
        cdef size_t n = buf.items.size()
        cdef size_t pos
        cdef JoinEntry entry
        entry.ts = ts
        entry.row = row
        if buf.head == n:  # empty (a fresh map entry, or this side was purged empty)
            buf.items.clear()
            buf.head = 0
            buf.items.push_back(entry)
            self._heap_push(side, ts, key)
        elif not entry_less(ts, row, &buf.items[n - 1]):
            # at or after the back: the common, in-order case
            buf.items.push_back(entry)
        else:
            pos = first_after_entry(buf.items.data(), buf.head, n, ts, row)
            if pos == buf.head and ts < buf.items[buf.head].ts:
                self._heap_push(side, ts, key)  # a new front: the heap must know the earlier purge time
            buf.items.insert(buf.items.begin() + pos, entry)
        self._size += 1
        return 0

    cdef inline int _heap_push(self, int side, int64_t ts, int64_t key) except -1 nogil:
        cdef vector[HeapEntry]* heap = self._heap(side)
        heap.push_back(HeapEntry(ts, key))
        heap_sift_up(heap.data(), heap.size() - 1)
        return 0

    cdef int _probe(self, const JoinBuffer* buf, int side, int64_t ts, int64_t row,
                    vector[int64_t]* out_left, vector[int64_t]* out_right) except -1 nogil:
        cdef int64_t lo, hi
        cdef const JoinEntry* items
        cdef size_t i, n
        if buffer_empty(buf) or not self._other_range(side, ts, &lo, &hi):
            return 0
        items = buf.items.data()
        n = buf.items.size()
        i = first_at_or_after(items, buf.head, n, lo)
        while i < n and items[i].ts <= hi:
            if side == 0:
                out_left.push_back(row)
                out_right.push_back(items[i].row)
            else:
                out_left.push_back(items[i].row)
                out_right.push_back(row)
            i += 1
        return 0

    def process(self, side, key_ids, ts, row_ids, wm_before):
        """Probe and buffer one side's batch in order; returns ``JoinPairs(left_rows, right_rows, late)``."""
        cdef int s = _checks.side(side)
        key_ids = _checks.int64_column("key_ids", key_ids)
        ts = _checks.int64_column("ts", ts)
        row_ids = _checks.int64_column("row_ids", row_ids)
        wm_before = _checks.int64_column("wm_before", wm_before)
        cdef Py_ssize_t n = _checks.same_length(key_ids=key_ids, ts=ts, row_ids=row_ids, wm_before=wm_before)
        late = np.zeros(n, dtype=np.bool_)
        cdef const int64_t[::1] k = key_ids
        cdef const int64_t[::1] t = ts
        cdef const int64_t[::1] r = row_ids
        cdef const int64_t[::1] w = wm_before
        cdef uint8_t[::1] late_view = late.view(np.uint8)
        cdef vector[int64_t] out_left, out_right
        cdef Py_ssize_t i
        cdef KeyBuffers* kb
        with nogil:
            for i in range(n):
                if t[i] <= w[i]:
                    late_view[i] = 1
                    continue
                kb = &self._keys[k[i]]
                self._probe(side_buffer(kb, 1 - s), s, t[i], r[i], &out_left, &out_right)
                self._insert(side_buffer(kb, s), s, k[i], t[i], r[i])
        return JoinPairs(_int64_array(out_left), _int64_array(out_right), late)

    # --- purging -----------------------------------------------------------------------------------

    cdef int _purge_side(self, int side, int64_t watermark, vector[TsRow]* out) except -1 nogil:
        cdef vector[HeapEntry]* heap = self._heap(side)
        cdef KeyMap.iterator it
        cdef JoinBuffer* buf
        cdef int64_t ts, key, barrier
        cdef size_t n, first_live
        # A k-way merge of the keys' due prefixes: each visit takes a key's entries up to the next
        # key's front ts, so the output comes out sorted by ts (ties across keys are fixed by `purge`)
        while heap.size() > 0:
            ts = heap.front().first
            key = heap.front().second
            if watermark < self._purge_time(side, ts):
                break  # the earliest purge time is not due: nothing else is
            it = self._keys.find(key)
            if it == self._keys.end():
                heap_pop_top(heap)  # stale: the key's buffers were emptied earlier
                continue
            buf = side_buffer(&deref(it).second, side)
            n = buf.items.size()
            if buf.head == n or buf.items[buf.head].ts != ts:
                heap_pop_top(heap)  # stale: the front moved (a later entry of the heap describes it)
                continue
            barrier = C_INT64_MAX
            if heap.size() > 1:
                barrier = heap[0][1].first
            if heap.size() > 2 and heap[0][2].first < barrier:
                barrier = heap[0][2].first
            first_live = buf.head
            while (buf.head < n and buf.items[buf.head].ts <= barrier
                   and watermark >= self._purge_time(side, buf.items[buf.head].ts)):
                out.push_back(TsRow(buf.items[buf.head].ts, buf.items[buf.head].row))
                buf.head += 1
            self._size -= <Py_ssize_t>(buf.head - first_live)
            if buf.head == n:
                # free the memory: it follows the live state, not the keys ever seen
                if buffer_empty(side_buffer(&deref(it).second, 1 - side)):
                    self._keys.erase(it)
                else:
                    vector[JoinEntry]().swap(buf.items)
                    buf.head = 0
                heap_pop_top(heap)
                continue
            # compact once half the vector is dead (amortised O(1) per entry), and give memory back
            # after a burst, so capacity stays proportional to what is buffered
            if buf.head * 2 >= n:
                buf.items.erase(buf.items.begin(), buf.items.begin() + buf.head)
                buf.head = 0
                if buf.items.capacity() > 32 and buf.items.size() * 4 < buf.items.capacity():
                    buf.items.shrink_to_fit()
            heap_replace_top(heap, buf.items[buf.head].ts, key)
        if heap.capacity() > 64 and heap.size() * 4 < heap.capacity():
            heap.shrink_to_fit()
        if self._keys.bucket_count() > 1024 and self._keys.size() * 8 < self._keys.bucket_count():
            self._keys.rehash(0)  # the bucket array never shrinks by itself after a burst of keys
        return 0

    def purge(self, watermark):
        """Drop rows that can match nothing once the watermark is ``watermark``; returns their row ids.

        Left rows with ``W >= ts + upper`` and right rows with ``W >= ts - lower`` (saturating), as
        ``(left_row_ids, right_row_ids)``, each sorted by ``(ts, row_id)``.
        """
        cdef int64_t w = _checks.integer("watermark", watermark)
        cdef vector[TsRow] gone_left, gone_right
        with nogil:
            self._purge_side(0, w, &gone_left)
            self._purge_side(1, w, &gone_right)
            # sorted by ts already; only equal ts of different keys can be out of row order
            if not is_sorted(gone_left.begin(), gone_left.end()):
                cpp_sort(gone_left.begin(), gone_left.end())
            if not is_sorted(gone_right.begin(), gone_right.end()):
                cpp_sort(gone_right.begin(), gone_right.end())
        return _purged_rows(gone_left), _purged_rows(gone_right)

    # --- introspection and snapshots ---------------------------------------------------------------

    def __len__(self):
        return self._size

    @property
    def nbytes(self):
        """Memory held: buffer capacities, hash-map nodes and buckets, and the purge heaps."""
        cdef size_t total = sizeof(IntervalJoinBuffers)
        cdef KeyMap.iterator it = self._keys.begin()
        total += self._keys.bucket_count() * sizeof(void*)
        total += (self._left_heap.capacity() + self._right_heap.capacity()) * sizeof(HeapEntry)
        while it != self._keys.end():
            # a node holds the key, both buffers and a next pointer (libstdc++ caches no hash for
            # integer keys)
            total += sizeof(int64_t) + sizeof(KeyBuffers) + sizeof(void*)
            total += deref(it).second.left.items.capacity() * sizeof(JoinEntry)
            total += deref(it).second.right.items.capacity() * sizeof(JoinEntry)
            inc(it)
        return total

    def snapshot(self):
        """Bounds, flags and both sides' buffers as int64 arrays sorted by ``(key_id, ts, row_id)``."""
        result = {
            "lower": int(self._lower),
            "upper": int(self._upper),
            "lower_exclusive": bool(self._lower_exclusive),
            "upper_exclusive": bool(self._upper_exclusive),
        }
        cdef int side
        cdef KeyMap.iterator it
        cdef JoinBuffer* buf
        cdef size_t i, j, count
        cdef int64_t[::1] kv, tv, rv
        for side, name in ((0, "left"), (1, "right")):
            count = 0
            it = self._keys.begin()
            while it != self._keys.end():
                buf = side_buffer(&deref(it).second, side)
                count += buf.items.size() - buf.head
                inc(it)
            keys = np.empty(count, dtype=np.int64)
            ts = np.empty(count, dtype=np.int64)
            rows = np.empty(count, dtype=np.int64)
            kv = keys
            tv = ts
            rv = rows
            j = 0
            it = self._keys.begin()
            while it != self._keys.end():
                buf = side_buffer(&deref(it).second, side)
                for i in range(buf.head, buf.items.size()):
                    kv[j] = deref(it).first
                    tv[j] = buf.items[i].ts
                    rv[j] = buf.items[i].row
                    j += 1
                inc(it)
            order = np.lexsort((rows, ts, keys))
            result[f"{name}_key_ids"] = np.ascontiguousarray(keys[order])
            result[f"{name}_ts"] = np.ascontiguousarray(ts[order])
            result[f"{name}_row_ids"] = np.ascontiguousarray(rows[order])
        return result

    def __reduce__(self):
        # pickling goes through the canonical snapshot (the C++ containers cannot be copied bytewise)
        return (type(self).restore, (self.snapshot(),))

    @classmethod
    def restore(cls, snapshot):
        """Rebuild buffers from `snapshot()` (of either implementation)."""
        lower, upper, lower_exclusive, upper_exclusive, arrays = _checks.interval_join_snapshot(snapshot)
        cdef IntervalJoinBuffers buffers = cls(lower, upper, lower_exclusive, upper_exclusive)
        cdef const int64_t[::1] kv, tv, rv
        cdef Py_ssize_t i
        cdef int side
        for side, name in ((0, "left"), (1, "right")):
            kv = arrays[f"{name}_key_ids"]
            tv = arrays[f"{name}_ts"]
            rv = arrays[f"{name}_row_ids"]
            with nogil:
                for i in range(kv.shape[0]):  # sorted by (key, ts, row): every insert is an append
                    buffers._insert(side_buffer(&buffers._keys[kv[i]], side), side, kv[i], tv[i], rv[i])
        return buffers


cdef object _int64_array(const vector[int64_t]& values):
    out = np.empty(values.size(), dtype=np.int64)
    cdef int64_t[::1] view = out
    cdef size_t i
    for i in range(values.size()):
        view[i] = values[i]
    return out


cdef object _purged_rows(const vector[TsRow]& gone):
    out = np.empty(gone.size(), dtype=np.int64)
    cdef int64_t[::1] view = out
    cdef size_t i
    for i in range(gone.size()):
        view[i] = gone[i].second
    return out
