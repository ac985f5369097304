# Window assignment (kernel 1 of `_core.pyi`): tumbling window starts and sliding-window expansion.
#
# Time math never overflows: the phase of a timestamp within its window, ``(ts - offset) mod size``,
# is computed from ``ts`` shifted into the unsigned range (``ts - INT64_MIN``) plus a precomputed
# constant, so ``ts - offset`` is never formed, and a window that does not fit in int64 is detected by
# comparing against the limits before subtracting or adding. The loops record the first offending row
# and the error is raised after them.
#
# Division by the window size is the whole cost of assignment. A hardware 64-bit divide takes tens of
# cycles, so (as numpy does through libdivide) the size is turned once per call into a multiplier and
# a shift, and each record costs a 64x64->128 multiply instead ("division by invariant integers using
# multiplication", Granlund & Montgomery 1994; the branch-free form).

from libc.stdint cimport uint32_t

cdef extern from *:
    """
    #include <stdint.h>
    static inline uint64_t engine_win_mulhi_u64(uint64_t a, uint64_t b) {
    #if defined(__SIZEOF_INT128__)
        return (uint64_t)(((unsigned __int128)a * b) >> 64);
    #else
        uint64_t a_lo = (uint32_t)a, a_hi = a >> 32, b_lo = (uint32_t)b, b_hi = b >> 32;
        uint64_t lo_lo = a_lo * b_lo, hi_lo = a_hi * b_lo, lo_hi = a_lo * b_hi, hi_hi = a_hi * b_hi;
        uint64_t cross = (lo_lo >> 32) + (uint32_t)hi_lo + lo_hi;
        return (cross >> 32) + (hi_lo >> 32) + hi_hi;
    #endif
    }
    """
    uint64_t engine_win_mulhi_u64(uint64_t a, uint64_t b) noexcept nogil


cdef struct _WinDivisor:
    uint64_t d
    uint64_t magic
    int shift
    bint is_one  # d == 1: the quotient is the dividend itself


cdef _WinDivisor _win_divisor(uint64_t d) except *:
    """Multiplier and shift such that `_win_udiv(n, div) == n // d` for every uint64 ``n``; ``d >= 1``."""
    cdef _WinDivisor div
    div.d = d
    div.is_one = d == 1
    div.magic = 0
    div.shift = 0
    if d == 1:
        return div
    py_d = int(d)
    log2_d = py_d.bit_length() - 1
    if py_d & (py_d - 1) == 0:
        div.shift = log2_d - 1  # magic 0: t = n >> 1, then the remaining shift
        return div
    quotient, remainder = divmod(1 << (64 + log2_d), py_d)
    magic = 2 * quotient + (1 if 2 * remainder >= py_d else 0) + 1  # the 2**64 bit is implicit
    div.magic = <uint64_t>(magic & 0xFFFFFFFFFFFFFFFF)
    div.shift = log2_d
    return div


cdef inline uint64_t _win_udiv(uint64_t n, _WinDivisor div) noexcept nogil:
    """``n // div.d`` (the divisor is passed by value so its fields stay in registers in a loop)."""
    if div.is_one:
        return n
    cdef uint64_t q = engine_win_mulhi_u64(div.magic, n)
    return (((n - q) >> 1) + q) >> div.shift


cdef uint64_t _WIN_SIGN = 0x8000000000000000ULL


cdef inline uint64_t _win_unsigned(int64_t t) noexcept nogil:
    """``t - INT64_MIN`` as uint64: an order-preserving map of int64 onto [0, 2**64)."""
    return (<uint64_t>t) ^ _WIN_SIGN


cdef inline int64_t _win_signed(uint64_t u) noexcept nogil:
    """The inverse of `_win_unsigned`."""
    return <int64_t>(u ^ _WIN_SIGN)


cdef inline uint64_t _win_phase(uint64_t u, _WinDivisor period, uint64_t shift) noexcept nogil:
    """``(t - offset) mod period`` for ``u = _win_unsigned(t)``, given ``shift = (INT64_MIN - offset) mod period``."""
    cdef uint64_t r = u - _win_udiv(u, period) * period.d + shift
    if r >= period.d:
        r -= period.d
    return r


