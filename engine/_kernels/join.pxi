# Interval join buffers (kernel 6 of `_core.pyi`; semantics in SEMANTICS.md "Interval join").
#
# Layout: an unordered_map from key id to the key's `KeyBuffers`, a left and a right `JoinBuffer`: a
# vector of (ts, row_id) sorted by (ts, row_id) whose first `head` entries are already purged. A record
# probes the other side's buffer of its key by binary search, then goes into its own side's buffer.
#
# Purging goes through a second index per side, the purge log: every buffered row once more, as
# (ts, row_id, owner), sorted by (ts, row_id) across all keys. A row's purge time grows with its ts, so
# what is due is a prefix of the log, and the due rows of one key are a prefix of that key's buffer. A
# purge walks the due prefix once: it emits the row ids (already in (ts, row_id) order, the contract's
# output order, so nothing is sorted) and advances each owner's head. That is O(1) per purged row, with
# no hash lookup and no heap work per row; a purge with nothing due costs one comparison. `owner` points
# into the map's node: unordered_map nodes stay put when the map rehashes, and a key leaves the map only
# when both its buffers are empty, i.e. when no log entry names it.
#
# A buffered row first goes to the side's `pending` rows (an append, in arrival order). Only when the
# earliest pending row is due does a purge sort them (counting passes over the ts offsets, linear for
# the narrow spans that streams have; see `sort_log_entries`) and merge them into the log: rows arrive
# nearly in time order, so that is mostly an append, and a row shifted into place one at a time (about
# as far back as the stream's disorder) would cost more than the sort. While no pending row is due,
# every due row is in the log, so a purge need not look at them.
#
# Memory follows the live state, not the keys ever seen: a side purged empty frees its vector, a key
# with nothing buffered on either side leaves the map, the logs compact once half of them is purged,
# and buffers give capacity back when it is well above what they hold.

from libcpp.vector cimport vector
from libcpp.unordered_map cimport unordered_map
from libcpp.algorithm cimport sort as cpp_sort
from libc.string cimport memcpy
from cython.operator cimport dereference as deref, preincrement as inc


cdef enum:
    # below this many rows std::sort: the counting passes' fixed cost (clearing and summing up to
    # 3 x 2048 counters) is not worth it
    LOG_RADIX_MIN = 256
    LOG_RADIX_MAX_BITS = 33  # ts spans wider than this (more than three 11-bit passes) use std::sort


cdef struct JoinEntry:
    int64_t ts
    int64_t row


cdef struct JoinBuffer:
    vector[JoinEntry] items
    size_t head  # items[:head] are purged and wait for compaction


cdef struct KeyBuffers:
    JoinBuffer left
    JoinBuffer right
    int64_t key  # the node's own key, so a purge that empties it can erase it


# one map for both sides, so a record costs one hash lookup (its probe and its insert share it)
ctypedef unordered_map[int64_t, KeyBuffers] KeyMap


cdef struct LogEntry:
    int64_t ts
    int64_t row
    KeyBuffers* owner  # the map node holding this row's buffer


cdef struct PurgeLog:
    vector[LogEntry] items  # sorted by (ts, row); items[:head] are purged and wait for compaction
    size_t head
    vector[LogEntry] pending  # buffered rows not yet in `items`, in arrival order
    int64_t pending_min_ts  # the earliest ts among `pending` (meaningful when there are any)
    bint pending_sorted  # `pending` happens to be sorted by (ts, row) already


cdef inline JoinBuffer* side_buffer(KeyBuffers* kb, int side) noexcept nogil:
    return &kb.left if side == 0 else &kb.right


cdef inline bint buffer_empty(const JoinBuffer* buf) noexcept nogil:
    return buf.head == buf.items.size()


cdef inline int reserve_more(vector[LogEntry]* v, size_t extra) except -1 nogil:
    """Capacity for `extra` more entries, growing geometrically (reserving per batch stays amortised O(1))."""
    cdef size_t need = v.size() + extra
    if need > v.capacity():
        v.reserve(need if need > 2 * v.capacity() else 2 * v.capacity())
    return 0


cdef inline bint log_less(const LogEntry& a, const LogEntry& b) noexcept nogil:
    """(a.ts, a.row) < (b.ts, b.row); the owner does not take part (equal pairs are equal output)."""
    return a.ts < b.ts or (a.ts == b.ts and a.row < b.row)


