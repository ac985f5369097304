"""Type stubs and contract of the compiled kernels (`engine/_core.pyx`).

`engine/_reference.py` implements exactly this API in plain Python; `engine/kernels.py` binds one of
the two. Semantics follow `SEMANTICS.md`; the rules every kernel shares:

* Time is int64 milliseconds. Array arguments are 1-D numpy arrays; timestamps, key ids, row ids and
  watermarks are int64 (other integer dtypes are converted when lossless), numeric values are float64
  of shape ``(n, n_values)`` (C-contiguous). Wrong dtype, wrong shape or mismatched lengths raise
  ``TypeError``/``ValueError`` naming the argument before any work is done (see `engine/_checks.py`,
  shared by both implementations so the messages are identical).
* Arithmetic on time saturates instead of overflowing: ``end - 1 + lateness`` near ``INT64_MAX`` stays
  ``INT64_MAX``. A timestamp whose window start or end cannot be represented in int64 raises
  ``ValueError`` naming the timestamp.
* Results never depend on how the input was split into batches.
* Every stateful object has ``snapshot() -> dict[str, object]`` and ``Class.restore(snapshot)``. A
  snapshot is canonical and implementation independent: the same keys, numpy dtypes and ordering from
  the compiled and the reference kernels, holding only numpy arrays, ints, floats, bools and (for the
  key interner) a list of keys. ``restore(obj.snapshot())`` then continuing equals never stopping.
* Emission orders are deterministic: fired windows sorted by ``(end, start, key_id)``, join pairs in
  probe-record order then by the buffered record's ``(ts, row_id)``.
"""

from typing import Hashable, NamedTuple, Sequence

import numpy as np
from numpy.typing import NDArray

INT64_MIN: int
INT64_MAX: int

I64 = NDArray[np.int64]
F64 = NDArray[np.float64]
Mask = NDArray[np.bool_]

# --- 1. window assignment --------------------------------------------------------------------------

def tumbling_starts(ts: I64, size: int, offset: int = 0) -> I64:
    """Start of the tumbling window of each timestamp: ``offset + floor((ts - offset) / size) * size``.

    ``size > 0``; ``-size < offset < size`` (as Flink). The window is ``[start, start + size)``.
    """

def sliding_windows(ts: I64, size: int, slide: int, offset: int = 0) -> tuple[I64, I64]:
    """Expand each record into every sliding window it belongs to.

    Returns ``(rows, starts)``: ``rows[j]`` is the index into ``ts`` of pair ``j`` and ``starts[j]`` the
    window start; pairs ordered by row, then start ascending. A window start ``s`` satisfies
    ``s ≡ offset (mod slide)`` and ``ts - size < s <= ts``; ``size`` need not be a multiple of ``slide``.
    ``size > 0``, ``slide > 0``, ``-slide < offset < slide``.
    """

# --- 2. watermarks ---------------------------------------------------------------------------------

class WatermarkTracker:
    """``BoundedOutOfOrderness(delay)`` for one input partition, under the per-record rule."""

    def __init__(self, delay: int) -> None: ...  # delay >= 0
    @property
    def max_ts(self) -> int: ...  # INT64_MIN before any record
    @property
    def current(self) -> int:
        """``max_ts - delay - 1`` (saturating); INT64_MIN before any record; INT64_MAX once ended."""
    @property
    def ended(self) -> bool: ...
    def advance(self, ts: I64) -> I64:
        """Watermark in force before each record (from records before it only), then absorb the batch."""
    def end_input(self) -> None:
        """The partition is exhausted: ``current`` becomes INT64_MAX for good."""
    def snapshot(self) -> dict[str, object]: ...
    @classmethod
    def restore(cls, snapshot: dict[str, object]) -> "WatermarkTracker": ...

def late_mask(watermarks: I64, window_ends: I64, lateness: int) -> Mask:
    """``watermarks >= window_ends - 1 + lateness`` elementwise, saturating; ``lateness >= 0``."""

def combine_watermarks(watermarks: I64, idle: Mask) -> int:
    """An operator's watermark: the min over inputs that are not idle.

    When every input is idle, the max over all (Flink's rule); with no inputs, INT64_MIN.
    """

# --- 3. key interning ------------------------------------------------------------------------------