cdef uint64_t _win_phase_shift(int64_t period, int64_t offset) except *:
    """The constant of `_win_phase`: ``(INT64_MIN - offset) mod period`` (computed with Python ints)."""
    return (INT64_MIN - int(offset)) % int(period)


# The common case of a micro-batch: its timestamps span less than 2**32 ms (49 days) and the size is
# below 2**32. Then every record is ``base + v`` with ``v`` a uint32 offset from the window grid, and
# the division is a 32x32->64 multiply that compilers vectorize. GCC on x86-64 Linux builds the loops
# for several instruction sets and picks one when the module loads (as numpy's dispatch does), since
# wheels are compiled for the baseline CPU.
cdef extern from *:
    """
    #include <stdint.h>
    #include <stddef.h>
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__)
    #define ENGINE_WIN_CLONES __attribute__((target_clones("default", "avx2", "arch=skylake-avx512")))
    #else
    #define ENGINE_WIN_CLONES
    #endif

    /* The min and max of ts[0..n) (n >= 1). */
    ENGINE_WIN_CLONES
    static void engine_win_min_max_i64(const int64_t* ts, ptrdiff_t n, int64_t* lo, int64_t* hi) {
        int64_t mn = ts[0], mx = ts[0];
        for (ptrdiff_t i = 1; i < n; i++) {
            int64_t x = ts[i];
            mn = x < mn ? x : mn;
            mx = x > mx ? x : mx;
        }
        *lo = mn;
        *hi = mx;
    }

    /* out[i] = base + (ts[i] - base) // size * size, for 0 <= ts[i] - base < 2**32 and size < 2**32;
       magic/shift are the branch-free uint32 divisor of size (size >= 2). */
    ENGINE_WIN_CLONES
    static void engine_win_grid_starts_u32(const int64_t* ts, int64_t* out, ptrdiff_t n, int64_t base,
                                       uint32_t size, uint32_t magic, uint32_t shift) {
        for (ptrdiff_t i = 0; i < n; i++) {
            uint32_t v = (uint32_t)(uint64_t)(ts[i] - base);
            uint32_t q = (uint32_t)(((uint64_t)magic * v) >> 32);
            q = (((v - q) >> 1) + q) >> shift;
            out[i] = base + (int64_t)((uint64_t)q * size);
        }
    }
    """
    void engine_win_min_max_i64(const int64_t* ts, ptrdiff_t n, int64_t* lo, int64_t* hi) noexcept nogil
    void engine_win_grid_starts_u32(const int64_t* ts, int64_t* out, ptrdiff_t n, int64_t base,
                                uint32_t size, uint32_t magic, uint32_t shift) noexcept nogil


cdef int _win_divisor_u32(uint64_t d, uint32_t* magic, uint32_t* shift) except -1:
    """The branch-free uint32 divisor of ``2 <= d < 2**32`` (as `_win_divisor`, in 32 bits)."""
    py_d = int(d)
    log2_d = py_d.bit_length() - 1
    if py_d & (py_d - 1) == 0:
        magic[0] = 0
        shift[0] = log2_d - 1
        return 0
    quotient, remainder = divmod(1 << (32 + log2_d), py_d)
    magic[0] = <uint32_t>((2 * quotient + (1 if 2 * remainder >= py_d else 0) + 1) & 0xFFFFFFFF)
    shift[0] = log2_d
    return 0



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
    cdef _WinDivisor size_div = _win_divisor(<uint64_t>sz)
    cdef uint64_t shift = _win_phase_shift(sz, off)
    # a start above this has its end past INT64_MAX
    cdef uint64_t last_start = _win_unsigned(C_INT64_MAX - sz)
    cdef uint64_t u, r
    cdef Py_ssize_t i, bad = -1
    cdef int64_t lo, hi, base
    cdef uint32_t magic32, shift32
    if n == 0:
        return out_arr
    with nogil:
        engine_win_min_max_i64(&t[0], n, &lo, &hi)
        # window starts grow with ts: if the windows of the min and the max fit, all of them do
        u = _win_unsigned(lo)
        r = _win_phase(u, size_div, shift)
        if not (u < r or u - r > last_start):
            base = _win_signed(u - r)
            u = _win_unsigned(hi)
            r = _win_phase(u, size_div, shift)
            if not (u < r or u - r > last_start) and sz > 1 and sz <= 0xFFFFFFFFLL \
                    and <uint64_t>hi - <uint64_t>base <= 0xFFFFFFFFULL:
                bad = -2  # the fast path below applies
    if bad == -2:
        _win_divisor_u32(<uint64_t>sz, &magic32, &shift32)
        with nogil:
            engine_win_grid_starts_u32(&t[0], &out[0], n, base, <uint32_t>sz, magic32, shift32)
        return out_arr
    bad = -1
    with nogil:
        for i in range(n):
            u = _win_unsigned(t[i])
            r = _win_phase(u, size_div, shift)
            # u < r: the start would be below INT64_MIN
            if u < r or u - r > last_start:
                bad = i
                break
            out[i] = _win_signed(u - r)
    if bad >= 0:
        raise _checks.tumbling_window_error(bad, t[bad], sz, off)
    return out_arr