cdef int sort_log_entries(vector[LogEntry]* v) except -1 nogil:
    """Sort by (ts, row): LSD counting passes over ``ts - min(ts)``, then runs of equal ts by row.

    Linear when the ts span is narrow (pending rows cover a few purge intervals); a small vector or
    a span wider than LOG_RADIX_MAX_BITS goes to std::sort.
    """
    cdef size_t n = v.size()
    cdef size_t i, j, buckets, total, count
    cdef LogEntry* src = v.data()
    cdef LogEntry* dst
    cdef LogEntry* swap
    cdef int64_t lo, hi
    cdef uint64_t span, mask, x
    cdef int bits = 0, passes, width, p, shift
    cdef vector[size_t] counts
    cdef size_t* c
    cdef vector[LogEntry] scratch
    if n < LOG_RADIX_MIN:
        cpp_sort(v.begin(), v.end(), log_less)
        return 0
    lo = hi = src[0].ts
    for i in range(1, n):
        if src[i].ts < lo:
            lo = src[i].ts
        elif src[i].ts > hi:
            hi = src[i].ts
    span = <uint64_t>hi - <uint64_t>lo
    while bits < 64 and (span >> bits) != 0:  # (a shift by 64 would be undefined)
        bits += 1
    if bits > LOG_RADIX_MAX_BITS:
        cpp_sort(v.begin(), v.end(), log_less)
        return 0
    if bits > 0:
        passes = (bits + 10) // 11
        width = (bits + passes - 1) // passes
        buckets = (<size_t>1) << width
        mask = buckets - 1
        counts.resize(buckets * passes, 0)
        for i in range(n):
            x = <uint64_t>src[i].ts - <uint64_t>lo
            for p in range(passes):
                counts[p * buckets + ((x >> (p * width)) & mask)] += 1
        scratch.resize(n)
        dst = scratch.data()
        for p in range(passes):
            c = &counts[p * buckets]
            shift = p * width
            if c[((<uint64_t>src[0].ts - <uint64_t>lo) >> shift) & mask] == n:
                continue  # one digit for all: this pass would move nothing
            total = 0
            for j in range(buckets):
                count = c[j]
                c[j] = total
                total += count
            for i in range(n):
                j = ((<uint64_t>src[i].ts - <uint64_t>lo) >> shift) & mask
                dst[c[j]] = src[i]
                c[j] += 1
            swap = src
            src = dst
            dst = swap
        if src != v.data():
            memcpy(v.data(), src, n * sizeof(LogEntry))
    # counting passes are stable: equal ts are in arrival order, which is row order when the caller
    # numbers rows as they come (the runtime does); any other run of equal ts is sorted by row here
    src = v.data()
    i = 1
    while i < n:
        if src[i].ts == src[i - 1].ts and src[i].row < src[i - 1].row:
            j = i - 1
            while j > 0 and src[j - 1].ts == src[i].ts:
                j -= 1
            while i < n and src[i].ts == src[j].ts:
                i += 1
            cpp_sort(src + j, src + i, log_less)
        else:
            i += 1
    return 0


