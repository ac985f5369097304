# Flat JSON objects decoded and validated straight into columns (the fast path of columnar validation).
#
# The scanner is deliberately narrow: it accepts a record only when it is certain msgspec would accept
# it with the same values (strict JSON grammar, ASCII strings without escapes, every field exactly once,
# unknown fields only when allowed and built of plain scalars, numbers short enough to convert exactly)
# and reports everything else as "slow", for the caller to decode with msgspec. It never produces error
# messages.
#
# Reading stops at the end of a record without a bounds check per byte: a CPython bytes object always
# holds a NUL after its last byte (documented for PyBytes_AsString), and no rule of the scanner moves
# past a NUL (it is not whitespace, a digit, a plain-string byte, a literal's letter or punctuation), so
# the scan of ``p[0:n]`` reads at most ``p[n]``. A NUL inside a record is invalid JSON and stops it too.

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_CheckExact
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.ref cimport PyObject, Py_INCREF, Py_XDECREF
from cpython.conversion cimport PyOS_string_to_double
from libc.stdlib cimport malloc, calloc, free
from libc.string cimport memcpy
from libc.math cimport isfinite, fabs
from libc.stdint cimport int32_t

cdef extern from "Python.h":
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    void* PyUnicode_DATA(object o)

cdef enum:
    _MAX_INT_DIGITS = 18  # every 18-digit integer fits in int64; longer ones take the slow path
    _MAX_NUMBER_LEN = 40  # longer float literals take the slow path
    _MAX_EXP_DIGITS = 4
    _MAX_SKIP_DEPTH = 32  # unknown values nested deeper take the slow path

cdef enum _FlatKind:
    _K_INT = 0
    _K_FLOAT = 1
    _K_BOOL = 2
    _K_STRING = 3
    _K_ENUM = 4
    _K_TIMESTAMP = 5
    _K_NUMBER = 6  # an int or a float: int64 column (INT64_MIN for a float) and float64 column
    _K_KEY = 7  # an int or a str: int64 column (INT64_MIN for a str) and object column (None for an int)

# In the int64 column of a "number" or "key" field: this row holds the other type (a float, a str). Never
# an int the scanner accepts: INT64_MIN has 19 digits, and integer literals of more than 18 take the slow
# path.
cdef int64_t _SECOND_TYPE = C_INT64_MIN


cdef struct _FlatSpec:
    const char* name
    Py_ssize_t name_len
    bint plain_name  # ASCII without quotes, backslashes or control characters
    int kind
    int64_t ilo
    int64_t ihi
    int64_t imul
    double flo
    double fhi
    bint flo_x
    bint fhi_x
    bint has_flo
    bint has_fhi
    Py_ssize_t min_len
    Py_ssize_t max_len
    const int64_t* dfa_table
    const uint8_t* dfa_acc
    int64_t dfa_start
    Py_ssize_t n_symbols
    const char** symbols
    Py_ssize_t* symbol_lens
    void* column
    void* column2  # number: the float64 column; key: the object column
    bint span_is_str  # key: the current record's value is a str (its span is set)
    Py_ssize_t span_start  # of a string value in the current record
    Py_ssize_t span_len


cdef inline bint _is_ws(uint8_t c) noexcept nogil:
    return c == 32 or c == 10 or c == 13 or c == 9


cdef inline Py_ssize_t _skip_ws(const uint8_t* p, Py_ssize_t i) noexcept nogil:
    while _is_ws(p[i]):
        i += 1
    return i


cdef inline bint _is_digit(uint8_t c) noexcept nogil:
    return <uint8_t>(c - 48) < 10


cdef inline bint _same_bytes(const uint8_t* a, const char* b, Py_ssize_t n) noexcept nogil:
    """``a[:n] == b[:n]``, stopping at the first difference; keys and symbols are short, so a plain
    loop beats a call to memcmp."""
    cdef Py_ssize_t k
    for k in range(n):
        if a[k] != <uint8_t>b[k]:
            return False
    return True


# 1 for the bytes that end a run of plain-string bytes: '"', '\\', control characters (NUL included, so
# the end of a record stops the run) and non-ASCII bytes; one table load per byte instead of four tests
cdef uint8_t _STRING_STOP[256]
for _k in range(256):
    _STRING_STOP[_k] = _k == 34 or _k == 92 or _k < 32 or _k >= 128


