"""stream.validate(contract): valid records continue, invalid ones are dead-lettered with field paths."""

from __future__ import annotations

import pytest

from connectors.memory import CollectionSource, CollectSink
from engine import BoundedOutOfOrderness, Dataflow, Tumbling, agg
from engine.contracts import loads_contract
from engine.errors import JobFailedError, RecordError

CONTRACT = loads_contract(
    """
name: clicks
version: 1.0.0
fields:
  - {name: user, type: string, constraints: {min_length: 1}}
  - {name: ts, type: integer}
  - {name: amount, type: float, constraints: {ge: 0}}
  - {name: page, type: string, default: "/"}
"""
)


def records():
    return [
        {"user": "a", "ts": 10, "amount": 1.5},
        {"user": "b", "ts": 20, "amount": -3.0},  # violates amount >= 0
        {"user": "a", "ts": 30, "amount": 2, "page": "/cart"},
        {"user": "", "ts": 40, "amount": 1.0},  # violates min_length
        {"user": "b", "ts": 50},  # amount missing
        {"user": "b", "ts": 60, "amount": 4.0},
    ]


@pytest.mark.parametrize("batch_size", [1, 4, 100])
def test_valid_records_continue_and_invalid_ones_are_dead_lettered(batch_size):
    flow = Dataflow("validated")
    checked = flow.source(CollectionSource(records(), batch_size=batch_size), timestamp="ts").validate(CONTRACT)
    checked.sink(out := CollectSink())
    checked.dead_letters().sink(dead := CollectSink())
    checked.key_by("user").window(Tumbling(100)).aggregate(n=agg.count(), total=agg.sum("amount")).sink(windows := CollectSink())
    flow.run()

    assert [r["ts"] for r in out.results] == [10, 30, 60]
    assert out.results[0]["page"] == "/"  # the contract's default filled in
    assert sorted((r["key"], r["n"], r["total"]) for r in windows.results) == [("a", 2, 3.5), ("b", 1, 4.0)]
    by_ts = {letter.record["ts"]: letter for letter in dead.results}
    assert sorted(by_ts) == [20, 40, 50]
    assert by_ts[20].field == "amount" and by_ts[20].value == -3.0
    assert by_ts[40].field == "user" and by_ts[40].value == ""
    assert "amount" in by_ts[50].error
    assert all("violates contract 'clicks' 1.0.0" in letter.error for letter in dead.results)
    assert flow.metrics()[checked.name]["records_out"] == 3


def test_without_dead_letters_the_job_fails_naming_step_field_and_value():
    flow = Dataflow("strict")
    flow.source(CollectionSource(records()), timestamp="ts").validate(CONTRACT, name="check").sink(CollectSink())
    with pytest.raises((JobFailedError, RecordError), match=r"'check'.*amount.*-3\.0"):
        flow.run()


def test_validate_refuses_something_that_is_not_a_contract():
    flow = Dataflow("bad")
    stream = flow.source(CollectionSource([]), timestamp="ts", watermark=BoundedOutOfOrderness(0))
    with pytest.raises(ValueError, match="DataContract"):
        stream.validate({"name": "x"})
