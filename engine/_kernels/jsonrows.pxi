# JSON objects encoded from columns: the rows of a columnar batch (window results) as message values,
# written into one buffer without a Python object per row.
#
# The bytes are exactly msgspec's encoding of the dict ``{name: value, ...}`` of each row, so a sink may
# take either path for any batch. Integers and bools are written directly; floats through CPython's
# shortest round-trip repr, rewritten to msgspec's layout (exponent without "+" or leading zeros,
# fixed notation for decimal exponents -5..15, non-finite as null); strings as UTF-8 with JSON's escapes.

from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.ref cimport PyObject
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Free
from libc.stdlib cimport realloc
from libc.stdint cimport uint32_t
from libc.string cimport strlen

cdef extern from "Python.h":
    char* PyOS_double_to_string(double val, char format_code, int precision, int flags, int* ptype) except NULL
    int Py_DTSF_ADD_DOT_0
    const char* PyUnicode_AsUTF8AndSize(object unicode, Py_ssize_t* size) except NULL
    bint PyLong_CheckExact(object o)
    bint PyFloat_CheckExact(object o)
    bint PyUnicode_CheckExact(object o)
    double PyFloat_AS_DOUBLE(object o)

cdef enum:
    _JR_INT = 0
    _JR_FLOAT = 1
    _JR_BOOL = 2
    _JR_OBJECT = 3

cdef const char* _JR_HEX = b"0123456789abcdef"
cdef const char* _JR_DIGITS = b"00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899"


cdef struct _JsonOut:
    char* data
    Py_ssize_t size
    Py_ssize_t cap


cdef int _jr_reserve(_JsonOut* out, Py_ssize_t extra) except -1:
    cdef Py_ssize_t cap = out.cap
    cdef char* data
    if out.size + extra <= cap:
        return 0
    while cap < out.size + extra:
        cap = cap * 2 if cap else 4096
    data = <char*>realloc(out.data, cap)
    if data == NULL:
        raise MemoryError()
    out.data = data
    out.cap = cap
    return 0


cdef inline void _jr_put(_JsonOut* out, const char* s, Py_ssize_t n) noexcept nogil:
    memcpy(out.data + out.size, s, n)
    out.size += n


cdef extern from *:
    int __builtin_clzll(unsigned long long x) nogil

cdef uint64_t[20] _JR_POW10 = [
    1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL, 10000000ULL, 100000000ULL,
    1000000000ULL, 10000000000ULL, 100000000000ULL, 1000000000000ULL, 10000000000000ULL,
    100000000000000ULL, 1000000000000000ULL, 10000000000000000ULL, 100000000000000000ULL,
    1000000000000000000ULL, 10000000000000000000ULL]


cdef inline int _jr_digit_count(uint64_t u) noexcept nogil:
    """Decimal digits of ``u`` (1 for 0): log10 from the bit length (1233/4096 ~ log10(2)), corrected
    by one comparison. ``u | 1`` has as many digits as ``u`` (powers of ten from 10 on are even) and
    makes 0 count as 1."""
    u |= 1
    cdef int t = ((64 - __builtin_clzll(u)) * 1233) >> 12
    return t + 1 - (u < _JR_POW10[t])


cdef inline char* _jr_int_at(char* p, int64_t v) noexcept nogil:
    """Write the decimal digits of ``v`` at ``p`` (room for 20 bytes), return the end: written in place
    from the last digit back once their count is known, two digits per table lookup, eight-digit chunks
    in 32-bit arithmetic (a 64-bit division per pair would be most of the cost); no copy, no call."""
    cdef char* q
    cdef char* end
    cdef uint64_t u
    cdef uint32_t lo, d
    cdef int j
    if v < 0:
        p[0] = b'-'
        p += 1
        u = <uint64_t>0 - <uint64_t>v
    else:
        u = <uint64_t>v
    end = p + _jr_digit_count(u)
    q = end
    while u >= 100000000:
        lo = <uint32_t>(u % 100000000)
        u //= 100000000
        for j in range(4):
            d = lo % 100
            lo //= 100
            q -= 2
            memcpy(q, _JR_DIGITS + 2 * d, 2)
    lo = <uint32_t>u
    while lo >= 100:
        d = lo % 100
        lo //= 100
        q -= 2
        memcpy(q, _JR_DIGITS + 2 * d, 2)
    if lo >= 10:
        memcpy(q - 2, _JR_DIGITS + 2 * lo, 2)
    else:
        q[-1] = <char>(48 + lo)
    return end


