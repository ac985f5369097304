"""Bad records go to dead letters (with the error, the step and the record) or fail the job naming the
step, the field and the value. Nothing is lost silently."""

from __future__ import annotations

import pytest

from connectors.memory import CollectionSource, CollectSink
from engine import BoundedOutOfOrderness, Dataflow, DeadLetter, JobFailedError, RecordError, Tumbling, agg

GOOD = [{"ts": 10, "user": "a", "amount": 1}, {"ts": 20, "user": "b", "amount": 2}]


def build(records, *, dead_letters, stage):
    """A flow where ``stage`` decides which step the bad record trips."""
    flow = Dataflow("bad-input")
    stream = flow.source(CollectionSource(records, batch_size=2), timestamp="ts", watermark=BoundedOutOfOrderness(0))
    dead = []
    if dead_letters and stage == "source":
        dead.append(stream.dead_letters())
    if stage == "map":
        stream = stream.map(lambda r: {**r, "ratio": 10 / r["amount"]}, name="ratio")
        if dead_letters:
            dead.append(stream.dead_letters())
    keyed = stream.key_by("user", name="by_user")
    if dead_letters and stage == "key":
        dead.append(keyed.dead_letters())
    results = keyed.window(Tumbling(100), name="per_user").aggregate(n=agg.count(), total=agg.sum("amount"))
    if dead_letters and stage == "window":
        dead.append(results.dead_letters())
    results.sink(out := CollectSink())
    sinks = []
    for stream_of_dead in dead:
        stream_of_dead.sink(sink := CollectSink())
        sinks.append(sink)
    return flow, out, sinks


CASES = [
    # (bad record, stage, step, field, value, error text)
    ({"user": "c", "amount": 3}, "source", "source_1", "ts", None, "record has no field 'ts'"),
    ({"ts": 15.5, "user": "c", "amount": 3}, "source", "source_1", "ts", 15.5, "timestamp must be an int"),
    ({"ts": "15", "user": "c", "amount": 3}, "source", "source_1", "ts", "15", "timestamp must be an int"),
    ({"ts": True, "user": "c", "amount": 3}, "source", "source_1", "ts", True, "timestamp must be an int"),
    ({"ts": 15, "amount": 3}, "key", "by_user", "user", None, "record has no field 'user'"),
    ({"ts": 15, "user": ["c"], "amount": 3}, "key", "by_user", "user", ["c"], "key must be hashable"),
    ({"ts": 15, "user": "c", "amount": "3"}, "window", "per_user", "amount", "3", "amount must be a number"),
    ({"ts": 15, "user": "c", "amount": None}, "window", "per_user", "amount", None, "amount must be a number"),
    ({"ts": 15, "user": "c", "amount": 0}, "map", "ratio", None, None, "ZeroDivisionError"),
]


@pytest.mark.parametrize(("bad", "stage", "step", "field", "value", "text"), CASES)
@pytest.mark.parametrize("position", [0, 1, 2])
def test_bad_record_goes_to_dead_letters_and_the_job_continues(bad, stage, step, field, value, text, position):
    records = list(GOOD)
    records.insert(position, bad)
    flow, out, (dead,) = build(records, dead_letters=True, stage=stage)
    flow.run()
    assert sorted(r["key"] for r in out.results) == ["a", "b"], "the good records were all processed"
    assert len(dead.results) == 1
    letter = dead.results[0]
    assert isinstance(letter, DeadLetter)
    assert letter.step == step and letter.field == field and letter.value == value
    assert text in letter.error
    assert letter.record == bad
    assert flow.metrics()[step]["errors"] == 1


@pytest.mark.parametrize(("bad", "stage", "step", "field", "value", "text"), CASES)
def test_bad_record_without_dead_letters_fails_the_job_naming_step_field_value(bad, stage, step, field, value, text):
    flow, _, _ = build([GOOD[0], bad, GOOD[1]], dead_letters=False, stage=stage)
    with pytest.raises(JobFailedError) as caught:
        flow.run()
    message = str(caught.value)
    assert f"step {step!r}" in message and text in message and ".dead_letters()" in message
    if field is not None:
        assert f"field {field!r}" in message and f"value {value!r}" in message
    cause = caught.value.__cause__
    assert isinstance(cause, RecordError) and cause.step == step and cause.field == field


def test_flow_level_dead_letters_catch_every_step_without_its_own():
    records = [{"ts": 1, "user": "a"}, {"user": "b"}, {"ts": 2}, {"ts": 3, "user": {}}]
    flow = Dataflow("flow-dead")
    keyed = flow.source(CollectionSource(records), timestamp="ts").key_by("user")
    keyed.window(Tumbling(10)).aggregate(n=agg.count()).sink(out := CollectSink())
    flow.dead_letters().sink(dead := CollectSink())
    flow.run()
    assert out.results == [{"key": "a", "start": 0, "end": 10, "n": 1}]
    assert [(d.step, d.field) for d in dead.results] == [("source_1", "ts"), ("key_by_1", "user"), ("key_by_1", "user")]


def test_failing_filter_and_flat_map_and_key_function_are_routed():
    records = [{"ts": i, "x": i} for i in range(6)]
    flow = Dataflow("functions")
    stream = flow.source(CollectionSource(records, batch_size=4), timestamp="ts")
    kept = stream.filter(lambda r: 1 / (r["x"] - 1) > 0)
    expanded = kept.flat_map(lambda r: [r] * (3 // (r["x"] - 3)) if r["x"] != 3 else iter(1))
    keyed = expanded.key_by(lambda r: r["x"] // (r["x"] - 4))
    keyed.window(Tumbling(100)).aggregate(n=agg.count()).sink(out := CollectSink())
    for s in (kept, expanded, keyed):
        s.dead_letters().sink(CollectSink())
    flow.dead_letters().sink(CollectSink())
    flow.run()
    metrics = flow.metrics()
    assert metrics["filter_1"]["errors"] == 1  # x == 1
    assert metrics["flat_map_1"]["errors"] == 1  # x == 3: iter(1) raises
    assert metrics["key_by_1"]["errors"] == 3  # the three copies of x == 4 (4 // 0)
    # x=0 filtered out (1/-1 < 0); x=2 -> [r] * -3 = no copies; x=5 -> 1 copy (3 // 2), key 5 // 1
    assert sorted((r["key"], r["n"]) for r in out.results) == [(5, 1)]


def test_a_raising_reduce_function_dead_letters_the_record():
    records = [{"ts": 1, "k": "a", "v": 1}, {"ts": 2, "k": "a", "v": "x"}, {"ts": 3, "k": "a", "v": 2}]
    flow = Dataflow("reduce-error")
    results = flow.source(CollectionSource(records), timestamp="ts").key_by("k").window(Tumbling(10)).reduce(
        lambda acc, r: acc + r["v"], 0
    )
    results.sink(out := CollectSink())
    results.dead_letters().sink(dead := CollectSink())
    flow.run()
    assert [r["value"] for r in out.results] == [3]
    assert [d.record["v"] for d in dead.results] == ["x"]
    assert "TypeError" in dead.results[0].error
