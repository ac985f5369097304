"""Property tests of the record store: any sequence of (possibly repeated) batches stores each id once
with its first version, and paging with any limit returns exactly the filtered records, in order."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.services.envelope import Envelope
from engine.services.store import RecordStore

ids = st.integers(0, 40)
batches = st.lists(st.lists(st.tuples(ids, st.sampled_from(["a", "b", "c"]), st.integers(-5, 5)),
                            max_size=15), max_size=8)


@settings(max_examples=150, deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow])
@given(batches=batches, limit=st.integers(1, 7), user=st.sampled_from(["a", "b", "c"]))
def test_idempotent_writes_and_complete_cursor_pages(batches, limit, user):
    store = RecordStore(indexes={"user": "text", "n": "integer"}).open()
    first: dict[str, dict] = {}
    order: list[str] = []
    for batch in batches:
        envelopes = [Envelope(id=f"r{i}", source="p", time=i, payload={"user": u, "n": n}) for i, u, n in batch]
        expected_new = 0
        for env in envelopes:
            if env.id not in first:
                first[env.id] = env.payload
                order.append(env.id)
                expected_new += 1
        assert store.put_many(envelopes) == expected_new
    assert store.count() == len(first)
    assert store.ids() == order
    for rid, payload in first.items():
        assert store.get(rid)["payload"] == payload
    seen, cursor, pages = [], None, 0
    while True:
        items, cursor = store.query({"user": user}, limit=limit, cursor=cursor)
        assert len(items) <= limit
        seen.extend(r["id"] for r in items)
        pages += 1
        if cursor is None:
            break
        assert len(items) == limit  # only a full page can have a next one
    assert seen == [rid for rid in order if first[rid]["user"] == user]
    assert pages <= max(1, -(-len(seen) // limit) + 1)
    store.close()