class KeyInterner:
    """Arbitrary hashable keys to dense int64 ids ``0, 1, 2, ...`` in order of first appearance.

    Keys are equal as in a Python dict (``1``, ``1.0`` and ``True`` are one key). Keys equal to an
    int64 value live in a C hash table by value; all other keys in a dict. An int64 numpy array is
    looked up without creating Python objects (only a new key gets its Python int, for ``key()``); other
    sequences go key by key through the cheaper of the two, once per batch. An unhashable key raises
    ``TypeError`` naming the key, and the batch interns nothing.
    """

    def __init__(self) -> None: ...
    def intern(self, keys: Sequence[Hashable] | NDArray) -> I64: ...
    def key(self, key_id: int) -> Hashable: ...
    def keys_of(self, key_ids: I64) -> list[Hashable]: ...
    def __len__(self) -> int: ...
    def snapshot(self) -> dict[str, object]: ...  # {"keys": [key for id 0, 1, ...]}
    @classmethod
    def restore(cls, snapshot: dict[str, object]) -> "KeyInterner": ...

# --- 4. windowed aggregation -----------------------------------------------------------------------

class FiredWindows(NamedTuple):
    key_ids: I64
    starts: I64
    ends: I64
    counts: I64
    sums: F64  # (m, n_values); NaN propagates
    mins: F64  # (m, n_values); NaN ignored, all-NaN gives NaN
    maxs: F64

class WindowAggTable:
    """Open-addressing hash table keyed by ``(key_id, window start)`` of count, sum, min, max.

    Windows are ``[start, start + size)``. ``fire`` emits a window once the watermark reaches
    ``end - 1`` and again after every later ``add`` to it (allowed lateness); ``purge`` drops windows
    with ``W >= end - 1 + lateness``. Grows without limit; shrinks its memory when windows are purged.
    The caller filters late records before ``add``. ``purge`` never drops a window whose additions
    were not emitted yet: it raises ``ValueError`` instead (call ``fire(W)`` before ``purge(W)``).
    """

    def __init__(self, size: int, lateness: int, n_values: int) -> None: ...  # 0 <= n_values <= 65536
    @property
    def size(self) -> int: ...
    @property
    def lateness(self) -> int: ...
    @property
    def n_values(self) -> int: ...
    def add(self, key_ids: I64, starts: I64, values: F64) -> None: ...
    def fire(self, watermark: int) -> FiredWindows: ...
    def purge(self, watermark: int) -> int: ...  # number of windows dropped
    def __len__(self) -> int: ...  # live windows
    @property
    def nbytes(self) -> int: ...  # memory held by the table
    def snapshot(self) -> dict[str, object]: ...
    # {"size", "lateness", "n_values": int, "key_ids", "starts", "counts": int64 (m,),
    #  "sums", "mins", "maxs": float64 (m, n_values), "emitted", "dirty": bool (m,)}, sorted by (start, key_id)
    def snapshot_unordered(self, sums: bool = True, mins: bool = True, maxs: bool = True) -> dict[str, object]: ...
    # the same state, windows in the table's own order (no sort; what checkpoints take); an
    # accumulator passed False is None (not copied)
    @classmethod
    def restore(cls, snapshot: dict[str, object]) -> "WindowAggTable": ...
    # windows in any order; a window given twice raises ValueError

# --- 5. session windows ----------------------------------------------------------------------------

class FiredSessions(NamedTuple):
    key_ids: I64
    starts: I64
    ends: I64
    counts: I64
    sums: F64
    mins: F64
    maxs: F64
    # sessions emitted earlier that a later record merged into one of the sessions above; the runtime
    # may report them as superseded (no retraction is emitted by default, as in Flink)
    merged_key_ids: I64
    merged_starts: I64
    merged_ends: I64

class SessionTable:
    """Per-key session windows with gap ``gap``; sessions that overlap or touch merge.

    ``add`` processes records in order: record ``i`` opens ``[ts, ts + gap)``, merged with the live
    sessions of its key it touches; it is late (not added, ``True`` in the returned mask) when
    ``wm_before[i] >= merged_end - 1 + lateness``. ``fire`` emits sessions with ``W >= end - 1`` that
    have unemitted changes; ``purge`` drops sessions with ``W >= end - 1 + lateness``.
    """

    def __init__(self, gap: int, lateness: int, n_values: int) -> None: ...
    def add(self, key_ids: I64, ts: I64, values: F64, wm_before: I64) -> Mask: ...
    def fire(self, watermark: int) -> FiredSessions: ...
    def purge(self, watermark: int) -> int: ...
    def __len__(self) -> int: ...
    @property
    def nbytes(self) -> int: ...
    def snapshot(self) -> dict[str, object]: ...
    @classmethod
    def restore(cls, snapshot: dict[str, object]) -> "SessionTable": ...

# --- 6. interval join ------------------------------------------------------------------------------

LEFT: int  # 0
RIGHT: int  # 1

class JoinPairs(NamedTuple):
    left_rows: I64
    right_rows: I64
    late: Mask  # per input record of the processed batch

