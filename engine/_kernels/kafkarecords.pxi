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


cdef inline int64_t _kr_body_size(int64_t ts_delta, int64_t offset_delta, int64_t key_len,
                                  int64_t value_len) noexcept nogil:
    """Bytes of a record after its length: attributes, timestamp delta, offset delta, the key (``-1``:
    null) and the value with their lengths, and a zero header count."""
    return (1 + _kr_varint_size(ts_delta) + _kr_varint_size(offset_delta)
            + _kr_varint_size(key_len) + (key_len if key_len > 0 else 0)
            + _kr_varint_size(value_len) + value_len + 1)


def kafka_record_batches(values, offsets, timestamps, limit, rows=None, keys=None, key_offsets=None):
    """The values framed as consecutive Kafka v2 record batches, each with room for its header.

    Value ``i`` is ``values[offsets[i]:offsets[i + 1]]`` with timestamp ``timestamps[i]`` (ms, >= 0)
    and, when ``keys`` is given, key ``keys[key_offsets[i]:key_offsets[i + 1]]`` (else null keys). The
    batches hold the values ``rows`` (int64 indices; default all, in order) in that order: a batch takes
    them from its first on until the next would make it (the 61-byte header and the records) longer than
    ``limit`` bytes, and always at least one. Record ``j`` of a batch has attributes 0, timestamp delta
    from the batch's first record, offset delta ``j``, the key, the value and no headers, lengths as
    zigzag varints: byte for byte what the protocol (and aiokafka's batch builder) writes. Returns
    ``(batches, bounds)``: one bytearray per batch, 61 zero bytes (the header, for the caller to fill: it
    holds the producer's id, epoch and sequence and the CRC over all of it) followed by the records, and
    int64 ``bounds`` of length ``len(batches) + 1`` (batch ``b`` holds ``rows[bounds[b]:bounds[b + 1]]``).
    """
    values_a, offsets_a, ts_a, limit_o, rows_a, keys_a, key_offsets_a = _checks.kafka_records_arguments(
        values, offsets, timestamps, limit, rows, keys, key_offsets)
    cdef const uint8_t[::1] v = values_a
    cdef const int64_t[::1] off = offsets_a
    cdef const int64_t[::1] ts = ts_a
    cdef const int64_t[::1] order = rows_a
    cdef bint keyed = keys_a is not None
    cdef const uint8_t[::1] kv = keys_a if keyed else values_a
    cdef const int64_t[::1] koff = key_offsets_a if keyed else offsets_a
    cdef Py_ssize_t n = order.shape[0], j = 0, first, stop, size
    cdef int64_t r, body, record, lim = limit_o, first_ts, key_len = -1
    cdef vector[Py_ssize_t] cuts
    cdef vector[Py_ssize_t] sizes
    cdef char* p
    with nogil:
        cuts.push_back(0)
        while j < n:  # where each batch ends, and its size
            first = j
            first_ts = ts[order[j]]
            size = KAFKA_BATCH_HEADER
            while j < n:
                r = order[j]
                if keyed:
                    key_len = koff[r + 1] - koff[r]
                body = _kr_body_size(ts[r] - first_ts, j - first, key_len, off[r + 1] - off[r])
                record = _kr_varint_size(body) + body
                if size + record > lim and j > first:
                    break
                size += record
                j += 1
            cuts.push_back(j)
            sizes.push_back(size)
    batches = []
    bounds = np.empty(cuts.size(), dtype=np.int64)
    cdef int64_t[::1] b = bounds
    cdef Py_ssize_t k
    for k in range(<Py_ssize_t>cuts.size()):
        b[k] = cuts[k]
    for k in range(<Py_ssize_t>sizes.size()):
        batch = PyByteArray_FromStringAndSize(NULL, sizes[k])
        p = PyByteArray_AS_STRING(batch)
        memset(p, 0, KAFKA_BATCH_HEADER)
        p += KAFKA_BATCH_HEADER
        first = cuts[k]
        stop = cuts[k + 1]
        first_ts = ts[order[first]]
        with nogil:
            for j in range(first, stop):
                r = order[j]
                if keyed:
                    key_len = koff[r + 1] - koff[r]
                body = _kr_body_size(ts[r] - first_ts, j - first, key_len, off[r + 1] - off[r])
                p = _kr_varint(p, body)
                p[0] = 0  # attributes
                p = _kr_varint(p + 1, ts[r] - first_ts)
                p = _kr_varint(p, j - first)
                p = _kr_varint(p, key_len)  # -1: a null key
                if key_len > 0:
                    memcpy(p, &kv[0] + koff[r], key_len)
                    p += key_len
                p = _kr_varint(p, off[r + 1] - off[r])
                if off[r + 1] > off[r]:
                    memcpy(p, &v[0] + off[r], off[r + 1] - off[r])
                    p += off[r + 1] - off[r]
                p = _kr_varint(p, 0)  # no headers
        batches.append(batch)
    return batches, bounds


cdef inline uint32_t _kr_murmur2(const uint8_t* data, Py_ssize_t length) noexcept nogil:
    """Kafka's murmur2 (the Java client's ``Utils.murmur2``, seed 0x9747b28c)."""
    cdef uint32_t m = 0x5bd1e995
    cdef uint32_t h = <uint32_t>0x9747b28c ^ <uint32_t>length
    cdef uint32_t k
    cdef Py_ssize_t i, tail = length & ~(<Py_ssize_t>3)
    for i in range(0, tail, 4):
        k = (<uint32_t>data[i] | (<uint32_t>data[i + 1] << 8) | (<uint32_t>data[i + 2] << 16)
             | (<uint32_t>data[i + 3] << 24))
        k *= m
        k ^= k >> 24
        k *= m
        h *= m
        h ^= k
    if length & 3 >= 3:
        h ^= <uint32_t>data[tail + 2] << 16
    if length & 3 >= 2:
        h ^= <uint32_t>data[tail + 1] << 8
    if length & 3 >= 1:
        h ^= <uint32_t>data[tail]
        h *= m
    h ^= h >> 13
    h *= m
    h ^= h >> 15
    return h


def kafka_key_partitions(keys, key_offsets, n_partitions):
    """The partition index (int64, in ``[0, n_partitions)``) of each key ``keys[key_offsets[i]:key_offsets[i
    + 1]]`` under Kafka's default partitioner: ``(murmur2(key) & 0x7fffffff) % n_partitions``, as the
    Java client and aiokafka compute it (an index into the topic's partition ids in ascending order)."""
    keys_a, key_offsets_a, n_o = _checks.kafka_key_partitions_arguments(keys, key_offsets, n_partitions)
    cdef const uint8_t[::1] kv = keys_a
    cdef const int64_t[::1] koff = key_offsets_a
    cdef Py_ssize_t n = koff.shape[0] - 1, i
    cdef uint32_t parts = <uint32_t>n_o
    cdef const uint8_t* base = &kv[0] if kv.shape[0] else NULL
    out = np.empty(n, dtype=np.int64)
    cdef int64_t[::1] o = out
    with nogil:
        for i in range(n):
            o[i] = (_kr_murmur2(base + koff[i], koff[i + 1] - koff[i]) & 0x7fffffff) % parts
    return out