cdef inline Py_ssize_t _plain_string(const uint8_t* p, Py_ssize_t i) noexcept nogil:
    """``i`` is just past an opening quote; the index of the closing quote, or -1 when the string holds
    an escape, a control character or a non-ASCII byte (or never closes)."""
    while not _STRING_STOP[p[i]]:
        i += 1
    return i if p[i] == 34 else -1


cdef inline bint _is_true(const uint8_t* p, Py_ssize_t i) noexcept nogil:
    return p[i] == 116 and p[i + 1] == 114 and p[i + 2] == 117 and p[i + 3] == 101


cdef inline bint _is_false(const uint8_t* p, Py_ssize_t i) noexcept nogil:
    return p[i] == 102 and p[i + 1] == 97 and p[i + 2] == 108 and p[i + 3] == 115 and p[i + 4] == 101


cdef inline bint _is_null(const uint8_t* p, Py_ssize_t i) noexcept nogil:
    return p[i] == 110 and p[i + 1] == 117 and p[i + 2] == 108 and p[i + 3] == 108


cdef inline Py_ssize_t _integer(const uint8_t* p, Py_ssize_t i, int64_t* out) noexcept nogil:
    """A JSON integer literal at ``i`` (``-?(0|[1-9][0-9]*)``, at most 18 digits, not followed by a
    fraction or exponent); the index just past it, or -1."""
    cdef bint neg = p[i] == 45  # '-'
    cdef uint64_t v = 0  # wraps harmlessly on a long run of digits, which is refused below
    cdef Py_ssize_t start
    i += neg
    if p[i] == 48:  # a lone '0'
        i += 1
        if _is_digit(p[i]):
            return -1
    elif _is_digit(p[i]):
        start = i
        while _is_digit(p[i]):
            v = v * 10 + (p[i] - 48)
            i += 1
        if i - start > _MAX_INT_DIGITS:
            return -1
    else:
        return -1
    if p[i] == 46 or p[i] == 101 or p[i] == 69:  # '.', 'e', 'E': a float literal
        return -1
    out[0] = -<int64_t>v if neg else <int64_t>v
    return i


# 10**0 .. 10**22: every one is exactly representable as a float64
cdef double _POW10[23]
for _k in range(23):
    _POW10[_k] = float(10 ** _k)


cdef Py_ssize_t _number(const uint8_t* p, Py_ssize_t i, double* out) except -2:
    """Any JSON number at ``i`` as a float64, as msgspec converts it; the index just past it, or -1 when
    the number is malformed, too long, or would overflow or underflow (those take the slow path).

    An integer literal converts exactly like int64 -> float64 (so ``-0`` is ``0.0``, as in msgspec).
    Other literals are correctly rounded: when the digits, read as an integer ``w``, satisfy
    ``w <= 2**53`` and the decimal exponent ``e`` has ``|e| <= 22``, ``w * 10**e`` (or ``w / 10**-e``) is
    one IEEE operation on two exact float64 values, hence correctly rounded (Clinger's fast path, the
    one every correct strtod takes first); otherwise CPython's own `PyOS_string_to_double` converts the
    validated span."""
    cdef int64_t iv
    cdef Py_ssize_t j = _integer(p, i, &iv)
    cdef Py_ssize_t start = i, k
    cdef bint nonzero = False, fraction_or_exponent = False, neg = False, exp_neg = False
    cdef uint64_t w = 0
    cdef int sig = 0, frac = 0, e10, ev = 0
    cdef char buf[_MAX_NUMBER_LEN + 1]
    cdef char* end
    cdef double d
    if j >= 0:
        out[0] = <double>iv
        return j
    # grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, with a fraction or an exponent
    if p[i] == 45:
        neg = True
        i += 1
    if p[i] == 48:
        i += 1
    elif _is_digit(p[i]):
        while _is_digit(p[i]):
            nonzero = True
            if sig < 19:
                w = w * 10 + (p[i] - 48)
            sig += 1
            i += 1
    else:
        return -1
    if p[i] == 46:
        fraction_or_exponent = True
        i += 1
        k = i
        while _is_digit(p[i]):
            if p[i] != 48:
                nonzero = True
            if w != 0 or p[i] != 48:
                if sig < 19:
                    w = w * 10 + (p[i] - 48)
                sig += 1
            frac += 1
            i += 1
        if i == k:
            return -1
    if p[i] == 101 or p[i] == 69:
        fraction_or_exponent = True
        i += 1
        if p[i] == 43 or p[i] == 45:
            exp_neg = p[i] == 45
            i += 1
        k = i
        while _is_digit(p[i]):
            if i - k >= _MAX_EXP_DIGITS:
                return -1  # checked before multiplying: a longer run could overflow
            ev = ev * 10 + (p[i] - 48)
            i += 1
        if i == k:
            return -1
    if _is_digit(p[i]) or p[i] == 46 or p[i] == 101 or p[i] == 69:
        return -1  # e.g. "01.5" or "1.5.2": malformed
    if not fraction_or_exponent:
        return -1  # an integer literal too long for `_integer`: left to msgspec
    if i - start > _MAX_NUMBER_LEN:
        return -1
    e10 = (-ev if exp_neg else ev) - frac
    if sig <= 19 and w <= 9007199254740992 and -22 <= e10 <= 22:
        d = <double>w
        if e10 < 0:
            d = d / _POW10[-e10]
        else:
            d = d * _POW10[e10]
        if d == 0.0 or fabs(d) < 1e300:  # w * 10**e10 can overflow only beyond ~9e37: never here
            out[0] = -d if neg else d
            return i
    memcpy(buf, p + start, i - start)
    buf[i - start] = 0
    d = PyOS_string_to_double(buf, &end, NULL)
    if end != buf + (i - start) or not isfinite(d):
        return -1
    if (d == 0.0 and nonzero) or (d != 0.0 and fabs(d) < 2.2250738585072014e-308):
        return -1  # underflow to zero or a subnormal: left to msgspec
    out[0] = d
    return i