class IntervalJoinBuffers:
    """Per-key left and right buffers ordered by time, holding caller-assigned row ids.

    A pair ``(l, r)`` matches when the keys are equal and ``l.ts + lower <= r.ts <= l.ts + upper``
    (each bound exclusive by flag). ``process`` handles one side's batch in order: record ``i`` is late
    when ``ts[i] <= wm_before[i]`` (dropped, ``True`` in ``late``); otherwise it probes the other side's
    buffer, then is buffered. ``purge(W)`` drops left rows with ``W >= ts + upper`` and right rows with
    ``W >= ts - lower`` and returns their row ids so the caller can free the records, each side sorted
    by ``(ts, row_id)``.
    """

    def __init__(
        self, lower: int, upper: int, lower_exclusive: bool = False, upper_exclusive: bool = False
    ) -> None: ...  # lower <= upper
    def process(self, side: int, key_ids: I64, ts: I64, row_ids: I64, wm_before: I64) -> JoinPairs: ...
    def purge(self, watermark: int) -> tuple[I64, I64]: ...  # (left row ids, right row ids)
    def __len__(self) -> int: ...  # buffered rows, both sides
    @property
    def nbytes(self) -> int: ...
    def snapshot(self) -> dict[str, object]: ...
    @classmethod
    def restore(cls, snapshot: dict[str, object]) -> "IntervalJoinBuffers": ...

def dfa_reject_lines(buf: bytes | NDArray[np.uint8], table: I64, accepting: Mask, start: int) -> I64:
    """Indices (ascending) of the ``\\n``-separated lines of ``buf`` that the DFA rejects.

    ``table[state * 256 + byte]`` is the next state (256 entries per state, every entry a state id);
    each line starts in ``start`` and is accepted when its final state is ``accepting``. Used by the data
    contracts to check a column of strings against a pattern in one pass.
    """

# --- attributes of many objects --------------------------------------------------------------------

def gather_attributes(items: list[object], int_names: tuple[str, ...], object_names: tuple[str, ...],
                      append_to: tuple[list[object], ...] | None = None) -> tuple[I64 | list[object], ...]:
    """``item.<name>`` of every item, in one C loop: an int64 array per name of ``int_names``, then a
    list per name of ``object_names``, in that order. With ``append_to`` (one distinct list per object
    name) the objects are appended to those lists instead, and only the int arrays are returned.

    For a consumer's records: e.g. their offsets and timestamps as int64 arrays and their values, keys
    and headers as lists, without a Python loop per record. Each int attribute must be an int (or have
    ``__index__``, not a bool) in int64 range: else TypeError or OverflowError naming the item's position
    and the attribute; a missing attribute raises AttributeError. On any error the ``append_to`` lists
    are left as they were. Names are non-empty strs (at least one name in all); the int arrays may be
    rows of one block.
    """

# --- flat JSON records into columns ----------------------------------------------------------------

from engine._kernel_types import FlatField

def scan_flat_json(
    records: list[object], fields: Sequence[FlatField], columns: list[NDArray | tuple[NDArray, NDArray]],
    status: NDArray[np.uint8],
    allow_unknown: bool = False,
) -> int:
    """Decode and validate a batch of flat JSON objects straight into columns; returns how many passed.

    ``columns[k]`` is preallocated by the caller for ``fields[k]`` with ``len(records)`` rows, dtype by
    kind: int64 (``int``, ``timestamp``), float64 (``float``), bool (``bool``), object (``string``: the
    value as ``str``), int32 (``enum``: the index of the value in ``symbols``), and a pair for the two
    kinds that hold one of two types: ``(int64, float64)`` for ``number`` (an int, or a float when the
    literal has a fraction or an exponent, as msgspec decides: the int or ``FLAT_SECOND_TYPE`` for a
    float, and the value as float64, an int converted like int64 -> float64), ``(int64, object)`` for
    ``key`` (the int or ``FLAT_SECOND_TYPE`` for a str, and the ``str`` or ``None`` for an int).
    ``FLAT_SECOND_TYPE`` is INT64_MIN, never an accepted int (19 digits). For each record ``i``,
    ``status[i]`` becomes ``FLAT_OK`` (0) or ``FLAT_SLOW`` (1); the ``k``-th accepted record fills row
    ``k`` of every column (the layout the caller wants when most records pass: no compaction), and rows
    from the returned count on are unspecified.

    ``FLAT_OK`` is conservative: the record is ``bytes`` holding exactly one JSON object (JSON
    whitespace around tokens) whose keys are exactly the field names, each once, plain ASCII strings
    without escapes (with ``allow_unknown``, other keys may appear too when their values are plain
    scalars: a number the ``float`` rule reads, ``true``, ``false``, ``null`` or a plain string, or
    arrays and objects of them with plain-string keys, at most 32 levels deep), with
    values that msgspec would accept with the same values and that meet the
    field's constraints: ``int``/``timestamp`` a JSON integer literal of at most 18 digits; ``number``
    such an integer literal, or a number the ``float`` rule reads; ``key`` such an integer literal or a
    plain string (below); ``float`` any
    JSON number (integer literals of at most 18 digits convert like int64 -> float64, so ``-0`` is
    ``0.0``; others are correctly rounded by ``PyOS_string_to_double``; at most 40 characters, a
    4-digit exponent, finite and not underflowing); ``bool`` ``true``/``false``; ``string``/``enum`` a
    plain ASCII string (bytes 0x20-0x7f except ``"`` and ``\\``; no escapes). Anything else (null,
    nested field values, escapes, non-ASCII, unknown/missing/duplicate keys, malformed JSON, a constraint
    failure, items that are not ``bytes``) is ``FLAT_SLOW`` and is never explained: the caller decodes
    such records with msgspec to get the values or the error.
    """