cdef inline void _jr_int(_JsonOut* out, int64_t v) noexcept nogil:
    """The decimal digits of ``v`` (room for 20 bytes reserved by the caller)."""
    out.size = _jr_int_at(out.data + out.size, v) - out.data


cdef int _jr_float(_JsonOut* out, double v) except -1:
    """msgspec's JSON of a float (room for 32 bytes reserved by the caller)."""
    cdef char* r
    cdef Py_ssize_t i, n, e_at = -1
    cdef int exponent = 0
    cdef bint negative_exponent
    if not isfinite(v):
        _jr_put(out, b"null", 4)
        return 0
    r = PyOS_double_to_string(v, b'r', 0, Py_DTSF_ADD_DOT_0, NULL)
    n = <Py_ssize_t>strlen(r)
    for i in range(n):
        if r[i] == b'e':
            e_at = i
            break
    if e_at < 0:  # fixed notation, the same in both
        _jr_put(out, r, n)
        PyMem_Free(r)
        return 0
    negative_exponent = r[e_at + 1] == b'-'
    for i in range(e_at + 2, n):
        exponent = exponent * 10 + (r[i] - 48)
    if negative_exponent and exponent == 5:
        # repr switches to an exponent below 1e-4, msgspec below 1e-5: "d.ddde-05" -> "0.0000dddd"
        i = 0
        if r[0] == b'-':
            _jr_put(out, b"-", 1)
            i = 1
        _jr_put(out, b"0.0000", 6)
        while i < e_at:
            if r[i] != b'.':
                out.data[out.size] = r[i]
                out.size += 1
            i += 1
    else:
        _jr_put(out, r, e_at + 1)
        if negative_exponent:
            _jr_put(out, b"-", 1)
        _jr_int(out, exponent)
    PyMem_Free(r)
    return 0


cdef int _jr_string(_JsonOut* out, object value) except -1:
    """A str as a JSON string: UTF-8, with ``"``, ``\\`` and control characters escaped as msgspec does."""
    cdef Py_ssize_t n, i
    cdef const char* s = PyUnicode_AsUTF8AndSize(value, &n)  # raises for lone surrogates
    cdef unsigned char c
    _jr_reserve(out, 6 * n + 2)
    out.data[out.size] = b'"'
    out.size += 1
    for i in range(n):
        c = <unsigned char>s[i]
        if c >= 32 and c != 34 and c != 92:
            out.data[out.size] = <char>c
            out.size += 1
        elif c == 34:
            _jr_put(out, b'\\"', 2)
        elif c == 92:
            _jr_put(out, b"\\\\", 2)
        elif c == 8:
            _jr_put(out, b"\\b", 2)
        elif c == 9:
            _jr_put(out, b"\\t", 2)
        elif c == 10:
            _jr_put(out, b"\\n", 2)
        elif c == 12:
            _jr_put(out, b"\\f", 2)
        elif c == 13:
            _jr_put(out, b"\\r", 2)
        else:
            _jr_put(out, b"\\u00", 4)
            out.data[out.size] = _JR_HEX[c >> 4]
            out.data[out.size + 1] = _JR_HEX[c & 15]
            out.size += 2
    out.data[out.size] = b'"'
    out.size += 1
    return 0


