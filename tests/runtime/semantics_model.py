"""An independent, per-record Python model of SEMANTICS.md, used as the oracle of the runtime tests.

It never calls the engine: plain loops over records in arrival order, one watermark per record
(``max ts seen before it - delay - 1``), windows as dicts. Small and slow on purpose.
"""

from __future__ import annotations

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def watermarks_before(timestamps, delay):
    """The watermark in force before each record (BoundedOutOfOrderness, one partition)."""
    out = []
    max_ts = None
    for ts in timestamps:
        out.append(INT64_MIN if max_ts is None else max_ts - delay - 1)
        max_ts = ts if max_ts is None else max(max_ts, ts)
    return out


def tumbling(size, offset=0):
    def assign(ts):
        start = offset + ((ts - offset) // size) * size
        return [(start, start + size)]

    return assign


def sliding(size, slide, offset=0):
    def assign(ts):
        last = offset + ((ts - offset) // slide) * slide
        starts = []
        s = last
        while s > ts - size:
            starts.append(s)
            s -= slide
        return [(s, s + size) for s in sorted(starts)]

    return assign


def windows(records, delay, assign, lateness, ts_of, key_of):
    """Window contents and late records.

    Returns ``({(key, start, end): [records in arrival order]}, [late records])``: a record is added to
    every window with ``W_i < end - 1 + lateness`` and is late when it is added to none.
    """
    contents = {}
    late = []
    for record, w in zip(records, watermarks_before([ts_of(r) for r in records], delay)):
        added = False
        for start, end in assign(ts_of(record)):
            if w >= end - 1 + lateness:
                continue
            contents.setdefault((key_of(record), start, end), []).append(record)
            added = True
        if not added:
            late.append(record)
    return contents, late


def sessions(records, delay, gap, lateness, ts_of, key_of):
    """Session contents and late records, per record: purge sessions the watermark has passed
    (``W_i >= end - 1 + lateness``), merge the new ``[ts, ts + gap)`` with the live sessions it
    overlaps or touches, and call the record late when ``W_i >= merged end - 1 + lateness``."""
    live = {}  # key -> list of [start, end, records]
    done = []
    late = []
    for record, w in zip(records, watermarks_before([ts_of(r) for r in records], delay)):
        key = key_of(record)
        current = live.setdefault(key, [])
        for s in [s for s in current if w >= s[1] - 1 + lateness]:
            current.remove(s)
            done.append((key, s))
        ts = ts_of(record)
        start, end = ts, ts + gap
        touching = [s for s in current if s[0] <= end and start <= s[1]]
        start = min([start] + [s[0] for s in touching])
        end = max([end] + [s[1] for s in touching])
        if w >= end - 1 + lateness:
            late.append(record)
            continue
        members = []
        for s in touching:
            current.remove(s)
            members += s[2]
        current.append([start, end, members + [record]])
    for key, current in live.items():
        done += [(key, s) for s in current]
    contents = {}
    for key, (start, end, members) in done:
        contents[(key, start, end)] = members
    return contents, late


def interval_join(records, delay, lower, upper, ts_of, key_of, is_left, lower_exclusive=False, upper_exclusive=False):
    """Pairs ``(left, right)`` of one stream split into two sides; a record is late (never paired) when
    ``ts <= W_i``. Returns (pairs, late records)."""
    on_time = []
    late = []
    for record, w in zip(records, watermarks_before([ts_of(r) for r in records], delay)):
        (late if ts_of(record) <= w else on_time).append(record)
    lefts = [r for r in on_time if is_left(r)]
    rights = [r for r in on_time if not is_left(r)]
    pairs = []
    for left in lefts:
        lo, hi = ts_of(left) + lower, ts_of(left) + upper
        for right in rights:
            if key_of(left) != key_of(right):
                continue
            rt = ts_of(right)
            if (lo < rt if lower_exclusive else lo <= rt) and (rt < hi if upper_exclusive else rt <= hi):
                pairs.append((left, right))
    return pairs, late