cdef inline size_t log_insertion_point(const LogEntry* items, size_t lo, size_t hi, const LogEntry& e) noexcept nogil:
    """First index in [lo, hi) whose entry is after `e` (hi when none): ties stay in arrival order."""
    # branch-free halving: where the new row lands is data, not a pattern a branch predictor learns
    cdef const LogEntry* base = items + lo
    cdef size_t n = hi - lo
    cdef size_t half
    cdef bint after
    if n == 0:
        return lo
    while n > 1:
        half = n // 2
        after = (base[half - 1].ts < e.ts) | ((base[half - 1].ts == e.ts) & (base[half - 1].row <= e.row))
        base = base + (half if after else 0)
        n -= half
    return <size_t>(base - items) + (0 if log_less(e, base[0]) else 1)


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
    cdef vector[PurgeLog] _logs  # [left, right]
    cdef int64_t _lower, _upper
    cdef bint _lower_exclusive, _upper_exclusive
    cdef Py_ssize_t _size

    def __cinit__(self):
        self._logs.resize(2)  # present even on an object whose __init__ never ran, so no access is out of range

    def __init__(self, lower, upper, lower_exclusive=False, upper_exclusive=False):
        self._lower, self._upper = _checks.interval_bounds(lower, upper)
        self._lower_exclusive = _checks.flag("lower_exclusive", lower_exclusive)
        self._upper_exclusive = _checks.flag("upper_exclusive", upper_exclusive)
        self._keys.clear()
        self._logs.clear()
        self._logs.resize(2)
        self._size = 0

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

    cdef inline KeyBuffers* _key_buffers(self, int64_t key) except NULL nogil:
        """The key's buffers, created empty when the key has none."""
        cdef KeyBuffers* kb = &self._keys[key]
        kb.key = key
        return kb

    cdef int _buffer(self, KeyBuffers* kb, int side, int64_t ts, int64_t row) except -1 nogil:
        """Insert (ts, row) into the key's buffer of `side`, after equal entries; not into the log."""
        cdef JoinBuffer* buf = side_buffer(kb, side)
        cdef size_t n = buf.items.size()
        cdef size_t pos
        cdef JoinEntry entry
        entry.ts = ts
        entry.row = row
        if buf.head == n:  # empty (a fresh map entry, or this side was purged empty)
            buf.items.clear()
            buf.head = 0
            buf.items.push_back(entry)
        elif not entry_less(ts, row, &buf.items[n - 1]):
            # at or after the back: the common, in-order case
            buf.items.push_back(entry)
        else:
            pos = first_after_entry(buf.items.data(), buf.head, n, ts, row)
            buf.items.insert(buf.items.begin() + pos, entry)
        self._size += 1
        return 0

    cdef inline int _log_insert(self, int side, int64_t ts, int64_t row, KeyBuffers* owner) except -1 nogil:
        """Queue a newly buffered row for the side's purge log (see the file header)."""
        cdef PurgeLog* log = &self._logs[side]
        cdef LogEntry e
        e.ts = ts
        e.row = row
        e.owner = owner
        if log.pending.empty():
            log.pending_min_ts = ts
            log.pending_sorted = True
        else:
            if ts < log.pending_min_ts:
                log.pending_min_ts = ts
            if log.pending_sorted and log_less(e, log.pending.back()):
                log.pending_sorted = False
        log.pending.push_back(e)
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
            # room for the whole batch up front: a row's log append then cannot fail after its buffer
            # insert succeeded (on MemoryError the buffers and the log must still agree)
            reserve_more(&self._logs[s].pending, <size_t>n)
            for i in range(n):
                if t[i] <= w[i]:
                    late_view[i] = 1
                    continue
                kb = self._key_buffers(k[i])
                self._probe(side_buffer(kb, 1 - s), s, t[i], r[i], &out_left, &out_right)
                self._buffer(kb, s, t[i], r[i])
                self._log_insert(s, t[i], r[i], kb)
        return JoinPairs(_int64_array(out_left), _int64_array(out_right), late)

    # --- purging -----------------------------------------------------------------------------------

    cdef int _merge_pending(self, PurgeLog* log) except -1 nogil:
        """Sort the pending rows and merge them into the log's items, which stay sorted by (ts, row)."""
        cdef vector[LogEntry] tail
        cdef vector[LogEntry]* pending = &log.pending
        cdef size_t pos, i = 0, j = 0
        if not log.pending_sorted:
            sort_log_entries(pending)
        # every allocation (the sort's scratch, this reserve, the tail copy) comes before the log changes
        reserve_more(&log.items, pending.size())
        # entries up to the first pending row's place stay where they are; only the rest is merged
        pos = log_insertion_point(log.items.data(), log.head, log.items.size(), deref(pending)[0])
        if pos == log.items.size():  # in order after the log: the common case
            log.items.insert(log.items.end(), pending.begin(), pending.end())
        else:
            tail.assign(log.items.begin() + pos, log.items.end())
            log.items.resize(pos)
            while i < tail.size() and j < pending.size():
                if log_less(deref(pending)[j], tail[i]):
                    log.items.push_back(deref(pending)[j])
                    j += 1
                else:
                    log.items.push_back(tail[i])
                    i += 1
            log.items.insert(log.items.end(), tail.begin() + i, tail.end())
            log.items.insert(log.items.end(), pending.begin() + j, pending.end())
        pending.clear()
        return 0

    cdef int _purge_side(self, int side, int64_t watermark, vector[int64_t]* out) except -1 nogil:
        cdef PurgeLog* log = &self._logs[side]
        cdef const LogEntry* items
        cdef JoinBuffer* buf
        cdef size_t i, n, m, lo, hi, mid
        if not log.pending.empty() and watermark >= self._purge_time(side, log.pending_min_ts):
            self._merge_pending(log)  # a pending row is due: it must take its place in the log first
        # (while no pending row is due, every due row is in the log's due prefix)
        items = log.items.data()
        n = log.items.size()
        i = log.head
        if i == n or watermark < self._purge_time(side, items[i].ts):
            return 0  # nothing due
        # the end of the due prefix (purge times grow with ts), so the output is sized before any
        # buffer changes: nothing below can fail half-way
        lo = i + 1
        hi = n
        while lo < hi:
            mid = lo + (hi - lo) // 2
            if watermark >= self._purge_time(side, items[mid].ts):
                lo = mid + 1
            else:
                hi = mid
        n = lo
        out.reserve(n - i)
        while i < n:
            out.push_back(items[i].row)
            # the due log prefix restricted to one key is that key's buffer prefix, in the same
            # order, so this row is at the owner's head
            buf = side_buffer(items[i].owner, side)
            buf.head += 1
            m = buf.items.size()
            if buf.head == m:
                # free the memory: it follows the live state, not the keys ever seen
                if buffer_empty(side_buffer(items[i].owner, 1 - side)):
                    self._keys.erase(items[i].owner.key)  # no other log entry names this key
                else:
                    vector[JoinEntry]().swap(buf.items)
                    buf.head = 0
            elif buf.head * 2 >= m:
                # compact once half the vector is dead (amortised O(1) per entry), and give memory
                # back after a burst, so capacity stays proportional to what is buffered
                buf.items.erase(buf.items.begin(), buf.items.begin() + buf.head)
                buf.head = 0
                if buf.items.capacity() > 32 and buf.items.size() * 4 < buf.items.capacity():
                    buf.items.shrink_to_fit()
            i += 1
        self._size -= <Py_ssize_t>(i - log.head)
        log.head = i
        if log.head * 2 >= log.items.size():
            log.items.erase(log.items.begin(), log.items.begin() + log.head)
            log.head = 0
            if log.items.capacity() > 64 and log.items.size() * 4 < log.items.capacity():
                log.items.shrink_to_fit()
        if log.pending.empty() and log.pending.capacity() > 64 and log.pending.capacity() > 2 * log.items.size():
            # the pending vector is refilled to about the side's live rows between merges; more than
            # that is left from a burst
            vector[LogEntry]().swap(log.pending)
        if self._keys.bucket_count() > 1024 and self._keys.size() * 8 < self._keys.bucket_count():
            self._keys.rehash(0)  # the bucket array never shrinks by itself after a burst of keys
        return 0

    def purge(self, watermark):
        """Drop rows that can match nothing once the watermark is ``watermark``; returns their row ids.

        Left rows with ``W >= ts + upper`` and right rows with ``W >= ts - lower`` (saturating), as
        ``(left_row_ids, right_row_ids)``, each sorted by ``(ts, row_id)``.
        """
        cdef int64_t w = _checks.integer("watermark", watermark)
        cdef vector[int64_t] gone_left, gone_right
        with nogil:
            self._purge_side(0, w, &gone_left)
            self._purge_side(1, w, &gone_right)
        return _int64_array(gone_left), _int64_array(gone_right)

    # --- introspection and snapshots ---------------------------------------------------------------

    def __len__(self):
        return self._size

    @property
    def nbytes(self):
        """Memory held: buffer capacities, hash-map nodes and buckets, and the purge logs."""
        cdef size_t total = sizeof(IntervalJoinBuffers)
        cdef KeyMap.iterator it = self._keys.begin()
        cdef size_t side
        total += self._keys.bucket_count() * sizeof(void*)
        for side in range(self._logs.size()):
            total += sizeof(PurgeLog)
            total += (self._logs[side].items.capacity() + self._logs[side].pending.capacity()) * sizeof(LogEntry)
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
        cdef KeyBuffers* kb
        cdef PurgeLog* log
        cdef LogEntry e
        for side, name in ((0, "left"), (1, "right")):
            kv = arrays[f"{name}_key_ids"]
            tv = arrays[f"{name}_ts"]
            rv = arrays[f"{name}_row_ids"]
            log = &buffers._logs[side]
            with nogil:
                log.items.reserve(kv.shape[0])
                for i in range(kv.shape[0]):  # sorted by (key, ts, row): every buffer insert is an append
                    kb = buffers._key_buffers(kv[i])
                    buffers._buffer(kb, side, tv[i], rv[i])
                    e.ts = tv[i]
                    e.row = rv[i]
                    e.owner = kb
                    log.items.push_back(e)
                sort_log_entries(&log.items)  # one sort, not a shift per row
        return buffers


cdef object _int64_array(const vector[int64_t]& values):
    out = np.empty(values.size(), dtype=np.int64)
    cdef int64_t[::1] view = out
    cdef size_t i
    for i in range(values.size()):
        view[i] = values[i]
    return out