cdef int _jr_object(_JsonOut* out, object value) except -2:
    """Write ``value`` (None, bool, int in int64 range, float or str, exact types); 1 when it is none
    of those (nothing written), else 0."""
    cdef int overflow = 0
    cdef long long iv
    if value is None:
        _jr_put(out, b"null", 4)
    elif value is True:
        _jr_put(out, b"true", 4)
    elif value is False:
        _jr_put(out, b"false", 5)
    elif PyLong_CheckExact(value):
        iv = PyLong_AsLongLongAndOverflow(value, &overflow)
        if overflow:
            return 1
        _jr_int(out, iv)
    elif PyFloat_CheckExact(value):
        _jr_float(out, PyFloat_AS_DOUBLE(value))
    elif PyUnicode_CheckExact(value):
        _jr_string(out, value)
    else:
        return 1
    return 0


cdef enum:
    _JR_SLACK = 32  # bytes `_jr_put_short` may write (and read) past what it copies


cdef struct _JsonColumns:
    # The columns of `json_object_rows`: per column what precedes its value in a row (``{"name":`` for
    # the first, ``,"name":`` for the others), its kind and its data.
    Py_ssize_t n_cols
    const char* prefixes  # followed by _JR_SLACK readable bytes
    const Py_ssize_t* prefix_at  # prefix k is prefixes[prefix_at[k]:prefix_at[k + 1]]
    const int* kinds
    void** data
    Py_ssize_t row_room  # bytes a row may take (slack included) when its strings are left out
    bint fixed  # only int and bool columns: a row is encoded without the GIL


cdef class _JsonColumnsOwner:
    """Owns the arrays behind a `_JsonColumns` (checked by `_checks.json_rows_arguments`)."""
    cdef bytes prefixes
    cdef vector[Py_ssize_t] prefix_at
    cdef vector[int] kinds
    cdef vector[void*] data
    cdef list arrays  # the column arrays the pointers point into
    cdef _JsonColumns cols

    def __cinit__(self, list keys, list arrays, list kinds):
        cdef Py_ssize_t k
        self.arrays = arrays
        self.cols.fixed = True
        parts = []
        self.prefix_at.push_back(0)
        for k in range(len(arrays)):
            parts.append((b"," if k else b"{") + keys[k] + b":")
            self.prefix_at.push_back(self.prefix_at.back() + len(parts[k]))
            self.kinds.push_back(kinds[k])
            self.data.push_back(cnp.PyArray_DATA(arrays[k]))
            if kinds[k] != _JR_INT and kinds[k] != _JR_BOOL:
                self.cols.fixed = False
        self.prefixes = b"".join(parts) + bytes(_JR_SLACK)
        self.cols.n_cols = len(arrays)
        self.cols.prefixes = PyBytes_AS_STRING(self.prefixes)
        self.cols.prefix_at = self.prefix_at.data()
        self.cols.kinds = self.kinds.data()
        self.cols.data = self.data.data()
        # Fixed-width values take at most 32 bytes, "}" 1; strings reserve their own room.
        self.cols.row_room = self.prefix_at.back() + self.cols.n_cols * 32 + 1 + _JR_SLACK


cdef inline void _jr_put_short(_JsonOut* out, const char* s, Py_ssize_t n) noexcept nogil:
    """``_jr_put`` for pieces of at most 32 bytes as one fixed-size move (no call): it writes and reads
    up to `_JR_SLACK` bytes past them, which the caller has room for."""
    if n <= _JR_SLACK:
        memcpy(out.data + out.size, s, _JR_SLACK)
        out.size += n
    else:
        _jr_put(out, s, n)


cdef inline void _jr_prefix(_JsonOut* out, const _JsonColumns* cols, Py_ssize_t k) noexcept nogil:
    _jr_put_short(out, cols.prefixes + cols.prefix_at[k], cols.prefix_at[k + 1] - cols.prefix_at[k])