cdef inline bint _float_ok(const _FlatSpec* f, double d) noexcept nogil:
    if f.has_flo and (d <= f.flo if f.flo_x else d < f.flo):
        return False
    if f.has_fhi and (d >= f.fhi if f.fhi_x else d > f.fhi):
        return False
    return True


cdef inline Py_ssize_t _value(_FlatSpec* f, const uint8_t* p, Py_ssize_t i, Py_ssize_t row) except -2:
    """Read field ``f``'s value at ``i`` and store it at ``row`` (strings: remember the span); the index
    just past the value, or -1 when the value is not on the fast path."""
    cdef int64_t iv
    cdef double d
    cdef Py_ssize_t j, k, length
    cdef int64_t s
    cdef int kind = f.kind
    if kind == _K_KEY:
        if p[i] == 34:
            j = _plain_string(p, i + 1)
            if j < 0:
                return -1
            (<int64_t*>f.column)[row] = _SECOND_TYPE
            f.span_is_str = True
            f.span_start = i + 1
            f.span_len = j - i - 1
            return j + 1
        j = _integer(p, i, &iv)
        if j < 0:
            return -1
        (<int64_t*>f.column)[row] = iv
        f.span_is_str = False
        return j
    if kind == _K_INT or kind == _K_TIMESTAMP:
        j = _integer(p, i, &iv)
        if j < 0 or iv < f.ilo or iv > f.ihi or (f.imul != 0 and iv % f.imul != 0):
            return -1
        (<int64_t*>f.column)[row] = iv
        return j
    if kind == _K_NUMBER:
        j = _integer(p, i, &iv)
        if j >= 0:
            (<int64_t*>f.column)[row] = iv
            (<double*>f.column2)[row] = <double>iv
            return j
        j = _number(p, i, &d)
        if j < 0:
            return -1
        (<int64_t*>f.column)[row] = _SECOND_TYPE
        (<double*>f.column2)[row] = d
        return j
    if kind == _K_FLOAT:
        j = _number(p, i, &d)
        if j < 0 or not _float_ok(f, d):
            return -1
        (<double*>f.column)[row] = d
        return j
    if kind == _K_BOOL:
        if _is_true(p, i):
            (<uint8_t*>f.column)[row] = 1
            return i + 4
        if _is_false(p, i):
            (<uint8_t*>f.column)[row] = 0
            return i + 5
        return -1
    # string or enum
    if p[i] != 34:
        return -1
    j = _plain_string(p, i + 1)
    if j < 0:
        return -1
    length = j - i - 1
    if kind == _K_ENUM:
        for k in range(f.n_symbols):
            if f.symbol_lens[k] == length and _same_bytes(p + i + 1, f.symbols[k], length):
                (<int32_t*>f.column)[row] = <int32_t>k
                return j + 1
        return -1
    if length < f.min_len or (f.max_len >= 0 and length > f.max_len):
        return -1
    if f.dfa_table != NULL:
        s = f.dfa_start
        for k in range(i + 1, j):
            s = f.dfa_table[s * 256 + p[k]]
        if not f.dfa_acc[s]:
            return -1
    f.span_start = i + 1
    f.span_len = length
    return j + 1