# --- JSON rows and Kafka record framing (sinks) ---------------------------------------------------------

def json_object_rows(keys: Sequence[bytes], columns: Sequence[NDArray]) -> tuple[bytes, I64] | None:
    """Encode row ``i`` of ``columns`` as the JSON object ``{keys[0]: columns[0][i], ...}``.

    ``keys[k]`` is the JSON encoding of column ``k``'s name (``b'"user"'``); columns are 1-D int64,
    float64, bool or object arrays of one length ``n``. Returns ``(buffer, offsets)`` with row ``i`` at
    ``buffer[offsets[i]:offsets[i + 1]]``, byte for byte ``msgspec.json.encode`` of the row's dict;
    ``None`` when an object column holds anything but None, bool, int in int64 range, float or str.
    """

def kafka_record_batches(values: bytes | NDArray[np.uint8], offsets: I64, timestamps: I64, limit: int,
                         rows: I64 | None = None, keys: bytes | NDArray[np.uint8] | None = None,
                         key_offsets: I64 | None = None) -> tuple[list[bytearray], I64]:
    """The values framed as consecutive Kafka v2 record batches of at most ``limit`` bytes each (61-byte
    header included; a batch always takes one value). Value ``i`` is ``values[offsets[i]:offsets[i + 1]]``
    with timestamp ``timestamps[i]`` (ms, >= 0) and key ``keys[key_offsets[i]:key_offsets[i + 1]]`` (null
    keys without ``keys``); the batches hold the values ``rows`` (default all) in that order. Records have
    no headers, offset and timestamp deltas from the batch's first. Returns the batches (bytearrays: 61
    zero bytes for the header, which the caller fills, then the records) and ``bounds`` (batch ``b`` holds
    ``rows[bounds[b]:bounds[b + 1]]``).
    """

def kafka_json_record_batches(keys: Sequence[bytes], columns: Sequence[NDArray], timestamps: I64, limit: int,
                              rows: I64 | None = None, msg_keys: bytes | NDArray[np.uint8] | None = None,
                              key_offsets: I64 | None = None) -> tuple[list[bytearray], I64, I64, I64] | None:
    """`json_object_rows` then `kafka_record_batches` in one pass, byte for byte and batch for batch: the
    JSON object of each row of ``rows`` is encoded once, straight into its record batch. ``columns`` (at
    least one) hold one row per timestamp; ``msg_keys``/``key_offsets`` are `kafka_record_batches`'s
    ``keys``/``key_offsets``. Returns ``(batches, bounds, first_timestamps, max_timestamps)`` (per batch
    the timestamp of its first record and the largest), or ``None`` when an object value of a row in
    ``rows`` is not one `json_object_rows` encodes. The GIL is released for int and bool columns.
    """

# --- CRC-32C (Kafka record batches) ------------------------------------------------------------------

def crc32c(data: bytes | bytearray | memoryview | NDArray[np.generic], crc: int = 0) -> int:
    """CRC-32C (Castagnoli: reflected polynomial 0x82F63B78, register and result inverted) of the bytes
    of ``data``, continuing from ``crc``: ``crc32c(b, crc32c(a)) == crc32c(a + b)``, ``crc32c(b"") ==
    0`` and ``crc32c(b"123456789") == 0xE3069283``. The checksum of Kafka's v2 record batches.

    ``data`` is any C-contiguous buffer, summed as its raw bytes (in memory order, whatever its item
    type); ``crc`` an int in ``[0, 2**32)``. A non-buffer or a non-contiguous buffer (a strided
    memoryview or array) raises ``TypeError``, as does a non-int ``crc``; ``crc`` out of range raises
    ``ValueError``. The compiled kernel uses the SSE4.2 ``crc32`` instruction on x86-64 CPUs that have
    it and slice-by-8 tables otherwise, and releases the GIL for inputs of 2 KiB or more.
    """
