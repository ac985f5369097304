# Session windows: kernel 5 of `_core.pyi` (included by _core.pyx). Twin: `_reference.SessionTable`.

from cython.operator cimport dereference as deref, preincrement as inc
from libc.math cimport NAN
from libc.stdint cimport int32_t, uint32_t
from libcpp.algorithm cimport make_heap, pop_heap, push_heap, sort as cpp_sort
from libcpp.pair cimport pair
from libcpp.unordered_map cimport unordered_map
from libcpp.vector cimport vector


cdef struct _SessionSlot:
    int64_t key
    int64_t start
    int64_t end
    int64_t count
    int32_t pending  # head of this session's chain in `_pending` (emitted bounds it absorbed), -1 if none
    uint32_t generation  # bumped when the slot is freed, so queue entries of its old session go stale
    uint8_t live
    uint8_t dirty  # holds changes not yet returned by fire
    uint8_t emitted  # fired at least once with its current (start, end)
    uint8_t fire_queued  # has a current entry in the fire queue (exactly when dirty)


cdef struct _SessionPendingMerge:
    int64_t start
    int64_t end
    int32_t next  # next entry of the owner's chain, -1 at the end


# (end, start), (key, slot): std::pair orders lexicographically, which is the emission order.
ctypedef pair[pair[int64_t, int64_t], pair[int64_t, int32_t]] _SessionOrder

# Due queues: std heaps (max-heaps) of (~end, (slot, generation)). ~end = -end - 1 reverses the order
# of every int64 without overflow, so the top is the smallest end. An entry's end is at most its
# session's current end (sessions only grow); entries of freed slots are recognised by the generation.
ctypedef pair[int64_t, pair[int32_t, uint32_t]] _SessionDue

cdef size_t _SESSION_COMPACT_MIN = 64
cdef size_t _SESSION_MAX_SLOTS = 2**31 - 1


cdef inline double _session_nan_min(double current, double value) noexcept nogil:
    # NaN is ignored: a NaN value never replaces, a NaN current is always replaced (the twin's rule)
    if value == value and (current != current or value < current):
        return value
    return current


cdef inline double _session_nan_max(double current, double value) noexcept nogil:
    if value == value and (current != current or value > current):
        return value
    return current


