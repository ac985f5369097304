# Shared declarations and helpers of the compiled kernels (included by _core.pyx).

import numpy as np
cimport numpy as cnp
from libc.stdint cimport int64_t, uint64_t, uint8_t, INT64_MIN as C_INT64_MIN, INT64_MAX as C_INT64_MAX

from engine import _checks
from engine._kernel_types import (
    INT64_MIN, INT64_MAX, LEFT, RIGHT, FiredWindows, FiredSessions, JoinPairs,
    FLAT_KINDS, FLAT_OK, FLAT_SECOND_TYPE, FLAT_SLOW, FlatField,
)

cnp.import_array()


cdef inline int64_t floor_div(int64_t a, int64_t b) noexcept nogil:
    """Floor division for b > 0 (C division truncates toward zero)."""
    cdef int64_t q = a / b
    if (a % b) < 0:
        q -= 1
    return q


cdef inline int64_t floor_mod(int64_t a, int64_t b) noexcept nogil:
    """Modulo in [0, b) for b > 0."""
    cdef int64_t r = a % b
    if r < 0:
        r += b
    return r


cdef inline int64_t sat_add(int64_t a, int64_t b) noexcept nogil:
    """a + b clamped to the int64 range."""
    if b > 0 and a > C_INT64_MAX - b:
        return C_INT64_MAX
    if b < 0 and a < C_INT64_MIN - b:
        return C_INT64_MIN
    return a + b


cdef inline int64_t sat_sub(int64_t a, int64_t b) noexcept nogil:
    """a - b clamped to the int64 range."""
    if b < 0 and a > C_INT64_MAX + b:
        return C_INT64_MAX
    if b > 0 and a < C_INT64_MIN + b:
        return C_INT64_MIN
    return a - b
