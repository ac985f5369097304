# Attributes of every item of a list, gathered in one C loop: int attributes into int64 arrays and
# others as they are into lists (a consumer's records -> their offsets, timestamps, values, keys...).

from cpython.list cimport PyList_Append, PyList_New, PyList_SET_ITEM
from cpython.long cimport PyLong_CheckExact
from cpython.number cimport PyNumber_Index


def gather_attributes(items, int_names, object_names, append_to=None):
    """One int64 array per name of ``int_names``, then one list per name of ``object_names`` (or, with
    ``append_to``, the objects appended to those lists), over ``items``; see `_core.pyi`."""
    items, int_names, object_names, append_to = _checks.gather_arguments(items, int_names, object_names, append_to)
    cdef list source = items
    cdef tuple int_attrs = int_names, object_attrs = object_names
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
