# Attributes of every item of a list, gathered in one C loop: int attributes into int64 arrays and
# others as they are into lists (a consumer's records -> their offsets, timestamps, values, keys...).

from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.long cimport PyLong_CheckExact
from cpython.number cimport PyNumber_Index


def gather_attributes(items, int_names, object_names):
    """One int64 array per name of ``int_names``, then one list per name of ``object_names``, over
    ``items``; see `_core.pyi`."""
    items, int_names, object_names = _checks.gather_arguments(items, int_names, object_names)
    cdef list source = items
    cdef tuple int_attrs = int_names, object_attrs = object_names
    cdef Py_ssize_t n = len(source), n_ints = len(int_attrs), n_objects = len(object_attrs), i, j
    ints = np.empty((n_ints, n), dtype=np.int64)  # one block; each name's array is a row of it
    cdef int64_t[:, ::1] out = ints
    # NULL slots until set: a list that is dropped half-filled is fine
    cdef list objects = [PyList_New(n) for j in range(n_objects)]
    cdef object item, value, name, column
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
            Py_INCREF(value)
            PyList_SET_ITEM(column, i, value)
    return (*ints, *objects)