cdef inline Py_ssize_t _skip_scalar(const uint8_t* p, Py_ssize_t i) except -2:
    """The index just past the value of a field the contract does not name, when it is a scalar the
    scanner reads itself (a number `_number` converts, ``true``, ``false``, ``null``, a plain string), else
    -1: msgspec checks skipped values too, so anything less certain takes the slow path."""
    cdef double d
    cdef int64_t iv
    cdef Py_ssize_t j
    cdef uint8_t c = p[i]
    if _is_digit(c) or c == 45:  # '-'
        j = _integer(p, i, &iv)  # the common case, without `_number`'s set-up
        return j if j >= 0 else _number(p, i, &d)
    if c == 34:
        j = _plain_string(p, i + 1)
        return j + 1 if j >= 0 else -1
    if _is_true(p, i) or _is_null(p, i):
        return i + 4
    if _is_false(p, i):
        return i + 5
    return -1


cdef Py_ssize_t _skip_value(const uint8_t* p, Py_ssize_t i, int depth) except -2:
    """Like `_skip_scalar`, and also arrays and objects (at most `_MAX_SKIP_DEPTH` deep) built of such
    scalars, with plain-string keys; else -1. Everything inside is something the scanner proves msgspec
    reads, so msgspec would skip the value too."""
    cdef Py_ssize_t j
    cdef uint8_t close
    if p[i] != 91 and p[i] != 123:  # not '[' or '{'
        return _skip_scalar(p, i)
    if depth >= _MAX_SKIP_DEPTH:
        return -1
    close = 93 if p[i] == 91 else 125  # ']' or '}'
    i = _skip_ws(p, i + 1)
    if p[i] == close:
        return i + 1
    while True:
        if close == 125:  # an object: a plain key and a colon first
            if p[i] != 34:
                return -1
            j = _plain_string(p, i + 1)
            if j < 0:
                return -1
            i = _skip_ws(p, j + 1)
            if p[i] != 58:
                return -1
            i = _skip_ws(p, i + 1)
        i = _skip_value(p, i, depth + 1)
        if i < 0:
            return -1
        i = _skip_ws(p, i)
        if p[i] == close:
            return i + 1
        if p[i] != 44:  # ','
            return -1
        i = _skip_ws(p, i + 1)


cdef inline Py_ssize_t _match_field(_FlatSpec* specs, Py_ssize_t nf, const uint8_t* key, Py_ssize_t length,
                                    Py_ssize_t guess) noexcept nogil:
    """The field named ``key``, trying ``guess`` first (fields usually come in contract order), or -1."""
    cdef Py_ssize_t k, f
    for k in range(nf):
        f = guess + k
        if f >= nf:
            f -= nf
        if specs[f].name_len == length and _same_bytes(key, specs[f].name, length):
            return f
    return -1