cdef class SessionTable:
    """Per-key session windows with gap ``gap``; sessions that overlap or touch merge.

    ``add(key_ids, ts, values, wm_before)`` processes records in order. Record ``i`` opens
    ``[ts, ts + gap)`` and merges with every live session of its key that overlaps or touches it
    (``s1 <= e2 and s2 <= e1``) into ``[min start, max end)`` with combined count/sum/min/max. It is late
    (``True`` in the returned mask, nothing changes) when ``W_i >= merged_end - 1 + lateness``
    (saturating). A timestamp with ``ts + gap > INT64_MAX`` raises ``ValueError`` naming it, before any
    record of the batch is applied.

    Two readings of the contract, chosen so results never depend on batch boundaries or on when
    ``purge`` runs (SEMANTICS.md, determinism):

    * Watermarks never go backwards: ``W_i = max(wm_before[i], every earlier wm_before, every earlier
      purge watermark)``. For the non-decreasing watermarks the runtime passes this is ``wm_before[i]``.
    * A session is *live* for record ``i`` while ``W_i < end - 1 + lateness``. A session past that
      cleanup time is never merged with, whether ``purge`` has dropped it yet or not (as in Flink, where
      the cleanup timer would have removed it). Such a session can therefore overlap a newer one of the
      same key until it is purged; both are emitted separately.

    Aggregates fold in a fixed order so both implementations agree bit for bit: the touched sessions in
    start order into the earliest one, then the record. Sums propagate NaN; min/max ignore NaN (all-NaN
    gives NaN); ``n_values`` may be 0.

    ``fire(W)`` returns the sessions with ``W >= end - 1`` that changed since they were last returned
    (new, grown by a record, or merged), sorted by ``(end, start, key_id)``. Its ``merged_*`` arrays name
    the bounds of sessions that an earlier ``fire`` returned and that have since been absorbed into one of
    the returned sessions (merged with another, or grown so their bounds changed), sorted by
    ``(end, start, key_id)``; a session updated without changing its bounds is simply returned again.
    ``purge(W)`` drops sessions with ``W >= end - 1 + lateness`` and returns how many. Both take the due
    sessions from min-queues ordered by end (one for changed sessions, one for all), so their cost follows
    what is due, not how many sessions are live, and nothing due costs one comparison.

    Storage: a pool of session slots with a free list, a per-key vector of slots sorted by
    ``(start, end)``, a pool of pending-merge entries chained per owner session, and the two due queues
    (binary heaps whose entries go stale when their session is freed or grows). Purged slots are
    reused; a key left without sessions keeps its empty vector for its next record. The pools are
    compacted when three quarters are free, and empty keys dropped once they outnumber the live sessions,
    so memory follows the live sessions. ``add``, ``fire`` and ``purge`` release the GIL for their loops;
    like every kernel object, a table must not be used from two threads at once.
    """

    cdef int64_t _gap
    cdef int64_t _lateness
    cdef Py_ssize_t _nv
    cdef int64_t _watermark
    cdef vector[_SessionDue] _fire_queue  # one current entry per dirty session
    cdef vector[_SessionDue] _purge_queue  # one current entry per live session
    cdef Py_ssize_t _n_live
    cdef Py_ssize_t _n_pending
    cdef Py_ssize_t _n_empty_keys  # keys kept with no session (reused by their next record)
    cdef vector[_SessionSlot] _slots
    cdef vector[double] _vals  # per slot: sums[nv], mins[nv], maxs[nv]
    cdef vector[int32_t] _free
    cdef vector[_SessionPendingMerge] _pending
    cdef vector[int32_t] _pending_free
    cdef unordered_map[int64_t, vector[int32_t]] _by_key

    def __init__(self, gap, lateness, n_values):
        self._gap = _checks.positive("gap", gap)
        self._lateness = _checks.non_negative("lateness", lateness)
        self._nv = _checks.non_negative("n_values", n_values)
        self._watermark = C_INT64_MIN
        self._n_live = 0
        self._n_pending = 0
        self._n_empty_keys = 0

    @property
    def gap(self):
        return self._gap

    @property
    def lateness(self):
        return self._lateness

    @property
    def n_values(self):
        return self._nv

    # --- slot and chain helpers (no Python objects) ---------------------------------------------

    cdef inline int64_t _cleanup(self, int64_t end) noexcept nogil:
        return sat_add(end - 1, self._lateness)

    cdef int32_t _new_slot(self, int64_t key, int64_t start, int64_t end) noexcept nogil:
        cdef int32_t s
        cdef _SessionSlot blank
        cdef Py_ssize_t c, base
        if self._free.size() > 0:
            s = self._free.back()
            self._free.pop_back()
        else:
            s = <int32_t>self._slots.size()
            blank.live = 0  # every other field is set below; this keeps the compiler's analysis quiet
            blank.pending = -1
            blank.generation = 0
            self._slots.push_back(blank)
            self._vals.resize(self._vals.size() + 3 * self._nv)
        cdef _SessionSlot* p = &self._slots[s]
        p.key = key
        p.start = start
        p.end = end
        p.count = 0
        p.pending = -1
        p.live = 1
        p.dirty = 1
        p.emitted = 0
        p.fire_queued = 0
        self._enqueue(&self._purge_queue, s)
        self._mark_dirty(s)
        base = <Py_ssize_t>s * 3 * self._nv
        for c in range(self._nv):
            self._vals[base + c] = 0.0
            self._vals[base + self._nv + c] = NAN
            self._vals[base + 2 * self._nv + c] = NAN
        self._n_live += 1
        return s

    cdef void _free_chain(self, int32_t head) noexcept nogil:
        while head >= 0:
            self._pending_free.push_back(head)
            self._n_pending -= 1
            head = self._pending[head].next

    cdef void _free_slot(self, int32_t s) noexcept nogil:
        cdef _SessionSlot* p = &self._slots[s]
        self._free_chain(p.pending)
        p.pending = -1
        p.live = 0
        p.generation += 1
        self._free.push_back(s)
        self._n_live -= 1

    cdef void _enqueue(self, vector[_SessionDue]* queue, int32_t s) noexcept nogil:
        cdef _SessionDue entry
        entry.first = ~self._slots[s].end
        entry.second.first = s
        entry.second.second = self._slots[s].generation
        queue.push_back(entry)
        push_heap(queue.begin(), queue.end())

    cdef void _mark_dirty(self, int32_t s) noexcept nogil:
        cdef _SessionSlot* p = &self._slots[s]
        p.dirty = 1
        if not p.fire_queued:
            p.fire_queued = 1
            self._enqueue(&self._fire_queue, s)

    cdef void _rebuild_queues(self) noexcept nogil:
        """Queue every live session for purge and every dirty one for fire, dropping stale entries."""
        cdef size_t s
        cdef _SessionDue entry
        cdef vector[_SessionDue] fire_queue, purge_queue  # fresh vectors: release the old capacity
        purge_queue.reserve(self._n_live)
        for s in range(self._slots.size()):
            if not self._slots[s].live:
                continue
            entry.first = ~self._slots[s].end
            entry.second.first = <int32_t>s
            entry.second.second = self._slots[s].generation
            purge_queue.push_back(entry)
            self._slots[s].fire_queued = self._slots[s].dirty
            if self._slots[s].dirty:
                fire_queue.push_back(entry)
        make_heap(fire_queue.begin(), fire_queue.end())
        make_heap(purge_queue.begin(), purge_queue.end())
        self._fire_queue.swap(fire_queue)
        self._purge_queue.swap(purge_queue)

    cdef inline bint _entry_current(self, _SessionDue* entry) noexcept nogil:
        cdef _SessionSlot* p = &self._slots[entry.second.first]
        return p.live and p.generation == entry.second.second

    cdef void _push_pending(self, int32_t owner, int64_t start, int64_t end) noexcept nogil:
        cdef int32_t e
        cdef _SessionPendingMerge blank
        if self._pending_free.size() > 0:
            e = self._pending_free.back()
            self._pending_free.pop_back()
        else:
            e = <int32_t>self._pending.size()
            blank.start = start
            blank.end = end
            blank.next = -1
            self._pending.push_back(blank)
        self._pending[e].start = start
        self._pending[e].end = end
        self._pending[e].next = self._slots[owner].pending
        self._slots[owner].pending = e
        self._n_pending += 1

    cdef void _move_chain(self, int32_t src, int32_t dst) noexcept nogil:
        """Append session ``src``'s pending chain to ``dst``'s."""
        cdef int32_t head = self._slots[src].pending
        cdef int32_t tail = head
        if head < 0:
            return
        while self._pending[tail].next >= 0:
            tail = self._pending[tail].next
        self._pending[tail].next = self._slots[dst].pending
        self._slots[dst].pending = head
        self._slots[src].pending = -1

    cdef size_t _lower_pos(self, vector[int32_t]* v, int64_t start, int64_t end) noexcept nogil:
        """First position of ``v`` whose session sorts at or after ``(start, end)``."""
        cdef size_t lo = 0, hi = v.size(), mid
        cdef _SessionSlot* p
        while lo < hi:
            mid = (lo + hi) // 2
            p = &self._slots[deref(v)[mid]]
            if p.start < start or (p.start == start and p.end < end):
                lo = mid + 1
            else:
                hi = mid
        return lo

    cdef size_t _after_start(self, vector[int32_t]* v, int64_t start) noexcept nogil:
        """First position of ``v`` whose session starts after ``start``."""
        cdef size_t lo = 0, hi = v.size(), mid
        while lo < hi:
            mid = (lo + hi) // 2
            if self._slots[deref(v)[mid]].start <= start:
                lo = mid + 1
            else:
                hi = mid
        return lo

    # --- add --------------------------------------------------------------------------------------

    def add(self, key_ids, ts, values, wm_before):
        """Apply records in order; return the late mask (see the class docstring)."""
        key_ids = _checks.int64_column("key_ids", key_ids)
        ts = _checks.int64_column("ts", ts)
        wm_before = _checks.int64_column("wm_before", wm_before)
        n = _checks.same_length(key_ids=key_ids, ts=ts, wm_before=wm_before)
        values = _checks.float64_matrix("values", values, n, self._nv)
        _checks.span_end_fits("ts", ts, self._gap, "session end")
        if self._slots.size() + n > _SESSION_MAX_SLOTS or self._pending.size() + n > _SESSION_MAX_SLOTS:
            # slot and pending indices are int32 (half the per-key index memory); refuse, never wrap
            raise ValueError(f"SessionTable cannot hold more than {_SESSION_MAX_SLOTS} sessions; add smaller batches "
                             f"or purge (it holds {self._n_live} sessions)")
        late = np.zeros(n, dtype=np.bool_)
        cdef const int64_t[::1] k_v = key_ids
        cdef const int64_t[::1] t_v = ts
        cdef const int64_t[::1] w_v = wm_before
        cdef const double[:, ::1] x_v = values
        cdef uint8_t[::1] late_v = late.view(np.uint8)
        with nogil:
            self._add_batch(k_v, t_v, x_v, w_v, late_v)
        self._maybe_compact()
        return late

    cdef void _add_batch(self, const int64_t[::1] keys, const int64_t[::1] ts, const double[:, ::1] x,
                         const int64_t[::1] wm, uint8_t[::1] late) noexcept nogil:
        cdef Py_ssize_t i, c, base, obase, nv = self._nv
        cdef Py_ssize_t q
        cdef size_t j, pos
        cdef int64_t w, k, t, e, mstart, mend
        cdef int32_t s, target
        cdef bint same_bounds
        cdef _SessionSlot* p
        cdef _SessionSlot* tp
        cdef vector[int32_t]* v
        cdef vector[size_t] touched  # positions in *v, descending
        cdef unordered_map[int64_t, vector[int32_t]].iterator it
        cdef double val
        for i in range(keys.shape[0]):
            if wm[i] > self._watermark:
                self._watermark = wm[i]
            w = self._watermark
            k = keys[i]
            t = ts[i]
            e = t + self._gap  # checked to fit before the loop
            mstart = t
            mend = e
            touched.clear()
            v = NULL
            it = self._by_key.find(k)
            if it != self._by_key.end():
                v = &deref(it).second
                # Live sessions of a key are disjoint and do not touch, so in start order their ends
                # rise too: walk back from the last one starting at or before e until one ends before t.
                # Sessions past their cleanup time may sit in between; they are skipped, never merged.
                j = self._after_start(v, e)
                while j > 0:
                    j -= 1
                    p = &self._slots[deref(v)[j]]
                    if w >= self._cleanup(p.end):
                        continue
                    if p.end < t:
                        break
                    touched.push_back(j)
                    if p.start < mstart:
                        mstart = p.start
                    if p.end > mend:
                        mend = p.end
            if w >= self._cleanup(mend):
                late[i] = 1
                continue
            if touched.size() == 0:
                target = self._new_slot(k, t, e)
                if v == NULL:
                    v = &self._by_key[k]
                elif v.size() == 0:
                    self._n_empty_keys -= 1
                pos = self._lower_pos(v, t, e)
                v.insert(v.begin() + pos, target)
            else:
                target = deref(v)[touched.back()]
                same_bounds = touched.size() == 1 and self._slots[target].start == mstart and self._slots[target].end == mend
                # fold in start order (touched is descending) into the earliest session
                for q in range(<Py_ssize_t>touched.size() - 1, -1, -1):
                    s = deref(v)[touched[q]]
                    p = &self._slots[s]
                    if p.emitted and not same_bounds:
                        self._push_pending(target, p.start, p.end)
                        p = &self._slots[s]
                    if s != target:
                        tp = &self._slots[target]
                        tp.count += p.count
                        base = <Py_ssize_t>target * 3 * nv
                        obase = <Py_ssize_t>s * 3 * nv
                        for c in range(nv):
                            self._vals[base + c] = self._vals[base + c] + self._vals[obase + c]
                            self._vals[base + nv + c] = _session_nan_min(self._vals[base + nv + c], self._vals[obase + nv + c])
                            self._vals[base + 2 * nv + c] = _session_nan_max(self._vals[base + 2 * nv + c], self._vals[obase + 2 * nv + c])
                        self._move_chain(s, target)
                        self._free_slot(s)
                tp = &self._slots[target]
                if not same_bounds:
                    tp.emitted = 0
                    for q in range(<Py_ssize_t>touched.size()):  # descending positions stay valid
                        v.erase(v.begin() + touched[q])
                    tp.start = mstart
                    tp.end = mend
                    pos = self._lower_pos(v, mstart, mend)
                    v.insert(v.begin() + pos, target)
            self._mark_dirty(target)
            tp = &self._slots[target]
            tp.count += 1
            base = <Py_ssize_t>target * 3 * nv
            for c in range(nv):
                val = x[i, c]
                self._vals[base + c] = self._vals[base + c] + val
                self._vals[base + nv + c] = _session_nan_min(self._vals[base + nv + c], val)
                self._vals[base + 2 * nv + c] = _session_nan_max(self._vals[base + 2 * nv + c], val)

    # --- fire and purge ---------------------------------------------------------------------------

    def fire(self, watermark):
        """Sessions due at ``watermark`` with unemitted changes, and the emitted ones they absorbed."""
        cdef int64_t w = _checks.integer("watermark", watermark)
        cdef vector[_SessionOrder] due
        cdef vector[pair[pair[int64_t, int64_t], int64_t]] merged  # ((end, start), key)
        cdef Py_ssize_t r, c, base, nv = self._nv
        cdef _SessionSlot* p
        cdef _SessionOrder order
        cdef _SessionDue entry
        cdef int32_t e, s
        cdef vector[_SessionDue]* queue = &self._fire_queue
        # The queue's top has the smallest end of any dirty session: nothing due costs one comparison.
        if queue.size() > 0 and w >= ~queue.front().first - 1:
            with nogil:
                while queue.size() > 0 and w >= ~queue.front().first - 1:
                    pop_heap(queue.begin(), queue.end())
                    entry = queue.back()
                    queue.pop_back()
                    if not self._entry_current(&entry):
                        continue
                    s = entry.second.first
                    p = &self._slots[s]
                    if w >= p.end - 1:
                        p.fire_queued = 0
                        order.first.first = p.end
                        order.first.second = p.start
                        order.second.first = p.key
                        order.second.second = s
                        due.push_back(order)
                    else:  # the session grew since it was queued: queue it at its current end
                        self._enqueue(queue, s)
                cpp_sort(due.begin(), due.end())
        m = <Py_ssize_t>due.size()
        key_ids = np.empty(m, dtype=np.int64)
        starts = np.empty(m, dtype=np.int64)
        ends = np.empty(m, dtype=np.int64)
        counts = np.empty(m, dtype=np.int64)
        sums = np.empty((m, nv), dtype=np.float64)
        mins = np.empty((m, nv), dtype=np.float64)
        maxs = np.empty((m, nv), dtype=np.float64)
        cdef int64_t[::1] k_o = key_ids, s_o = starts, e_o = ends, c_o = counts
        cdef double[:, ::1] sum_o = sums, min_o = mins, max_o = maxs
        with nogil:
            for r in range(m):
                p = &self._slots[due[r].second.second]
                k_o[r] = p.key
                s_o[r] = p.start
                e_o[r] = p.end
                c_o[r] = p.count
                base = <Py_ssize_t>due[r].second.second * 3 * nv
                for c in range(nv):
                    sum_o[r, c] = self._vals[base + c]
                    min_o[r, c] = self._vals[base + nv + c]
                    max_o[r, c] = self._vals[base + 2 * nv + c]
                e = p.pending
                while e >= 0:
                    merged.push_back(pair[pair[int64_t, int64_t], int64_t](
                        pair[int64_t, int64_t](self._pending[e].end, self._pending[e].start), p.key))
                    e = self._pending[e].next
                self._free_chain(p.pending)
                p.pending = -1
                p.dirty = 0
                p.emitted = 1
            cpp_sort(merged.begin(), merged.end())
        pm = <Py_ssize_t>merged.size()
        merged_key_ids = np.empty(pm, dtype=np.int64)
        merged_starts = np.empty(pm, dtype=np.int64)
        merged_ends = np.empty(pm, dtype=np.int64)
        cdef int64_t[::1] mk_o = merged_key_ids, ms_o = merged_starts, me_o = merged_ends
        for r in range(pm):
            mk_o[r] = merged[r].second
            ms_o[r] = merged[r].first.second
            me_o[r] = merged[r].first.first
        if m:
            self._maybe_compact()
        return FiredSessions(key_ids, starts, ends, counts, sums, mins, maxs,
                             merged_key_ids, merged_starts, merged_ends)

    def purge(self, watermark):
        """Drop sessions with ``watermark >= end - 1 + lateness``; return how many were dropped."""
        cdef int64_t w = _checks.integer("watermark", watermark)
        cdef Py_ssize_t dropped = 0
        cdef int32_t s
        cdef _SessionDue entry
        cdef vector[_SessionDue]* queue = &self._purge_queue
        if w > self._watermark:
            self._watermark = w
        if queue.size() == 0 or w < self._cleanup(~queue.front().first):
            return 0
        with nogil:
            while queue.size() > 0 and w >= self._cleanup(~queue.front().first):
                pop_heap(queue.begin(), queue.end())
                entry = queue.back()
                queue.pop_back()
                if not self._entry_current(&entry):
                    continue
                s = entry.second.first
                if w >= self._cleanup(self._slots[s].end):
                    self._unlink(s)
                    self._free_slot(s)
                    dropped += 1
                else:  # the session grew since it was queued
                    self._enqueue(queue, s)
        if dropped:
            self._maybe_compact()
        return dropped

    cdef void _unlink(self, int32_t s) noexcept nogil:
        """Remove slot ``s`` from its key's vector (and the key when it has no session left)."""
        cdef _SessionSlot* p = &self._slots[s]
        cdef unordered_map[int64_t, vector[int32_t]].iterator it = self._by_key.find(p.key)
        cdef vector[int32_t]* v = &deref(it).second
        cdef size_t pos = self._lower_pos(v, p.start, p.end)
        while deref(v)[pos] != s:  # (key, start, end) is unique among live sessions; stay safe anyway
            pos += 1
        v.erase(v.begin() + pos)
        if v.size() == 0:
            # Keep the key's (empty) vector: an active key is likely to open its next session soon,
            # and re-allocating it costs more than the whole lookup. Compaction drops empty keys.
            self._n_empty_keys += 1

    cdef void _maybe_compact(self):
        """Rebuild the pools when three quarters of them are free, so memory follows live sessions."""
        cdef bint sparse_slots = self._slots.size() >= _SESSION_COMPACT_MIN and self._n_live * 4 < <Py_ssize_t>self._slots.size()
        cdef bint sparse_pending = self._pending.size() >= _SESSION_COMPACT_MIN and self._n_pending * 4 < <Py_ssize_t>self._pending.size()
        cdef bint many_empty_keys = self._n_empty_keys >= <Py_ssize_t>_SESSION_COMPACT_MIN and self._n_empty_keys > self._n_live
        # stale queue entries (of merged or re-queued sessions) leave as their ends pass; this bounds them
        cdef bint stale_queues = self._fire_queue.size() + self._purge_queue.size() >= _SESSION_COMPACT_MIN and <Py_ssize_t>(self._fire_queue.size() + self._purge_queue.size()) > 4 * self._n_live
        if not (sparse_slots or sparse_pending or many_empty_keys or stale_queues):
            return
        cdef vector[_SessionSlot] slots
        cdef vector[double] vals
        cdef vector[_SessionPendingMerge] pending
        cdef vector[int32_t] remap
        cdef unordered_map[int64_t, vector[int32_t]] by_key
        cdef unordered_map[int64_t, vector[int32_t]].iterator it
        cdef vector[int32_t]* v
        cdef size_t s, j
        cdef Py_ssize_t c, nv3 = 3 * self._nv
        cdef int32_t e, ne
        cdef _SessionSlot copy
        cdef _SessionPendingMerge entry
        with nogil:
            slots.reserve(self._n_live)
            vals.reserve(self._n_live * nv3)
            pending.reserve(self._n_pending)
            remap.resize(self._slots.size(), -1)
            for s in range(self._slots.size()):
                if not self._slots[s].live:
                    continue
                remap[s] = <int32_t>slots.size()
                copy = self._slots[s]
                copy.pending = -1
                e = self._slots[s].pending
                while e >= 0:
                    entry = self._pending[e]
                    entry.next = copy.pending
                    copy.pending = <int32_t>pending.size()
                    pending.push_back(entry)
                    e = self._pending[e].next
                slots.push_back(copy)
                for c in range(nv3):
                    vals.push_back(self._vals[s * nv3 + c])
            by_key.reserve(self._by_key.size() - self._n_empty_keys)
            it = self._by_key.begin()
            while it != self._by_key.end():
                if deref(it).second.size() == 0:
                    inc(it)
                    continue
                v = &by_key[deref(it).first]
                v.reserve(deref(it).second.size())
                for j in range(deref(it).second.size()):
                    v.push_back(remap[deref(it).second[j]])
                inc(it)
            self._slots.swap(slots)
            self._vals.swap(vals)
            self._pending.swap(pending)
            self._by_key.swap(by_key)
            self._n_empty_keys = 0
            self._rebuild_queues()
            self._free.clear()
            self._free.shrink_to_fit()
            self._pending_free.clear()
            self._pending_free.shrink_to_fit()

    # --- size, snapshot, restore ------------------------------------------------------------------

    def __len__(self):
        return self._n_live

    @property
    def nbytes(self):
        """Bytes held by the pools, the per-key vectors and the key map (capacities, not sizes)."""
        cdef size_t total = (self._slots.capacity() * sizeof(_SessionSlot) + self._vals.capacity() * sizeof(double)
                             + self._free.capacity() * sizeof(int32_t)
                             + self._pending.capacity() * sizeof(_SessionPendingMerge)
                             + (self._fire_queue.capacity() + self._purge_queue.capacity()) * sizeof(_SessionDue)
                             + self._pending_free.capacity() * sizeof(int32_t)
                             + self._by_key.bucket_count() * sizeof(void*))
        cdef unordered_map[int64_t, vector[int32_t]].iterator it = self._by_key.begin()
        while it != self._by_key.end():
            # a node holds the key, the vector header and a next pointer (plus the cached hash)
            total += sizeof(int64_t) + sizeof(vector[int32_t]) + 2 * sizeof(void*)
            total += deref(it).second.capacity() * sizeof(int32_t)
            inc(it)
        return total

    def snapshot(self):
        """Canonical state: sessions sorted by ``(key_id, start, end)``, pending merges with owners."""
        cdef vector[_SessionOrder] order  # ((key, start), (end, slot))
        cdef vector[_SessionOrder] merged  # ((key, start), (end, owner index))
        cdef vector[int64_t] index
        cdef _SessionOrder item
        cdef size_t s
        cdef Py_ssize_t r, c, base, nv = self._nv
        cdef _SessionSlot* p
        cdef int32_t e
        for s in range(self._slots.size()):
            p = &self._slots[s]
            if p.live:
                item.first.first = p.key
                item.first.second = p.start
                item.second.first = p.end
                item.second.second = <int32_t>s
                order.push_back(item)
        cpp_sort(order.begin(), order.end())
        m = <Py_ssize_t>order.size()
        index.resize(self._slots.size(), -1)
        key_ids = np.empty(m, dtype=np.int64)
        starts = np.empty(m, dtype=np.int64)
        ends = np.empty(m, dtype=np.int64)
        counts = np.empty(m, dtype=np.int64)
        sums = np.empty((m, nv), dtype=np.float64)
        mins = np.empty((m, nv), dtype=np.float64)
        maxs = np.empty((m, nv), dtype=np.float64)
        dirty = np.empty(m, dtype=np.bool_)
        emitted = np.empty(m, dtype=np.bool_)
        cdef int64_t[::1] k_o = key_ids, s_o = starts, e_o = ends, c_o = counts
        cdef double[:, ::1] sum_o = sums, min_o = mins, max_o = maxs
        cdef uint8_t[::1] d_o = dirty.view(np.uint8), em_o = emitted.view(np.uint8)
        for r in range(m):
            s = order[r].second.second
            index[s] = r
            p = &self._slots[s]
            k_o[r] = p.key
            s_o[r] = p.start
            e_o[r] = p.end
            c_o[r] = p.count
            d_o[r] = p.dirty
            em_o[r] = p.emitted
            base = <Py_ssize_t>s * 3 * nv
            for c in range(nv):
                sum_o[r, c] = self._vals[base + c]
                min_o[r, c] = self._vals[base + nv + c]
                max_o[r, c] = self._vals[base + 2 * nv + c]
            e = p.pending
            while e >= 0:
                item.first.first = p.key
                item.first.second = self._pending[e].start
                item.second.first = self._pending[e].end
                item.second.second = <int32_t>r
                merged.push_back(item)
                e = self._pending[e].next
        cpp_sort(merged.begin(), merged.end())
        pm = <Py_ssize_t>merged.size()
        merged_key_ids = np.empty(pm, dtype=np.int64)
        merged_starts = np.empty(pm, dtype=np.int64)
        merged_ends = np.empty(pm, dtype=np.int64)
        merged_owners = np.empty(pm, dtype=np.int64)
        cdef int64_t[::1] mk_o = merged_key_ids, ms_o = merged_starts, me_o = merged_ends, mo_o = merged_owners
        for r in range(pm):
            mk_o[r] = merged[r].first.first
            ms_o[r] = merged[r].first.second
            me_o[r] = merged[r].second.first
            mo_o[r] = merged[r].second.second
        return {
            "gap": self._gap,
            "lateness": self._lateness,
            "n_values": self._nv,
            "watermark": self._watermark,
            "key_ids": key_ids,
            "starts": starts,
            "ends": ends,
            "counts": counts,
            "sums": sums,
            "mins": mins,
            "maxs": maxs,
            "dirty": dirty,
            "emitted": emitted,
            "merged_key_ids": merged_key_ids,
            "merged_starts": merged_starts,
            "merged_ends": merged_ends,
            "merged_owners": merged_owners,
        }

    @classmethod
    def restore(cls, snapshot):
        """A table equal to the one that took ``snapshot`` (from either implementation)."""
        snap = _checks.session_snapshot(snapshot)
        cdef SessionTable table = cls(snap["gap"], snap["lateness"], snap["n_values"])
        table._watermark = snap["watermark"]
        cdef const int64_t[::1] k_v = snap["key_ids"], s_v = snap["starts"], e_v = snap["ends"], c_v = snap["counts"]
        cdef const double[:, ::1] sum_v = snap["sums"], min_v = snap["mins"], max_v = snap["maxs"]
        cdef const uint8_t[::1] d_v = snap["dirty"].view(np.uint8), em_v = snap["emitted"].view(np.uint8)
        cdef const int64_t[::1] ms_v = snap["merged_starts"], me_v = snap["merged_ends"], mo_v = snap["merged_owners"]
        cdef Py_ssize_t r, c, base, nv = table._nv
        cdef int32_t s
        cdef _SessionSlot* p
        cdef vector[int32_t] slot_of
        with nogil:
            for r in range(k_v.shape[0]):
                s = table._new_slot(k_v[r], s_v[r], e_v[r])
                slot_of.push_back(s)
                p = &table._slots[s]
                p.count = c_v[r]
                p.dirty = d_v[r]
                p.emitted = em_v[r]
                base = <Py_ssize_t>s * 3 * nv
                for c in range(nv):
                    table._vals[base + c] = sum_v[r, c]
                    table._vals[base + nv + c] = min_v[r, c]
                    table._vals[base + 2 * nv + c] = max_v[r, c]
                table._by_key[k_v[r]].push_back(s)  # the snapshot is sorted by (key, start, end)
            for r in range(mo_v.shape[0]):
                table._push_pending(slot_of[mo_v[r]], ms_v[r], me_v[r])
            table._rebuild_queues()
        return table