cdef void _jr_row_fixed(_JsonOut* out, const _JsonColumns* cols, Py_ssize_t i) noexcept nogil:
    """Append row ``i`` of int and bool columns (``cols.fixed``) to ``out``, which has room for
    ``cols.row_room`` more bytes."""
    # A local write position: through ``out`` the compiler would store and reload it after every byte
    # written (a char store may alias it).
    cdef char* p = out.data + out.size
    cdef Py_ssize_t k, n
    cdef const char* prefix
    if cols.n_cols == 0:
        p[0] = b'{'
        p += 1
    for k in range(cols.n_cols):
        prefix = cols.prefixes + cols.prefix_at[k]
        n = cols.prefix_at[k + 1] - cols.prefix_at[k]
        if n <= _JR_SLACK:
            memcpy(p, prefix, _JR_SLACK)  # one fixed-size move, no call: the row has the slack
        else:
            memcpy(p, prefix, n)
        p += n
        if cols.kinds[k] == _JR_INT:
            p = _jr_int_at(p, (<int64_t*>cols.data[k])[i])
        elif (<uint8_t*>cols.data[k])[i]:
            memcpy(p, b"true", 4)
            p += 4
        else:
            memcpy(p, b"false", 5)
            p += 5
    p[0] = b'}'
    out.size = p + 1 - out.data


cdef int _jr_row(_JsonOut* out, const _JsonColumns* cols, Py_ssize_t i) except -2:
    """Append row ``i`` to ``out`` (any kinds; needs the GIL for float and object values); 1 when an
    object value is not one the encoder takes (the row is then partly written), else 0."""
    cdef Py_ssize_t k
    cdef int kind
    _jr_reserve(out, cols.row_room)
    if cols.n_cols == 0:
        _jr_put(out, b"{", 1)
    for k in range(cols.n_cols):
        _jr_prefix(out, cols, k)
        kind = cols.kinds[k]
        if kind == _JR_INT:
            _jr_int(out, (<int64_t*>cols.data[k])[i])
        elif kind == _JR_FLOAT:
            _jr_float(out, (<double*>cols.data[k])[i])
        elif kind == _JR_BOOL:
            if (<uint8_t*>cols.data[k])[i]:
                _jr_put(out, b"true", 4)
            else:
                _jr_put(out, b"false", 5)
        else:
            if _jr_object(out, <object>((<PyObject**>cols.data[k])[i])):
                return 1
            _jr_reserve(out, cols.row_room)  # a string may have used the room of the rest of the row
    out.data[out.size] = b'}'
    out.size += 1
    return 0


def json_object_rows(keys, columns):
    """Encode row ``i`` of ``columns`` as the JSON object ``{keys[0]: columns[0][i], ...}``.

    ``keys[k]`` is the JSON encoding of column ``k``'s name (a quoted JSON string, e.g. ``b'"user"'``);
    ``columns[k]`` is a 1-D int64, float64, bool or object array, all of one length ``n``. Returns
    ``(buffer, offsets)``: row ``i`` is ``buffer[offsets[i]:offsets[i + 1]]`` (int64 ``offsets`` of
    length ``n + 1``), byte for byte what ``msgspec.json.encode`` gives for the row's dict. Returns
    ``None`` when an object column holds something other than None, bool, an int in int64 range, a
    float or a str (exact types); the caller then encodes those rows another way. A str that is not
    valid Unicode (a lone surrogate) raises UnicodeEncodeError, as msgspec does.
    """
    keys_t, arrays, kinds_l, n = _checks.json_rows_arguments(keys, columns)
    cdef _JsonColumnsOwner owner = _JsonColumnsOwner(keys_t, arrays, kinds_l)
    cdef const _JsonColumns* cols = &owner.cols
    cdef Py_ssize_t n_rows = n, i
    offsets = np.empty(n_rows + 1, dtype=np.int64)
    cdef int64_t[::1] off = offsets
    cdef _JsonOut out
    out.data = NULL
    out.size = 0
    out.cap = 0
    try:
        _jr_reserve(&out, n_rows * (cols.row_room // 2) + 64)
        off[0] = 0
        for i in range(n_rows):
            if cols.fixed:
                _jr_reserve(&out, cols.row_room)
                _jr_row_fixed(&out, cols, i)
            elif _jr_row(&out, cols, i):
                return None
            off[i + 1] = out.size
        return PyBytes_FromStringAndSize(out.data, out.size), offsets
    finally:
        free(out.data)
