# Watermarks (kernel 2 of `_core.pyi`): BoundedOutOfOrderness under the per-record rule, the lateness
# test of records against window ends, and the min-over-inputs rule of an operator's watermark.


cdef inline int64_t _wm_bounded(int64_t max_ts, int64_t delay) noexcept nogil:
    """``max_ts - delay - 1``, saturating at INT64_MIN (``max_ts = INT64_MIN`` means no record yet)."""
    return sat_sub(sat_sub(max_ts, delay), 1)


cdef class WatermarkTracker:
    """``BoundedOutOfOrderness(delay)`` for one input partition, under the per-record rule.

    The watermark is ``max_ts - delay - 1`` (saturating) over the records absorbed so far, INT64_MIN
    before any record and INT64_MAX once `end_input` was called; it never goes backwards. Records given
    to `advance` after `end_input` all see INT64_MAX (so they are late), as in Flink after the final
    watermark.
    """

    cdef int64_t _delay
    cdef int64_t _max_ts
    cdef bint _ended

    def __init__(self, delay):
        self._delay = _checks.non_negative("delay", delay)
        self._max_ts = C_INT64_MIN
        self._ended = False

    @property
    def delay(self):
        return self._delay

    @property
    def max_ts(self):
        return self._max_ts

    @property
    def ended(self):
        return bool(self._ended)

    @property
    def current(self):
        if self._ended:
            return INT64_MAX
        return _wm_bounded(self._max_ts, self._delay)

    def advance(self, ts):
        """The watermark in force before each record (from earlier records only); then absorb them."""
        cdef const int64_t[::1] t = _checks.int64_column("ts", ts)
        cdef Py_ssize_t i, n = t.shape[0]
        out_arr = np.empty(n, dtype=np.int64)
        cdef int64_t[::1] out = out_arr
        cdef int64_t m = self._max_ts
        cdef int64_t delay = self._delay
        cdef int64_t w
        with nogil:
            if self._ended:
                for i in range(n):
                    out[i] = C_INT64_MAX
                    if t[i] > m:
                        m = t[i]
            else:
                # the watermark only changes when the running max does
                w = _wm_bounded(m, delay)
                for i in range(n):
                    out[i] = w
                    if t[i] > m:
                        m = t[i]
                        w = _wm_bounded(m, delay)
        self._max_ts = m
        return out_arr

    def end_input(self):
        """The partition is exhausted: ``current`` becomes INT64_MAX for good."""
        self._ended = True

    def snapshot(self):
        return {"delay": self._delay, "max_ts": self._max_ts, "ended": bool(self._ended)}

    @classmethod
    def restore(cls, snapshot):
        cdef WatermarkTracker tracker = cls(_checks.snapshot_field(snapshot, "WatermarkTracker", "delay"))
        tracker._max_ts = _checks.integer("max_ts", _checks.snapshot_field(snapshot, "WatermarkTracker", "max_ts"))
        tracker._ended = bool(_checks.snapshot_field(snapshot, "WatermarkTracker", "ended"))
        return tracker

    def __reduce__(self):
        # pickle through the canonical snapshot, not through the C++ table layout
        return (type(self).restore, (self.snapshot(),))

    def __repr__(self):
        return f"WatermarkTracker(delay={self._delay}, max_ts={self._max_ts}, current={self.current})"


def late_mask(watermarks, window_ends, lateness):
    """``watermarks >= window_ends - 1 + lateness`` elementwise, saturating; ``lateness >= 0``."""
    w_arr = _checks.int64_column("watermarks", watermarks)
    e_arr = _checks.int64_column("window_ends", window_ends)
    _checks.same_length(watermarks=w_arr, window_ends=e_arr)
    cdef const int64_t[::1] w = w_arr
    cdef const int64_t[::1] e = e_arr
    cdef int64_t lat = _checks.non_negative("lateness", lateness)
    cdef Py_ssize_t i, n = w.shape[0]
    out_arr = np.empty(n, dtype=np.bool_)
    cdef uint8_t[::1] out = out_arr.view(np.uint8)
    with nogil:
        for i in range(n):
            out[i] = w[i] >= sat_add(sat_sub(e[i], 1), lat)
    return out_arr


def combine_watermarks(watermarks, idle):
    """Min over the inputs that are not idle; all idle -> max over all (Flink); none -> INT64_MIN."""
    w_arr = _checks.int64_column("watermarks", watermarks)
    idle_arr = _checks.bool_column("idle", idle)
    _checks.same_length(watermarks=w_arr, idle=idle_arr)
    cdef const int64_t[::1] w = w_arr
    cdef const uint8_t[::1] is_idle = idle_arr.view(np.uint8)
    cdef Py_ssize_t i, n = w.shape[0]
    cdef int64_t lo = C_INT64_MAX, hi = C_INT64_MIN
    cdef bint any_active = False
    if n == 0:
        return INT64_MIN
    with nogil:
        for i in range(n):
            if w[i] > hi:
                hi = w[i]
            if not is_idle[i] and w[i] <= lo:
                lo = w[i]
                any_active = True
    return lo if any_active else hi
