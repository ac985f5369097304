# Regular-expression checks over a column of strings: run a DFA over newline-separated lines.


def dfa_reject_lines(buf, table, accepting, start):
    """Indices (int64, ascending) of the ``\\n``-separated lines of ``buf`` the DFA rejects.

    ``table[state * 256 + byte]`` is the next state; each line starts in ``start`` and is accepted when
    the state after its last byte is ``accepting``. ``buf`` holds ``k`` newlines -> ``k + 1`` lines.
    """
    buf_a, table_a, acc_a, start_i = _checks.dfa_arguments(buf, table, accepting, start)
    cdef const uint8_t[::1] b = buf_a
    cdef const int64_t[::1] t = table_a
    cdef const uint8_t[::1] acc = acc_a.view(np.uint8)
    n_lines = int(np.count_nonzero(buf_a == 10)) + 1
    out = np.empty(n_lines, dtype=np.int64)
    cdef int64_t[::1] o = out
    cdef Py_ssize_t i, n = b.shape[0], count = 0
    cdef int64_t line = 0, s = start_i, first = start_i
    cdef uint8_t c
    with nogil:
        for i in range(n):
            c = b[i]
            if c == 10:
                if not acc[s]:
                    o[count] = line
                    count += 1
                line += 1
                s = first
            else:
                s = t[s * 256 + c]
        if not acc[s]:
            o[count] = line
            count += 1
    return out[:count]