cdef int _scan_record(_FlatSpec* specs, Py_ssize_t nf, Py_ssize_t* seen, Py_ssize_t stamp, const uint8_t* p,
                      Py_ssize_t n, Py_ssize_t row, bint allow_unknown) except -1:
    """True when the record ``p[0:n]`` (NUL at ``p[n]``) is an object of exactly the fields (plus, with
    ``allow_unknown``, other keys whose values `_skip_value` reads), every value valid.

    ``seen[f] == stamp`` marks field ``f`` as read in this record: a new stamp per record needs no
    clearing between records."""
    cdef Py_ssize_t i = _skip_ws(p, 0), j, f, found = 0, guess = 0, length
    if p[i] != 123:  # '{'
        return False
    i = _skip_ws(p, i + 1)
    if p[i] == 125:  # '}': no fields at all
        return False
    while True:
        if p[i] != 34:
            return False
        # fields usually come in contract order: try the next one's name first (names tried this way are
        # plain ASCII, see scan_flat_json, so equal bytes followed by a quote are that key; the quote is
        # read only after the name matched, so never past the record's NUL)
        f = -1
        if guess < nf and specs[guess].plain_name:
            length = specs[guess].name_len
            if _same_bytes(p + i + 1, specs[guess].name, length) and p[i + 1 + length] == 34:
                f = guess
                j = i + 1 + length
        if f < 0:
            j = _plain_string(p, i + 1)
            if j < 0:
                return False
            f = _match_field(specs, nf, p + i + 1, j - i - 1, guess)
        if f >= 0:
            if seen[f] == stamp:
                return False  # a duplicate key: msgspec keeps the last value
            seen[f] = stamp
            found += 1
            guess = f + 1
        elif not allow_unknown:
            return False
        i = _skip_ws(p, j + 1)
        if p[i] != 58:  # ':'
            return False
        i = _skip_ws(p, i + 1)
        if f >= 0:
            i = _value(&specs[f], p, i, row)
        elif p[i] != 91 and p[i] != 123:
            i = _skip_scalar(p, i)
        else:
            i = _skip_value(p, i, 0)
        if i < 0:
            return False
        i = _skip_ws(p, i)
        if p[i] == 44:  # ','
            i = _skip_ws(p, i + 1)
            continue
        if p[i] != 125:
            return False
        i = _skip_ws(p, i + 1)
        return i == n and found == nf


cdef class _FlatPlan:
    """The compiled form of one `fields` sequence: a `_FlatSpec` per field (columns not set), and the
    owners of the buffers the specs point into. Built from the checked plan of
    `_checks.flat_json_arguments`; cached (see `_cached_flat_plan`) when every part of the fields is
    immutable, so a decoder calling with the same fields on every batch skips the checks and the build."""

    cdef _FlatSpec* specs
    cdef Py_ssize_t nf
    cdef Py_ssize_t* object_fields  # the fields whose values become Python objects (string, key)
    cdef Py_ssize_t n_objects
    cdef list keep
    cdef object fields  # the sequence this plan was built for (a strong reference: the cache key is its id)
    cdef tuple members  # its items when built, to notice a list changed in place

    def __dealloc__(self):
        free(self.specs)
        free(self.object_fields)


cdef _FlatPlan _build_flat_plan(list plan):
    """A `_FlatPlan` for the checked ``plan`` of `_checks.flat_json_arguments`."""
    cdef _FlatPlan out = _FlatPlan.__new__(_FlatPlan)
    cdef Py_ssize_t nf = len(plan), f, k, n_sym
    cdef const int64_t[::1] table_v
    cdef const uint8_t[::1] acc_v
    cdef Py_ssize_t[::1] lens_v
    cdef _FlatSpec* specs
    out.keep = []
    out.nf = nf
    out.specs = <_FlatSpec*>calloc(nf, sizeof(_FlatSpec))
    out.object_fields = <Py_ssize_t*>calloc(nf, sizeof(Py_ssize_t))
    if out.specs == NULL or out.object_fields == NULL:
        raise MemoryError()
    specs = out.specs
    for f in range(nf):
        (name, kind, lo, hi, mult, flo, fhi, flo_x, fhi_x, has_flo, has_fhi, min_len, max_len, dfa,
         symbols) = plan[f]
        out.keep.append(name)
        specs[f].name = PyBytes_AS_STRING(name)
        specs[f].name_len = PyBytes_GET_SIZE(name)
        specs[f].plain_name = True
        for k in range(specs[f].name_len):
            if _STRING_STOP[<uint8_t>specs[f].name[k]]:
                specs[f].plain_name = False
        specs[f].kind = kind
        specs[f].ilo = lo
        specs[f].ihi = hi
        specs[f].imul = mult
        specs[f].flo = flo
        specs[f].fhi = fhi
        specs[f].flo_x = flo_x
        specs[f].fhi_x = fhi_x
        specs[f].has_flo = has_flo
        specs[f].has_fhi = has_fhi
        specs[f].min_len = min_len if min_len >= 0 else 0
        specs[f].max_len = max_len
        if dfa is not None:
            table_v = dfa[0]
            acc_v = dfa[1]
            out.keep.append(dfa)
            specs[f].dfa_table = &table_v[0]
            specs[f].dfa_acc = &acc_v[0]
            specs[f].dfa_start = dfa[2]
        n_sym = len(symbols)
        specs[f].n_symbols = n_sym
        if n_sym:
            ptrs = np.empty(n_sym, dtype=np.uintp)
            lens = np.array([len(s) for s in symbols], dtype=np.intp)
            out.keep.extend((symbols, ptrs, lens))
            for k in range(n_sym):
                ptrs[k] = <size_t>PyBytes_AS_STRING(symbols[k])
            specs[f].symbols = <const char**>cnp.PyArray_DATA(ptrs)
            lens_v = lens
            specs[f].symbol_lens = &lens_v[0]
        if kind == _K_STRING or kind == _K_KEY:
            out.object_fields[out.n_objects] = f
            out.n_objects += 1
    return out


