# Attributes of every item of a list, gathered in one call: int attributes into int64 arrays and
# others as they are into lists (a consumer's records -> their offsets, timestamps, values, keys...).
#
# Two ways to read the attributes, with one result:
# * On CPython 3.11+, one list comprehension per attribute name (``[item.<name> for item in items]``,
#   compiled once per name and cached). The interpreter specialises such an attribute load for the
#   items' class (an inline cache of where instances keep that attribute), which the public C API cannot
#   do: PyObject_GetAttr looks the name up in the type and the instance on every call (measured on
#   aiokafka's ConsumerRecord, a dataclass without __slots__, CPython 3.11: ~18 ns per attribute and
#   record in the C loop against ~12 for a comprehension, loop and list included). The int columns are
#   then converted from those lists in C. Each comprehension walks all the items, so with tens of
#   thousands of records (more than the caches hold) the advantage fades; the source reads ~500 at a time.
# * Item by item in C with PyObject_GetAttr: on 3.10 (no specialisation), for names a comprehension
#   cannot spell, and whenever the first way meets any error, so that the error raised is the one of the
#   item-by-item contract (the first bad item, then the first bad name; see `_core.pyi`). An attribute
#   with side effects (a property) is then read a second time for the items before the bad one.

import keyword
import sys

from cpython.list cimport PyList_Append, PyList_New, PyList_SET_ITEM, PyList_GET_ITEM, PyList_GET_SIZE
from cpython.long cimport PyLong_CheckExact, PyLong_AsLongLongAndOverflow
from cpython.number cimport PyNumber_Index

_GATHER_BY_COMPREHENSION = sys.version_info >= (3, 11)
_COLUMN_READERS = {}  # attribute names -> items -> ([item.<name> for item in items], ...) or None
_MAX_COLUMN_READERS = 256  # name tuples beyond it are compiled per call (never seen in practice)


cdef object _column_reader(tuple names):
    """The cached function ``items -> ([item.<name> for item in items] for each of names)``, or None when
    a name cannot be written as ``item.<name>`` with the same meaning as ``getattr(item, name)``: only
    ASCII identifiers that are not keywords qualify (the parser would NFKC-normalise other identifiers)."""
    reader = _COLUMN_READERS.get(names, False)
    if reader is not False:
        return reader
    if all(name.isascii() and name.isidentifier() and not keyword.iskeyword(name) for name in names):
        # the source holds only the checked identifiers; no builtins are reachable from it
        lists = ", ".join(f"[item.{name} for item in items]" for name in names)
        reader = eval(f"lambda items: ({lists},)", {"__builtins__": {}})  # noqa: S307
    else:
        reader = None
    if len(_COLUMN_READERS) < _MAX_COLUMN_READERS:
        _COLUMN_READERS[names] = reader
    return reader


cdef bint _plain_gather_arguments(object items, object int_names, object object_names, object append_to):
    """Whether the arguments are of the exact types `_checks.gather_arguments` accepts and returns as they
    are (a list, tuples of non-empty strs, a tuple of distinct lists): the common case, checked in C; any
    other call goes through the shared checks, which raise their message or normalise the arguments."""
    cdef Py_ssize_t j, k
    if type(items) is not list or type(int_names) is not tuple or type(object_names) is not tuple:
        return False
    if not int_names and not object_names:
        return False
    for names in (int_names, object_names):
        for name in <tuple>names:
            if type(name) is not str or not name:
                return False
    if append_to is None:
        return True
    if type(append_to) is not tuple or len(<tuple>append_to) != len(<tuple>object_names):
        return False
    for j in range(len(<tuple>append_to)):
        if type((<tuple>append_to)[j]) is not list:
            return False
        for k in range(j):
            if (<tuple>append_to)[k] is (<tuple>append_to)[j]:
                return False
    return True


cdef bint _ints_from_list(list values, int64_t* out) except -1:
    """Fill ``out`` with ``values`` (Python ints in int64 range, or objects with ``__index__`` that are
    not bools); False, with nothing raised, when one is not (the caller then finds the error item by item)."""
    cdef Py_ssize_t i, n = PyList_GET_SIZE(values)
    cdef int overflow
    cdef long long v
    cdef object value
    for i in range(n):
        value = <object>PyList_GET_ITEM(values, i)
        if not PyLong_CheckExact(value):
            if isinstance(value, bool):
                return False
            try:
                value = PyNumber_Index(value)  # numpy ints; floats and None raise TypeError
            except Exception:
                return False
        v = PyLong_AsLongLongAndOverflow(value, &overflow)  # cannot fail on an int but by overflow
        if overflow:
            return False
        out[i] = v
    return True


