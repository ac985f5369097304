# Two attributes of every item of a list, gathered in one C loop: an int attribute into an int64 array
# and another as it is into a list (a consumer's records -> their timestamps and values).

from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.long cimport PyLong_CheckExact
from cpython.number cimport PyNumber_Index


def gather_attributes(items, int_name, object_name):
    """``(int64 array of item.<int_name>, list of item.<object_name>)`` over ``items``; see `_core.pyi`."""
    items, int_name, object_name = _checks.gather_arguments(items, int_name, object_name)
    cdef list source = items
    cdef Py_ssize_t n = len(source), i
    ints = np.empty(n, dtype=np.int64)
    cdef int64_t[::1] out = ints
    cdef list objects = PyList_New(n)  # NULL slots until set: a list that is dropped half-filled is fine
    cdef object item, value
    for i in range(n):
        item = source[i]
        value = getattr(item, int_name)
        if not PyLong_CheckExact(value):
            if isinstance(value, bool):
                raise TypeError(f"item {i}: {int_name} must be an int, got {value!r}")
            value = PyNumber_Index(value)  # numpy ints; floats and None raise TypeError
        try:
            out[i] = value
        except OverflowError:
            raise OverflowError(f"item {i}: {int_name} = {value} is out of int64 range") from None
        value = getattr(item, object_name)
        Py_INCREF(value)
        PyList_SET_ITEM(objects, i, value)
    return ints, objects