_FLAT_PLANS = {}  # id(fields) -> _FlatPlan of that fields sequence
_MAX_FLAT_PLANS = 64  # more distinct field sequences than that: the cache starts over
_FLAT_COLUMN_DTYPES = (np.dtype(np.int64), np.dtype(np.float64), np.dtype(np.bool_), np.dtype(object),
                       np.dtype(np.int32), np.dtype(np.int64))  # by kind, as _checks._FLAT_DTYPES
_FLAT_PAIR_SECOND_DTYPES = {_K_NUMBER: np.dtype(np.float64), _K_KEY: np.dtype(object)}
_UINT8 = np.dtype(np.uint8)


cdef bint _cacheable_flat_fields(object fields):
    """Whether every part of ``fields`` is immutable, so that its checked plan stays valid: exact
    `FlatField` items without a pattern (its tables are mutable arrays) and with a tuple of strs (if any)
    as symbols."""
    if type(fields) is not list and type(fields) is not tuple:
        return False
    for f in fields:
        if type(f) is not FlatField or f.dfa is not None:
            return False
        if f.symbols is not None and (type(f.symbols) is not tuple or
                                      not all(type(s) is str for s in f.symbols)):
            return False
    return True


cdef _FlatPlan _cached_flat_plan(object fields):
    """The cached plan of ``fields`` when it is the very sequence (same object, same items) it was built
    for, else None."""
    cdef _FlatPlan plan = _FLAT_PLANS.get(id(fields))
    cdef Py_ssize_t k
    if plan is None or plan.fields is not fields or len(fields) != plan.nf:
        return None
    for k in range(plan.nf):
        if fields[k] is not plan.members[k]:
            return None
    return plan


cdef bint _flat_array_ok(object arr, object dtype, Py_ssize_t n):
    """An exact ndarray of ``dtype`` (the very descriptor object), 1-D, ``n`` rows, C-contiguous and
    writeable: what `_checks.flat_json_arguments` accepts, in the common form."""
    if type(arr) is not cnp.ndarray:
        return False
    cdef cnp.ndarray a = <cnp.ndarray>arr
    return (<object>cnp.PyArray_DESCR(a) is dtype and cnp.PyArray_NDIM(a) == 1 and cnp.PyArray_DIMS(a)[0] == n
            and cnp.PyArray_IS_C_CONTIGUOUS(a) and cnp.PyArray_ISWRITEABLE(a))


cdef bint _flat_arguments_ok(_FlatPlan plan, object records, object columns, object status):
    """Whether the call's records, columns and status are what the shared checks accept and return as
    they are (checked in C); any other call goes through `_checks.flat_json_arguments`."""
    cdef Py_ssize_t n, f
    cdef int kind
    if type(records) is not list or (type(columns) is not list and type(columns) is not tuple):
        return False
    n = len(<list>records)
    if len(columns) != plan.nf or not _flat_array_ok(status, _UINT8, n):
        return False
    for f in range(plan.nf):
        kind = plan.specs[f].kind
        col = columns[f]
        if kind == _K_NUMBER or kind == _K_KEY:
            if type(col) is not tuple or len(<tuple>col) != 2:
                return False
            if not _flat_array_ok((<tuple>col)[0], _FLAT_COLUMN_DTYPES[0], n) or not _flat_array_ok(
                    (<tuple>col)[1], _FLAT_PAIR_SECOND_DTYPES[kind], n):
                return False
        elif not _flat_array_ok(col, _FLAT_COLUMN_DTYPES[kind], n):
            return False
    return True