cdef tuple _gather_by_comprehension(list source, tuple int_attrs, tuple object_attrs, object append_to):
    """The result of `gather_attributes` read one attribute name at a time, or None (with no list of
    ``append_to`` changed) when a name cannot be read that way or any item is bad."""
    cdef Py_ssize_t n = len(source), n_ints = len(int_attrs), j
    reader = _column_reader(int_attrs + object_attrs)
    if reader is None:
        return None
    try:
        columns = reader(source)
    except Exception:  # the item-by-item loop raises the error the contract names
        return None
    for column in columns:
        if len(<list>column) != n:  # an attribute's code changed the list of items
            return None
    ints = np.empty((n_ints, n), dtype=np.int64)  # one block; each name's array is a row of it
    cdef int64_t* out = <int64_t*>cnp.PyArray_DATA(ints)
    for j in range(n_ints):
        if not _ints_from_list(<list>columns[j], out + j * n):
            return None
    if append_to is None:
        return (*ints, *columns[n_ints:])
    for j in range(len(object_attrs)):  # every item was read: all or nothing
        (<list>append_to[j]).extend(<list>columns[n_ints + j])
    return tuple(ints)


def gather_attributes(items, int_names, object_names, append_to=None):
    """One int64 array per name of ``int_names``, then one list per name of ``object_names`` (or, with
    ``append_to``, the objects appended to those lists), over ``items``; see `_core.pyi`."""
    if not _plain_gather_arguments(items, int_names, object_names, append_to):  # the shared checks raise
        items, int_names, object_names, append_to = _checks.gather_arguments(items, int_names, object_names, append_to)
    if _GATHER_BY_COMPREHENSION:
        result = _gather_by_comprehension(items, int_names, object_names, append_to)
        if result is not None:
            return result
    return _gather_item_by_item(items, int_names, object_names, append_to)


cdef tuple _gather_item_by_item(list source, tuple int_attrs, tuple object_attrs, object append_to):
    """`gather_attributes` with PyObject_GetAttr, item by item: raises the contract's error for the first
    bad item (and, within it, the first bad name), leaving ``append_to`` as it was."""
    cdef Py_ssize_t n = len(source), n_ints = len(int_attrs), n_objects = len(object_attrs), i, j
    cdef Py_ssize_t[::1] starts = np.zeros(n_objects, dtype=np.intp)
    ints = np.empty((n_ints, n), dtype=np.int64)  # one block; each name's array is a row of it
    cdef int64_t[:, ::1] out = ints
    cdef list objects
    cdef bint appending = append_to is not None
    if appending:
        objects = list(append_to)
        for j in range(n_objects):
            starts[j] = len(<list>objects[j])
    else:
        # NULL slots until set: a list that is dropped half-filled is fine
        objects = [PyList_New(n) for j in range(n_objects)]
    cdef object item, value, name, column
    try:
        for i in range(n):
            if i >= PyList_GET_SIZE(source):  # an attribute's code shortened it: never read past its end
                raise RuntimeError(f"items changed size during gather_attributes (from {n} to {len(source)})")
            item = source[i]
            for j in range(n_ints):
                name = int_attrs[j]
                value = getattr(item, name)
                if not PyLong_CheckExact(value):
                    if isinstance(value, bool):
                        raise TypeError(f"item {i}: {name} must be an int, got {value!r}")
                    value = PyNumber_Index(value)  # numpy ints; floats and None raise TypeError
                try:
                    out[j, i] = value
                except OverflowError:
                    raise OverflowError(f"item {i}: {name} = {value} is out of int64 range") from None
            for j in range(n_objects):
                value = getattr(item, <object>object_attrs[j])
                column = objects[j]
                if appending:
                    PyList_Append(column, value)
                else:
                    Py_INCREF(value)
                    PyList_SET_ITEM(column, i, value)
    except BaseException:
        if appending:  # the lists end as they began
            for j in range(n_objects):
                del (<list>objects[j])[starts[j]:]
        raise
    if appending:
        return tuple(ints)
    return (*ints, *objects)
