# JSON rows of columns written straight into Kafka record batches: `json_object_rows` and
# `kafka_record_batches` fused, so a sink's window results are encoded once, into the batch that sends
# them, instead of into a buffer, a bytes copy of it and then the batches.
#
# A row's length is known only once it is encoded, and the record's length varints come before its
# value, so each row is encoded into a small scratch buffer (it stays in L1) and then framed into the
# batch; a row that does not fit starts the next batch from the same scratch, never encoded twice.

from cpython.bytearray cimport PyByteArray_Resize

cdef enum:
    _JKR_DONE = 0  # every row is in a batch
    _JKR_FULL = 1  # the batch is closed: the pending row (in the scratch) starts the next one
    _JKR_GROW = 2  # the batch's buffer needs ``_JkrBatch.need`` bytes for the pending row
    _JKR_UNSUPPORTED = 3  # an object value the encoder does not take
    # Bytes of a record besides its key and value, at most: length (5), attributes (1), timestamp
    # delta (10), offset delta (10), key length (5), value length (5), header count (1).
    _JKR_RECORD_ROOM = 37


cdef struct _JkrRows:
    const _JsonColumns* cols
    const int64_t* ts
    const int64_t* order
    Py_ssize_t n
    bint keyed
    const uint8_t* kv
    const int64_t* koff
    int64_t limit


cdef struct _JkrBatch:
    char* data
    Py_ssize_t cap  # bytes of ``data``
    Py_ssize_t size  # bytes written: the header's room, then the records
    Py_ssize_t first  # position in ``order`` of the batch's first record
    int64_t first_ts
    int64_t max_ts
    Py_ssize_t need  # with _JKR_GROW: the size the batch must have room for


cdef int _jkr_fill(const _JkrRows* rows, _JsonOut* row, bint* pending, Py_ssize_t* next_row,
                   _JkrBatch* batch) except -1 nogil:
    """Frame rows ``next_row[0]``, ... into ``batch`` until the next record would make it longer than
    ``rows.limit`` (`_JKR_FULL`; a batch always takes its first record), the buffer has no room for a
    record the batch takes (`_JKR_GROW`), a value is not encodable (`_JKR_UNSUPPORTED`) or every row is
    in (`_JKR_DONE`). ``row`` holds the JSON of row ``next_row[0]`` when ``pending[0]``. Without
    ``cols.fixed`` the caller holds the GIL (float and object values need it)."""
    cdef const _JsonColumns* cols = rows.cols
    cdef Py_ssize_t j = next_row[0], r, k
    cdef int64_t key_len = -1, ts_delta, body, record
    cdef int unsupported
    cdef char* p
    while j < rows.n:
        r = rows.order[j]
        if not pending[0]:
            row.size = 0
            if cols.fixed:
                _jr_row_fixed(row, cols, r)  # the scratch has room for any fixed-width row
            else:
                with gil:
                    unsupported = _jr_row(row, cols, r)
                if unsupported:
                    next_row[0] = j
                    return _JKR_UNSUPPORTED
            pending[0] = True
        if rows.keyed:
            key_len = rows.koff[r + 1] - rows.koff[r]
        ts_delta = rows.ts[r] - batch.first_ts
        body = _kr_body_size(ts_delta, j - batch.first, key_len, row.size)
        record = _kr_varint_size(body) + body
        if batch.size + record > rows.limit and j > batch.first:
            next_row[0] = j
            return _JKR_FULL
        if batch.size + record > batch.cap:
            next_row[0] = j
            batch.need = batch.size + record
            return _JKR_GROW
        p = _kr_varint(batch.data + batch.size, body)
        p[0] = 0  # attributes
        p = _kr_varint(p + 1, ts_delta)
        p = _kr_varint(p, j - batch.first)
        p = _kr_varint(p, key_len)  # -1: a null key
        if key_len > 0:
            memcpy(p, rows.kv + rows.koff[r], key_len)
            p += key_len
        p = _kr_varint(p, row.size)
        if batch.data + batch.cap - p >= row.size + _JR_SLACK and row.cap >= row.size + _JR_SLACK:
            # fixed-size moves instead of a call (rows are short); both buffers have room for the slack
            k = 0
            while k < row.size:
                memcpy(p + k, row.data + k, _JR_SLACK)
                k += _JR_SLACK
        else:
            memcpy(p, row.data, row.size)
        p[row.size] = 0  # no headers
        batch.size += record
        if rows.ts[r] > batch.max_ts:
            batch.max_ts = rows.ts[r]
        pending[0] = False
        j += 1
    next_row[0] = j
    return _JKR_DONE