def scan_flat_json(records, fields, columns, status, allow_unknown=False):
    """Decode and validate flat JSON objects into preallocated columns; the number of records accepted.

    See `_core.pyi`. The ``k``-th accepted record (``status[i] == FLAT_OK``, 0) fills row ``k`` of every
    column; rows from the returned count on are unspecified. Other records are ``FLAT_SLOW`` (1).
    """
    cdef _FlatPlan plan = _cached_flat_plan(fields)
    if plan is None or not _flat_arguments_ok(plan, records, columns, status):
        records, checked, columns, status = _checks.flat_json_arguments(records, fields, columns, status)
        if plan is None:
            plan = _build_flat_plan(checked)
            if _cacheable_flat_fields(fields):
                if len(_FLAT_PLANS) >= _MAX_FLAT_PLANS:
                    _FLAT_PLANS.clear()
                plan.fields = fields
                plan.members = tuple(fields)
                _FLAT_PLANS[id(fields)] = plan
    cdef bint allow = allow_unknown if type(allow_unknown) is bool else _checks.flag("allow_unknown", allow_unknown)
    cdef Py_ssize_t nf = plan.nf, n = len(records), r, f, k, accepted = 0
    # a copy of the specs per call: they also hold this call's columns and the current record's spans
    cdef _FlatSpec* specs = <_FlatSpec*>malloc(nf * sizeof(_FlatSpec))
    cdef Py_ssize_t* seen = <Py_ssize_t*>calloc(nf, sizeof(Py_ssize_t))
    cdef uint8_t* st = <uint8_t*>cnp.PyArray_DATA(status)
    cdef _FlatSpec* spec
    cdef PyObject** slot
    cdef PyObject* old
    cdef object rec, text
    cdef list recs = records
    if specs == NULL or seen == NULL:
        free(specs)
        free(seen)
        raise MemoryError()
    try:
        memcpy(specs, plan.specs, nf * sizeof(_FlatSpec))
        for f in range(nf):
            if specs[f].kind == _K_NUMBER or specs[f].kind == _K_KEY:  # a pair of columns (see _core.pyi)
                specs[f].column = cnp.PyArray_DATA(columns[f][0])
                specs[f].column2 = cnp.PyArray_DATA(columns[f][1])
            else:
                specs[f].column = cnp.PyArray_DATA(columns[f])
        r = 0
        # the length is read again each time: dropping an object replaced in a string column below may
        # run arbitrary code (a __del__), which could shrink the list; records it removed stay FLAT_SLOW
        while r < PyList_GET_SIZE(recs):
            rec = <object>PyList_GET_ITEM(recs, r)  # a strong reference, for the same reason
            # values go to row `accepted`: a record that fails half-way leaves partial values there,
            # which the next accepted record overwrites
            if not PyBytes_CheckExact(rec) or not _scan_record(
                    specs, nf, seen, r + 1, <const uint8_t*>PyBytes_AS_STRING(rec), PyBytes_GET_SIZE(rec), accepted,
                    allow):
                st[r] = 1
                r += 1
                continue
            st[r] = 0
            for k in range(plan.n_objects):
                spec = &specs[plan.object_fields[k]]
                slot = (<PyObject**>spec.column if spec.kind == _K_STRING else <PyObject**>spec.column2) + accepted
                if spec.kind == _K_KEY and not spec.span_is_str:
                    if slot[0] == <PyObject*>None:
                        continue  # an int key's object slot holds None: often it already does
                    text = None
                else:
                    text = PyUnicode_New(spec.span_len, 127)  # ASCII, checked by the scan
                    memcpy(PyUnicode_DATA(text), PyBytes_AS_STRING(rec) + spec.span_start, spec.span_len)
                # the slot holds its new value before the old one is dropped (which may run code)
                old = slot[0]
                Py_INCREF(text)
                slot[0] = <PyObject*>text
                Py_XDECREF(old)
            accepted += 1
            r += 1
        while r < n:  # only when the list shrank under the loop
            st[r] = 1
            r += 1
    finally:
        free(specs)
        free(seen)
    return accepted
