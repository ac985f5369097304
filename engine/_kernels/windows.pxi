# Window assignment (kernel 1 of `_core.pyi`): tumbling window starts and sliding-window expansion.
#
# Time math never overflows: the phase of a timestamp within its window, ``(ts - offset) mod size``,
# is computed as ``(ts mod size - offset mod size) mod size`` so ``ts - offset`` is never formed, and a
# window that does not fit in int64 is detected by comparing against the limits before subtracting or
# adding. The loops record the first offending row and the error is raised after them.


cdef inline int64_t _phase(int64_t t, int64_t period, int64_t offset_mod) noexcept nogil:
    """``(t - offset) mod period`` in ``[0, period)`` given ``offset_mod = offset mod period``."""
    cdef int64_t d = floor_mod(t, period) - offset_mod
    if d < 0:
        d += period
    return d


def tumbling_starts(ts, size, offset=0):
    """Start of each timestamp's tumbling window: ``offset + floor((ts - offset) / size) * size``.

    ``size > 0`` and ``-size < offset < size`` (as Flink). The window is ``[start, start + size)``; a
    window that does not fit in int64 raises ``ValueError`` naming the first such timestamp.
    """
    cdef const int64_t[::1] t = _checks.int64_column("ts", ts)
    cdef int64_t sz = _checks.positive("size", size)
    cdef int64_t off = _checks.offset_within("offset", offset, "size", sz)
    cdef Py_ssize_t n = t.shape[0]
    out_arr = np.empty(n, dtype=np.int64)
    cdef int64_t[::1] out = out_arr
    cdef int64_t off_mod = floor_mod(off, sz)
    cdef int64_t last_start = C_INT64_MAX - sz  # a start above this has its end past INT64_MAX
    cdef int64_t x, r, start
    cdef Py_ssize_t i, bad = -1
    with nogil:
        if off_mod == 0:
            for i in range(n):
                x = t[i]
                r = x % sz
                if r < 0:
                    r += sz
                if x < C_INT64_MIN + r:  # x - r would go below INT64_MIN
                    bad = i
                    break
                start = x - r
                if start > last_start:
                    bad = i
                    break
                out[i] = start
        else:
            for i in range(n):
                x = t[i]
                r = _phase(x, sz, off_mod)
                if x < C_INT64_MIN + r:
                    bad = i
                    break
                start = x - r
                if start > last_start:
                    bad = i
                    break
                out[i] = start
    if bad >= 0:
        raise _checks.tumbling_window_error(bad, t[bad], sz, off)
    return out_arr


def sliding_windows(ts, size, slide, offset=0):
    """``(rows, starts)``: every sliding window of each record, ordered by row then start ascending.

    A window start ``s`` satisfies ``s ≡ offset (mod slide)`` and ``ts - size < s <= ts``; ``size``
    need not be a multiple of ``slide`` (with ``size < slide`` a record may fall in no window).
    ``size > 0``, ``slide > 0``, ``-slide < offset < slide``. A record with any window
    ``[s, s + size)`` outside int64 raises ``ValueError`` naming it. The output is counted exactly
    first (one cheap pass), so a large ``size / slide`` never over-allocates.
    """
    cdef const int64_t[::1] t = _checks.int64_column("ts", ts)
    cdef int64_t sz = _checks.positive("size", size)
    cdef int64_t sl = _checks.positive("slide", slide)
    cdef int64_t off = _checks.offset_within("offset", offset, "slide", sl)
    cdef Py_ssize_t n = t.shape[0]
    cdef int64_t off_mod = floor_mod(off, sl)
    cdef int64_t last_end_start = C_INT64_MAX - sz  # the latest start whose end fits
    # when size is a multiple of slide every record has exactly size / slide windows
    cdef bint uniform = (sz % sl) == 0
    cdef int64_t per_record = sz / sl
    cdef int64_t x, r, k, m, span, s, total = 0
    cdef Py_ssize_t i, j = 0, bad = -1

    with nogil:
        for i in range(n):
            x = t[i]
            r = _phase(x, sl, off_mod)
            if r >= sz:
                continue  # in the gap between windows (size < slide)
            k = (sz - r - 1) / sl + 1  # windows holding x
            span = r + (k - 1) * sl  # x - span is the first start; span < size
            if x < C_INT64_MIN + span or x - r > last_end_start:
                bad = i
                break
            total = sat_add(total, k)
    if bad >= 0:
        raise _checks.sliding_window_error(bad, t[bad], sz, sl, off)
    if total == C_INT64_MAX:
        raise MemoryError(f"sliding_windows would produce more than {INT64_MAX} (row, start) pairs")

    rows_arr = np.empty(total, dtype=np.int64)
    starts_arr = np.empty(total, dtype=np.int64)
    cdef int64_t[::1] rows = rows_arr
    cdef int64_t[::1] starts = starts_arr
    with nogil:
        for i in range(n):
            x = t[i]
            r = _phase(x, sl, off_mod)
            if r >= sz:
                continue
            if uniform:
                k = per_record
            else:
                k = (sz - r - 1) / sl + 1
            s = x - (r + (k - 1) * sl)  # the first start; checked representable in the first pass
            for m in range(k):
                rows[j] = i
                starts[j] = s + m * sl  # m * sl < size: never overflows
                j += 1
    return rows_arr, starts_arr
