"""KafkaSource's projected (columnar) decoding and KafkaSink's columnar encoding against the broker: the
same output and dead letters as the records path, batch by batch, with bad messages mixed in."""

from __future__ import annotations

import asyncio
import random

import msgspec
import pytest

import connectors.kafka as kafka_module
from connectors.kafka import KafkaSink, KafkaSource
from connectors.memory import CollectSink
from engine import BoundedOutOfOrderness, Dataflow, Tumbling, agg
from tests.connectors.kafka_helpers import consume_all, produce

pytestmark = pytest.mark.kafka

BAD = [
    b'{"ts":1,"amount":1}',  # no user: a key_by dead letter
    b'{"user":[1],"amount":1}',  # unhashable key: a key_by dead letter
    b'{"user":"u1","amount":"3"}',  # not a number: a window dead letter
    b"{not json",  # undecodable: a source dead letter
    b'{"user":true,"amount":2}',  # a bool key is kept as it is
    b'{"user":"u2",\n"amount":4}',  # a newline inside: decoded alone, still good
]


def messages(seed: int, n: int) -> list[tuple[int, int, None, bytes]]:
    rng = random.Random(seed)
    print(f"seed={seed}")
    # every kind of bad value appears at least once (at a random place after the clean first batches)
    placed = dict(zip(rng.sample(range(101, n), len(BAD)), BAD))
    out = []
    for i in range(n):
        ts = 10 * i + rng.randrange(-200, 200) + 1_000
        if i in placed:
            value = placed[i]
        elif i > 100 and rng.random() < 0.03:  # the first batches are clean; later ones mix in bad values
            value = rng.choice(BAD)
        else:
            user = rng.choice(["u0", "u1", 3, 4])
            amount = rng.choice([rng.randrange(50), rng.randrange(50) + 0.5])
            value = msgspec.json.encode({"user": user, "amount": amount, "page": "/x"})
        out.append((0, ts, None, value))
    return out


class CountingSource(KafkaSource):
    """Counts chunks delivered as columns and as records."""

    def _chunk(self, pid, messages):
        chunk = super()._chunk(pid, messages)
        self.kinds = getattr(self, "kinds", {"columns": 0, "records": 0})
        self.kinds["columns" if chunk.columns is not None else "records"] += 1
        return chunk


def job(source, out_topic: str, bootstrap: str, letters: CollectSink, records_path: bool) -> Dataflow:
    flow = Dataflow("projection-records" if records_path else "projection-columns")
    stream = flow.source(source, watermark=BoundedOutOfOrderness(300))
    if records_path:  # an identity map: the job now sees whole records, so nothing is projected
        stream = stream.map(lambda r: r)
    results = stream.key_by("user").window(Tumbling(500)).aggregate(
        count=agg.count(), total=agg.sum("amount"), top=agg.max("amount")
    )
    if records_path:  # results as records: the sink's per-record encoding
        results = results.map(lambda r: r)
    results.sink(KafkaSink(out_topic, bootstrap))
    flow.dead_letters().sink(letters)
    return flow


@pytest.mark.parametrize("poll_slice", [500, 7], ids=["one-slice", "slices-of-7"])
async def test_projected_job_writes_what_the_records_path_writes(bootstrap_servers, topic_factory, poll_slice,
                                                                  monkeypatch):
    # slices of 7: a batch's slices are decoded one by one, clean ones to columns, mixed ones kept whole
    monkeypatch.setattr(kafka_module, "POLL_SLICE", poll_slice)
    topic = await topic_factory()
    columns_out, records_out = await topic_factory(), await topic_factory()
    await produce(bootstrap_servers, topic, messages(random.randrange(10**6), 600))

    outputs = {}
    for out_topic, records_path in ((columns_out, False), (records_out, True)):
        source = CountingSource(topic, bootstrap_servers, bounded=True, batch_size=25)
        letters = CollectSink()
        await asyncio.wait_for(job(source, out_topic, bootstrap_servers, letters, records_path).run_async(), timeout=60)
        written = await consume_all(bootstrap_servers, out_topic)
        outputs[records_path] = (
            sorted(m.value for m in written),
            [(d.error, d.record if not hasattr(d.record, "value") else d.record.value, d.field, d.value)
             for d in letters.results],
            source.kinds,
        )

    columns_values, columns_letters, columns_kinds = outputs[False]
    records_values, records_letters, records_kinds = outputs[True]
    assert columns_kinds["columns"] > 0 and columns_kinds["records"] > 0  # clean and mixed batches
    assert records_kinds["columns"] == 0
    assert columns_values and columns_values == records_values
    # the same dead letters, each once (the four bad kinds, at least). Not in the same order: letters of
    # different steps interleave as chunks pass the steps, and the two paths cut chunks differently (a
    # run of decoded slices is a chunk of its own), so a key_by letter can come before or after a source
    # letter of a nearby offset.
    assert len(columns_letters) >= 4 and sorted(columns_letters, key=repr) == sorted(records_letters, key=repr)