def sliding_windows(ts, size, slide, offset=0):
    """``(rows, starts)``: every sliding window of each record, ordered by row then start ascending.

    A window start ``s`` satisfies ``s ≡ offset (mod slide)`` and ``ts - size < s <= ts``; ``size``
    need not be a multiple of ``slide`` (with ``size < slide`` a record may fall in no window).
    ``size > 0``, ``slide > 0``, ``-slide < offset < slide``. A record with any window
    ``[s, s + size)`` outside int64 raises ``ValueError`` naming it. The output is sized exactly
    (counted in a first pass unless ``size`` is a multiple of ``slide``), never over-allocated.
    """
    cdef const int64_t[::1] t = _checks.int64_column("ts", ts)
    cdef int64_t sz = _checks.positive("size", size)
    cdef int64_t sl = _checks.positive("slide", slide)
    cdef int64_t off = _checks.offset_within("offset", offset, "slide", sl)
    cdef Py_ssize_t n = t.shape[0]
    cdef _WinDivisor slide_div = _win_divisor(<uint64_t>sl)
    cdef uint64_t shift = _win_phase_shift(sl, off)
    cdef uint64_t usz = <uint64_t>sz
    cdef uint64_t last_end_start = _win_unsigned(C_INT64_MAX - sz)  # the latest start whose end fits
    cdef uint64_t u, r, m, span, first, k = 0, total = 0
    cdef Py_ssize_t i, j = 0, bad = -1
    # when size is a multiple of slide every record has exactly size / slide windows: no counting pass
    cdef bint uniform = (sz % sl) == 0

    if uniform:
        k = <uint64_t>(sz / sl)
        if n and k > <uint64_t>(C_INT64_MAX / n):
            raise MemoryError(f"sliding_windows would produce {n} * {k} (row, start) pairs")
        total = <uint64_t>n * k
    else:
        with nogil:
            for i in range(n):
                r = _win_phase(_win_unsigned(t[i]), slide_div, shift)
                if r < usz:  # else x falls in the gap between windows (size < slide)
                    total += _win_udiv(usz - r - 1, slide_div) + 1  # windows holding x (<= size each)
                    if total > <uint64_t>C_INT64_MAX:
                        break  # too many to allocate; stopping here also keeps total from wrapping
        if total > <uint64_t>C_INT64_MAX:
            raise MemoryError(f"sliding_windows would produce {total} (row, start) pairs")

    rows_arr = np.empty(<int64_t>total, dtype=np.int64)
    starts_arr = np.empty(<int64_t>total, dtype=np.int64)
    cdef int64_t[::1] rows = rows_arr
    cdef int64_t[::1] starts = starts_arr
    with nogil:
        for i in range(n):
            u = _win_unsigned(t[i])
            r = _win_phase(u, slide_div, shift)
            if r >= usz:
                continue
            if not uniform:
                k = _win_udiv(usz - r - 1, slide_div) + 1
            span = r + (k - 1) * <uint64_t>sl  # u - span is the first start; span < size
            if u < span or u - r > last_end_start:
                bad = i
                break
            first = u - span
            for m in range(k):
                rows[j] = i
                starts[j] = _win_signed(first + m * <uint64_t>sl)  # m * slide < size: stays in range
                j += 1
    if bad >= 0:
        raise _checks.sliding_window_error(bad, t[bad], sz, sl, off)
    return rows_arr, starts_arr
