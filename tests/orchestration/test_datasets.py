"""Data-aware scheduling: outlets, all-of / any-of conditions, collapsing, persistence across restarts."""

from __future__ import annotations

from engine.orchestration import DAG, Dataset, DatasetAll, DatasetAny, RunState, Task

ORDERS = Dataset("s3://lake/orders")
CUSTOMERS = Dataset("s3://lake/customers")


def _consumer(dag_id, schedule, seen):
    def consume(context):
        seen.append(sorted(e["uri"] for e in context.triggering_dataset_events))

    with DAG(dag_id, schedule=schedule) as d:
        Task("consume", consume)
    return d


async def test_a_producer_task_triggers_the_consumer_dag(scheduler_factory):
    seen = []
    with DAG("producer") as producer:
        Task("write_orders", lambda: "written", outlets=[ORDERS])
    consumer = _consumer("consumer", [ORDERS], seen)
    s = scheduler_factory(producer, consumer)
    await s.run_dag("producer")
    await s.run_until_idle()
    assert seen == [["s3://lake/orders"]]
    runs = s.store.list_runs("consumer")
    assert [(r.run_type, r.state) for r in runs] == [("dataset", "success")]
    event = runs[0].triggering_events[0]
    assert event["source_dag_id"] == "producer" and event["source_task_id"] == "write_orders"


async def test_all_of_waits_for_every_dataset_and_any_of_does_not(scheduler_factory):
    seen_all, seen_any = [], []
    all_of = _consumer("all_of", [ORDERS, CUSTOMERS], seen_all)
    any_of = _consumer("any_of", DatasetAny(ORDERS, CUSTOMERS), seen_any)
    s = scheduler_factory(all_of, any_of)
    await s.emit_dataset_event(ORDERS.uri)
    await s.run_until_idle()
    assert seen_all == [] and seen_any == [["s3://lake/orders"]]
    await s.emit_dataset_event(CUSTOMERS.uri)
    await s.run_until_idle()
    assert seen_all == [["s3://lake/customers", "s3://lake/orders"]]
    assert seen_any == [["s3://lake/orders"], ["s3://lake/customers"]]


async def test_updates_between_runs_are_collapsed_into_one_run(scheduler_factory):
    seen = []
    consumer = _consumer("collapsing", ORDERS & CUSTOMERS, seen)
    s = scheduler_factory(consumer)
    for i in range(3):
        await s.emit_dataset_event(ORDERS.uri, {"batch": i})
    await s.emit_dataset_event(CUSTOMERS.uri)
    await s.run_until_idle()
    assert seen == [["s3://lake/customers", "s3://lake/orders", "s3://lake/orders", "s3://lake/orders"]]
    run = s.store.list_runs("collapsing")[0]
    assert [e["extra"] for e in run.triggering_events] == [{"batch": 0}, {"batch": 1}, {"batch": 2}, {}]
    assert run.interval_start <= run.interval_end
    await s.run_until_idle()
    assert len(s.store.list_runs("collapsing")) == 1  # consumed: nothing left to trigger another run


async def test_no_update_is_lost_across_a_restart(tmp_path, scheduler_factory):
    db = tmp_path / "meta.db"
    seen = []
    s1 = scheduler_factory(_consumer("restart", DatasetAll(ORDERS, CUSTOMERS), seen), store=db)
    await s1.emit_dataset_event(ORDERS.uri, {"part": 1})
    await s1.close()  # the scheduler stops with one update queued
    s2 = scheduler_factory(_consumer("restart", DatasetAll(ORDERS, CUSTOMERS), seen), store=db)
    await s2.emit_dataset_event(CUSTOMERS.uri)
    await s2.run_until_idle()
    assert seen == [["s3://lake/customers", "s3://lake/orders"]]
    assert s2.store.list_runs("restart")[0].state == RunState.SUCCESS.value


async def test_failed_producer_emits_nothing(scheduler_factory):
    seen = []

    def broken():
        raise RuntimeError("no data")

    with DAG("bad_producer") as producer:
        Task("write", broken, outlets=[ORDERS])
    s = scheduler_factory(producer, _consumer("waiting", [ORDERS], seen))
    await s.run_dag("bad_producer")
    await s.run_until_idle()
    assert seen == [] and s.store.dataset_events(ORDERS.uri) == []
