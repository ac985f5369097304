# Kafka record batches (message format v2): the records section framed from values in one buffer, so a
# sink hands the producer whole batches without appending message by message.

from cpython.bytearray cimport PyByteArray_FromStringAndSize, PyByteArray_AS_STRING

cdef enum:
    KAFKA_BATCH_HEADER = 61  # bytes of a v2 record batch before its first record


cdef inline int _kr_varint_size(int64_t v) noexcept nogil:
    """Bytes of ``v`` as a zigzag varint (the protocol's signed varint/varlong)."""
    cdef uint64_t z = (<uint64_t>v << 1) ^ <uint64_t>(v >> 63)
    cdef int n = 1
    while z >= 128:
        z >>= 7
        n += 1
    return n


cdef inline char* _kr_varint(char* p, int64_t v) noexcept nogil:
    cdef uint64_t z = (<uint64_t>v << 1) ^ <uint64_t>(v >> 63)
    while z >= 128:
        p[0] = <char>((z & 127) | 128)
        p += 1
        z >>= 7
    p[0] = <char>z
    return p + 1


cdef inline int64_t _kr_body_size(int64_t ts_delta, int64_t offset_delta, int64_t value_len) noexcept nogil:
    """Bytes of a record after its length: attributes, timestamp delta, offset delta, a null key, the
    value with its length, and a zero header count."""
    return (1 + _kr_varint_size(ts_delta) + _kr_varint_size(offset_delta) + 1
            + _kr_varint_size(value_len) + value_len + 1)


def kafka_record_batches(values, offsets, timestamps, limit):
    """The values framed as consecutive Kafka v2 record batches, each with room for its header.

    Value ``i`` is ``values[offsets[i]:offsets[i + 1]]`` with timestamp ``timestamps[i]`` (ms, >= 0).
    A batch takes the values from ``first`` on until the next would make it (the 61-byte header and the
    records) longer than ``limit`` bytes, and always at least one. Record ``j`` of a batch (value
    ``first + j``) has attributes 0, timestamp delta ``timestamps[first + j] - timestamps[first]``,
    offset delta ``j``, a null key, the value and no headers, lengths as zigzag varints, byte for byte
    what the protocol (and aiokafka's batch builder) writes. Returns ``(batches, bounds)``: one bytearray
    per batch, 61 zero bytes (the header, for the caller to fill: it holds the producer's id, epoch and
    sequence and the CRC over all of it) followed by the records, and int64 ``bounds`` of length
    ``len(batches) + 1`` (batch ``b`` holds values ``bounds[b]:bounds[b + 1]``).
    """
    values_a, offsets_a, ts_a, limit_o = _checks.kafka_records_arguments(values, offsets, timestamps, limit)
    cdef const uint8_t[::1] v = values_a
    cdef const int64_t[::1] off = offsets_a
    cdef const int64_t[::1] ts = ts_a
    cdef Py_ssize_t n = ts.shape[0], i = 0, first, stop, size
    cdef int64_t body, record, lim = limit_o, first_ts
    cdef vector[Py_ssize_t] cuts
    cdef vector[Py_ssize_t] sizes
    cdef char* p
    with nogil:
        cuts.push_back(0)
        while i < n:  # where each batch ends, and its size
            first = i
            first_ts = ts[i]
            size = KAFKA_BATCH_HEADER
            while i < n:
                body = _kr_body_size(ts[i] - first_ts, i - first, off[i + 1] - off[i])
                record = _kr_varint_size(body) + body
                if size + record > lim and i > first:
                    break
                size += record
                i += 1
            cuts.push_back(i)
            sizes.push_back(size)
    sections = []
    bounds = np.empty(cuts.size(), dtype=np.int64)
    cdef int64_t[::1] b = bounds
    cdef Py_ssize_t k
    for k in range(<Py_ssize_t>cuts.size()):
        b[k] = cuts[k]
    for k in range(<Py_ssize_t>sizes.size()):
        section = PyByteArray_FromStringAndSize(NULL, sizes[k])
        p = PyByteArray_AS_STRING(section)
        memset(p, 0, KAFKA_BATCH_HEADER)
        p += KAFKA_BATCH_HEADER
        first = cuts[k]
        stop = cuts[k + 1]
        first_ts = ts[first]
        with nogil:
            for i in range(first, stop):
                body = _kr_body_size(ts[i] - first_ts, i - first, off[i + 1] - off[i])
                p = _kr_varint(p, body)
                p[0] = 0  # attributes
                p = _kr_varint(p + 1, ts[i] - first_ts)
                p = _kr_varint(p, i - first)
                p = _kr_varint(p, -1)  # null key
                p = _kr_varint(p, off[i + 1] - off[i])
                if off[i + 1] > off[i]:
                    memcpy(p, &v[0] + off[i], off[i + 1] - off[i])
                    p += off[i + 1] - off[i]
                p = _kr_varint(p, 0)  # no headers
        sections.append(section)
    return sections, bounds