def kafka_json_record_batches(keys, columns, timestamps, limit, rows=None, msg_keys=None, key_offsets=None):
    """The JSON objects of the rows of ``columns`` framed as Kafka v2 record batches, in one pass.

    The same as ``json_object_rows(keys, columns)`` followed by ``kafka_record_batches`` of those values
    with ``timestamps``, ``limit``, ``rows`` and the message keys ``msg_keys[key_offsets[i]:key_offsets[i
    + 1]]`` (else null keys), byte for byte, batch boundaries included, but without the intermediate
    buffers: each row is encoded once, straight into its batch. ``columns`` (at least one) hold one row
    per timestamp. Returns ``(batches, bounds, first_timestamps, max_timestamps)``: the batches and bounds
    as `kafka_record_batches` returns them, and per batch the timestamp of its first record and the
    largest of its records (int64). Returns ``None`` when an object value of a row in ``rows`` is not one
    `json_object_rows` encodes; a lone surrogate raises UnicodeEncodeError. Without object or float
    columns the GIL is released while rows are encoded and framed.
    """
    keys_t, arrays, kinds_l, ts_a, limit_o, rows_a, keys_a, key_offsets_a = _checks.kafka_json_records_arguments(
        keys, columns, timestamps, limit, rows, msg_keys, key_offsets)
    cdef _JsonColumnsOwner owner = _JsonColumnsOwner(keys_t, arrays, kinds_l)
    cdef const int64_t[::1] ts = ts_a
    cdef const int64_t[::1] order = rows_a
    cdef const uint8_t[::1] kv
    cdef const int64_t[::1] koff
    cdef _JkrRows spec
    spec.cols = &owner.cols
    spec.ts = &ts[0] if ts.shape[0] else NULL
    spec.order = &order[0] if order.shape[0] else NULL
    spec.n = order.shape[0]
    spec.limit = limit_o
    spec.keyed = keys_a is not None
    spec.kv = NULL
    spec.koff = NULL
    if spec.keyed:
        kv = keys_a
        koff = key_offsets_a
        spec.kv = &kv[0] if kv.shape[0] else NULL
        spec.koff = &koff[0]
    batches = []
    cuts = [0]
    firsts = []
    maxima = []
    cdef bint fixed = owner.cols.fixed, pending = False
    cdef Py_ssize_t j = 0, estimate
    cdef int status
    cdef _JkrBatch batch
    cdef _JsonOut row
    row.data = NULL
    row.size = 0
    row.cap = 0
    try:
        _jr_reserve(&row, owner.cols.row_room)
        while j < spec.n:
            # Room for a whole batch, or less when the rows left take less without keys and strings
            # (which may make the batch grow, doubling, up to the limit or its one record).
            estimate = KAFKA_BATCH_HEADER + (spec.n - j) * (owner.cols.row_room + _JKR_RECORD_ROOM)
            batch.cap = max(<Py_ssize_t>KAFKA_BATCH_HEADER, min(<Py_ssize_t>limit_o, estimate))
            batch_array = PyByteArray_FromStringAndSize(NULL, batch.cap)
            batch.data = PyByteArray_AS_STRING(batch_array)
            memset(batch.data, 0, KAFKA_BATCH_HEADER)
            batch.size = KAFKA_BATCH_HEADER
            batch.first = j
            batch.first_ts = ts[order[j]]
            batch.max_ts = batch.first_ts
            while True:
                if fixed:
                    with nogil:
                        status = _jkr_fill(&spec, &row, &pending, &j, &batch)
                else:
                    status = _jkr_fill(&spec, &row, &pending, &j, &batch)
                if status != _JKR_GROW:
                    break
                batch.cap = max(batch.need, min(2 * batch.cap, <Py_ssize_t>limit_o))
                PyByteArray_Resize(batch_array, batch.cap)
                batch.data = PyByteArray_AS_STRING(batch_array)
            if status == _JKR_UNSUPPORTED:
                return None
            PyByteArray_Resize(batch_array, batch.size)
            batches.append(batch_array)
            cuts.append(j)
            firsts.append(batch.first_ts)
            maxima.append(batch.max_ts)
    finally:
        free(row.data)
    return (batches, np.array(cuts, dtype=np.int64), np.array(firsts, dtype=np.int64),
            np.array(maxima, dtype=np.int64))
