"""Scheduler behaviour: execution, results, mapping, retries, timeouts, pools, limits, executors."""

from __future__ import annotations

import asyncio
import os
import random
import threading
from datetime import timedelta

import pytest

from engine.orchestration import (
    DAG,
    FailFastError,
    FakeClock,
    MappedTask,
    Pool,
    RunState,
    Task,
    TaskState,
    dag,
    task,
)
from engine.orchestration.exceptions import DagDefinitionError
from tests.waiting import wait_until


async def test_sync_and_async_tasks_run_once_and_pass_results(scheduler_factory):
    calls = []

    @dag
    def flow():
        @task
        def extract():
            calls.append("extract")
            return {"rows": [1, 2, 3], "pair": (1, 2)}

        @task
        async def count(data):
            calls.append("count")
            await asyncio.sleep(0)
            return len(data["rows"])

        @task
        def report(n, data, context):
            calls.append("report")
            return {"n": n, "pair": data["pair"], "up": sorted(context.upstream_results)}

        data = extract()
        report(count(data), data)

    d = flow()
    result = await scheduler_factory(d).run_dag(d)
    assert result.state is RunState.SUCCESS
    assert sorted(calls) == ["count", "extract", "report"]
    # Results travel as JSON: the tuple arrives as a list, exactly as after a restart.
    assert result.results["report"] == {"n": 3, "pair": [1, 2], "up": ["count", "extract"]}


async def test_sync_tasks_do_not_block_the_event_loop(scheduler_factory):
    gate = threading.Event()

    def blocking():
        # generous: a blocked loop fails this after 60 s; a slow one must not fail it
        assert gate.wait(60), "the async task never ran: the loop was blocked"
        return "unblocked"

    async def opener():
        gate.set()

    with DAG("threads") as d:
        Task("blocking", blocking)
        Task("opener", opener)
    result = await scheduler_factory(d).run_dag(d)
    assert result.states == {"blocking": TaskState.SUCCESS, "opener": TaskState.SUCCESS}


async def test_unserialisable_or_large_results_fail_clearly(scheduler_factory):
    with DAG("bad_results") as d:
        Task("obj", lambda: object())
        Task("big", lambda: "x" * 100)
    result = await scheduler_factory(d, max_result_bytes=50).run_dag(d)
    assert result.states == {"obj": TaskState.FAILED, "big": TaskState.FAILED}
    assert "DAG 'bad_results', task 'obj'" in result.errors["obj"] and "cannot be stored as JSON" in result.errors["obj"]
    assert "over the 50-byte limit" in result.errors["big"]


# -- dynamic mapping ------------------------------------------------------------------------------


def _mapping_dag(items, **options):
    with DAG(f"mapping_{abs(hash(repr(items))) % 10_000}", **options) as d:
        src = Task("items", lambda: items)
        m = MappedTask("double", lambda x, k: x * k, expand={"x": src.output}, kwargs={"k": 2})
        Task("total", lambda xs: sum(xs), args=(m.output,))
    return d


async def test_mapping_expands_one_instance_per_item(scheduler_factory):
    d = _mapping_dag([1, 2, 3])
    result = await scheduler_factory(d).run_dag(d)
    assert result.results["double"] == [2, 4, 6]
    assert result.results["total"] == 12
    assert {k for k in result.states if k.startswith("double")} == {"double[0]", "double[1]", "double[2]"}


async def test_mapping_over_an_empty_list_skips_the_mapped_task(scheduler_factory):
    d = _mapping_dag([])
    result = await scheduler_factory(d).run_dag(d)
    assert result.states["double"] is TaskState.SKIPPED
    assert result.states["total"] is TaskState.SKIPPED  # the skip propagates (all_success)
    assert result.state is RunState.SUCCESS


async def test_mapping_over_a_non_list_fails_naming_dag_and_task(scheduler_factory):
    d = _mapping_dag({"not": "a list"})
    result = await scheduler_factory(d).run_dag(d)
    assert result.states["double"] is TaskState.FAILED
    assert f"DAG {d.dag_id!r}, task 'double': cannot map over argument 'x': expected a list, got dict" in result.errors["double"]
    assert result.states["total"] is TaskState.UPSTREAM_FAILED


async def test_mapping_limit(scheduler_factory):
    d = _mapping_dag(list(range(5)), max_map_length=4)
    result = await scheduler_factory(d).run_dag(d)
    assert result.states["double"] is TaskState.FAILED
    assert "more than max_map_length=4" in result.errors["double"]


async def test_cross_product_mapping_and_literal_lists(scheduler_factory):
    @dag
    def cross():
        @task
        def combine(a, b):
            return f"{a}{b}"

        combine.expand(a=["x", "y"], b=[1, 2])

    d = cross()
    result = await scheduler_factory(d).run_dag(d)
    assert result.results["combine"] == ["x1", "x2", "y1", "y2"]


# -- retries, backoff, timeouts -------------------------------------------------------------------


async def test_retries_with_exponential_backoff_and_cap(scheduler_factory):
    attempts = []

    def flaky(context):
        attempts.append(context.try_number)
        if context.try_number < 5:
            raise RuntimeError(f"boom {context.try_number}")
        return "done"

    with DAG("retry") as d:
        Task("flaky", flaky, retries=5, retry_delay=timedelta(seconds=10), retry_exponential_backoff=True,
             max_retry_delay=timedelta(seconds=50))
    clock = FakeClock()
    start = clock.now()
    s = scheduler_factory(d, clock=clock)
    result = await s.run_dag(d)
    assert result.states["flaky"] is TaskState.SUCCESS
    assert attempts == [1, 2, 3, 4, 5]
    assert clock.sleeps == [10, 20, 40, 50]  # doubled each retry, capped at max_retry_delay
    assert clock.now() - start == timedelta(seconds=120)
    tries = s.store.tries("retry", result.run_id, "flaky")
    assert [t["state"] for t in tries] == ["failed"] * 4 + ["success"]
    assert "RuntimeError: boom 1" in tries[0]["error"]


async def test_retry_jitter_is_drawn_from_the_injected_random(scheduler_factory):
    def always_fails():
        raise RuntimeError("no")

    with DAG("jitter") as d:
        Task("t", always_fails, retries=3, retry_delay=8, retry_exponential_backoff=True, retry_jitter=0.5)
    clock = FakeClock()
    seed = 1234
    print("seed", seed)
    result = await scheduler_factory(d, clock=clock, rng=random.Random(seed)).run_dag(d)
    assert result.states["t"] is TaskState.FAILED
    expect_rng = random.Random(seed)
    expected = [n * (1 - 0.5 * expect_rng.random()) for n in (8, 16, 32)]
    assert clock.sleeps == pytest.approx(expected)
    for nominal, got in zip((8, 16, 32), clock.sleeps):
        assert nominal / 2 <= got <= nominal


async def test_fail_fast_skips_remaining_retries(scheduler_factory):
    attempts = []

    def fatal():
        attempts.append(1)
        raise FailFastError("bad credentials: retrying will not help")

    with DAG("fatal") as d:
        Task("t", fatal, retries=4)
    clock = FakeClock()
    result = await scheduler_factory(d, clock=clock).run_dag(d)
    assert result.states["t"] is TaskState.FAILED and attempts == [1] and clock.sleeps == []
    assert "bad credentials" in result.errors["t"]


async def test_execution_timeout_is_per_attempt(scheduler_factory):
    attempts = []

    async def slow_then_fast(context):
        attempts.append(context.try_number)
        if context.try_number == 1:
            await asyncio.sleep(10)
        return "fast"

    with DAG("timeout") as d:
        Task("t", slow_then_fast, execution_timeout=0.05, retries=1, retry_delay=0)
        Task("never", slow_then_fast, execution_timeout=timedelta(milliseconds=50))
    result = await scheduler_factory(d).run_dag(d)
    assert result.states["t"] is TaskState.SUCCESS
    assert result.states["never"] is TaskState.FAILED
    assert "exceeded execution_timeout of 0.05s" in result.errors["never"]


# -- pools and limits -----------------------------------------------------------------------------


async def test_pool_slots_limit_concurrency_and_priority_orders_the_queue(scheduler_factory):
    order = []
    running = 0
    peak = 0

    async def work(name):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        order.append(name)
        await asyncio.sleep(0.01)
        running -= 1

    with DAG("pools") as d:
        for name, weight in [("low", 1), ("high", 30), ("mid", 10), ("top", 50), ("other", 20)]:
            Task(name, work, args=(name,), pool="db", priority_weight=weight, weight_rule="absolute")
    s = scheduler_factory(d, pools={"db": 1})
    result = await s.run_dag(d)
    assert result.state is RunState.SUCCESS
    assert peak == 1
    assert order == ["top", "high", "other", "mid", "low"]


async def test_pool_slots_per_task_and_downstream_weight(scheduler_factory):
    order = []
    running_slots = 0
    peak = 0

    async def work(name, slots):
        nonlocal running_slots, peak
        running_slots += slots
        peak = max(peak, running_slots)
        order.append(name)
        await asyncio.sleep(0.01)
        running_slots -= slots

    with DAG("weights") as d:
        # default weight rule 'downstream': the task with the longest tail goes first
        a = Task("a", work, args=("a", 2), pool="p", pool_slots=2)
        b = Task("b", work, args=("b", 1), pool="p")
        c = Task("c", work, args=("c", 1), pool="p")
        tail = [Task(f"tail{i}", work, args=(f"tail{i}", 1), pool="p") for i in range(3)]
        b >> tail[0] >> tail[1] >> tail[2]
        a, c  # roots without downstream
    result = await scheduler_factory(d, pools=[Pool("p", 3)]).run_dag(d)
    assert result.state is RunState.SUCCESS
    assert peak <= 3
    assert order[0] == "b"  # priority 4 (itself + 3 downstream)


async def test_unknown_pool_or_oversized_task_is_refused(scheduler_factory):
    with DAG("no_pool") as d:
        Task("t", lambda: None, pool="missing")
    with pytest.raises(DagDefinitionError, match=r"DAG 'no_pool', task 't': unknown pool 'missing'"):
        scheduler_factory(d)
    with DAG("too_big") as d2:
        Task("t", lambda: None, pool="p", pool_slots=3)
    with pytest.raises(DagDefinitionError, match="needs 3 slots but pool 'p' has only 2"):
        scheduler_factory(d2, pools={"p": 2})


async def test_max_active_tasks_per_dag(scheduler_factory):
    running = 0
    peak = 0

    async def work():
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.005)
        running -= 1

    with DAG("mat", max_active_tasks=2) as d:
        for i in range(8):
            Task(f"t{i}", work)
    result = await scheduler_factory(d).run_dag(d)
    assert result.state is RunState.SUCCESS and peak == 2


async def test_max_active_runs_per_dag(scheduler_factory):
    active = 0
    peak = 0

    async def work():
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.01)
        active -= 1

    with DAG("mar", max_active_runs=2) as d:
        Task("t", work)
    s = scheduler_factory(d)
    from datetime import datetime, timezone

    ids = [await s.trigger("mar", logical_date=datetime(2024, 1, i, tzinfo=timezone.utc)) for i in range(1, 6)]
    await s.run_until_idle()
    assert peak == 2
    assert [s.store.get_run("mar", i).state for i in ids] == ["success"] * 5


# -- executors ------------------------------------------------------------------------------------


async def test_process_pool_executor_runs_tasks_in_other_processes(scheduler_factory):
    from tests.orchestration._process_tasks import async_cube, pid_and_square

    with DAG("procs") as d:
        a = Task("square", pid_and_square, args=(7,), executor="process")
        Task("cube", async_cube, args=(3,), executor="process")
        Task("local", lambda r: r[1] + 1, args=(a.output,))
    from engine.orchestration import ProcessPoolExecutor

    s = scheduler_factory(d, executors={"process": ProcessPoolExecutor(max_workers=1)})
    result = await s.run_dag(d)
    assert result.state is RunState.SUCCESS, result.errors
    pid, square = result.results["square"]
    assert square == 49 and pid != os.getpid()
    assert result.results["cube"] == 27
    assert result.results["local"] == 50


async def test_unknown_executor_is_refused(scheduler_factory):
    with DAG("no_exec") as d:
        Task("t", lambda: None, executor="gpu")
    with pytest.raises(DagDefinitionError, match="unknown executor 'gpu'"):
        scheduler_factory(d)


async def test_run_dag_while_serve_drives_the_loop(scheduler_factory):
    with DAG("served") as d:
        Task("a", lambda: 1) >> Task("b", lambda: 2)
    s = scheduler_factory(d)
    stop = asyncio.Event()
    server = asyncio.ensure_future(s.serve(stop))
    await asyncio.sleep(0.01)
    first = await s.run_dag("served")  # waits on the loop serve() drives
    second = await s.run_dag("served")
    stop.set()
    await server
    assert first.state is RunState.SUCCESS and second.state is RunState.SUCCESS
    assert first.run_id != second.run_id


async def test_wait_for_a_finished_run_reads_the_store(scheduler_factory):
    with DAG("finished") as d:
        Task("a", lambda: {"x": 1})
    s = scheduler_factory(d)
    done = await s.run_dag(d)
    again = await s.wait_for_run("finished", done.run_id)
    assert again.state is RunState.SUCCESS and again.results == {"a": {"x": 1}}


async def test_a_second_scheduler_on_the_same_database_is_refused(tmp_path, scheduler_factory):
    from engine.errors import OrchestrationError

    with DAG("locked") as d:
        Task("a", lambda: 1)
    db = tmp_path / "meta.db"
    first = scheduler_factory(d, store=db)
    await first.run_dag(d)  # its loop took the lock
    second = scheduler_factory(d, store=db)
    with pytest.raises(OrchestrationError, match=r"another scheduler \(pid \d+\) is running on"):
        await second.run_dag(d)
    run_id = await second.trigger("locked")  # queueing a run is still allowed
    await first.close()
    result = await scheduler_factory(d, store=db).wait_for_run("locked", run_id)
    assert result.state is RunState.SUCCESS


async def test_serve_picks_up_runs_queued_by_another_process(tmp_path, scheduler_factory):
    with DAG("polled") as d:
        Task("a", lambda: 1)
    db = tmp_path / "meta.db"
    server = scheduler_factory(d, store=db)
    stop = asyncio.Event()
    serving = asyncio.ensure_future(server.serve(stop, poll_interval=0.02))
    await asyncio.sleep(0.05)
    other = scheduler_factory(d, store=db)  # e.g. `engine dags trigger` in another process
    run_id = await other.trigger("polled")
    try:
        # serve() finds the run at its next poll (every 20 ms) and runs it; on a loaded machine that can
        # take far longer than a few seconds, so wait for the outcome itself.
        await wait_until(lambda: server.store.get_run("polled", run_id).state in ("success", "failed"))
    finally:
        stop.set()
        await serving
    assert server.store.get_run("polled", run_id).state == "success"


async def test_callbacks_are_called_and_cannot_break_the_run(scheduler_factory, caplog):
    seen = []

    def on_retry(context):
        seen.append(("retry", context.task_id, context.try_number, "flaky" in context.error))

    async def on_failure(context):
        seen.append(("failure", context.task_id, context.try_number))

    def on_success(context):
        seen.append(("success", context.task_id))
        raise RuntimeError("the alerting system is down")

    def on_dag_failure(result):
        seen.append(("dag failed", result.dag_id, result.states["bad"].value))

    def flaky():
        raise RuntimeError("flaky")

    with DAG("callbacks", on_failure_callback=on_dag_failure,
             default_args={"on_failure_callback": on_failure, "on_retry_callback": on_retry}) as d:
        Task("good", lambda: 1, on_success_callback=on_success)
        Task("bad", flaky, retries=1, retry_delay=0)
    s = scheduler_factory(d)
    result = await s.run_dag(d)
    assert result.states == {"good": TaskState.SUCCESS, "bad": TaskState.FAILED}
    # Callbacks run in the background (plain functions in the thread pool): wait until all four have
    # run and the broken one was logged, rather than for a fixed time a loaded machine may not meet.
    await wait_until(lambda: len(seen) >= 4 and "callback on_success raised" in caplog.text)
    assert sorted(seen) == sorted([("success", "good"), ("retry", "bad", 1, True), ("failure", "bad", 2),
                                   ("dag failed", "callbacks", "failed")])


async def test_callable_objects_without_weakref_support_run(scheduler_factory):
    class Slotted:
        __slots__ = ("n",)

        def __init__(self, n):
            self.n = n

        def __call__(self):
            return self.n

    with DAG("slotted") as d:
        Task("t", Slotted(7))
    result = await scheduler_factory(d).run_dag(d)
    assert result.results["t"] == 7


async def test_priority_order_holds_across_dags_sharing_a_pool(scheduler_factory):
    order = []

    async def work(name):
        order.append(name)
        await asyncio.sleep(0.005)

    with DAG("dag_a", max_active_tasks=1) as a:
        for name, w in [("a_low", 1), ("a_high", 40)]:
            Task(name, work, args=(name,), pool="shared", priority_weight=w, weight_rule="absolute")
    with DAG("dag_b") as b:
        for name, w in [("b_mid", 20), ("b_top", 50)]:
            Task(name, work, args=(name,), pool="shared", priority_weight=w, weight_rule="absolute")
    s = scheduler_factory(a, b, pools={"shared": 1})
    await s.trigger("dag_a")
    await s.trigger("dag_b")
    await s.run_until_idle()
    assert order == ["b_top", "a_high", "b_mid", "a_low"]


async def test_a_wide_dag_under_a_small_max_active_tasks(scheduler_factory):
    running = 0
    peak = 0

    async def work():
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0)
        running -= 1

    with DAG("wide", max_active_tasks=3) as d:
        root = Task("root")
        for i in range(2000):
            root >> Task(f"t{i}", work)
    result = await scheduler_factory(d).run_dag(d)
    assert result.state is RunState.SUCCESS and peak == 3


async def test_mapping_over_a_mapped_output_and_lenient_rules_get_none_for_failed_upstreams(scheduler_factory):
    @dag
    def chained_maps():
        @task
        def numbers():
            return [1, 2, 3]

        @task
        def square(x):
            if x == 2:
                raise FailFastError("two is not welcome")
            return x * x

        @task(trigger_rule="all_done")
        def describe(values):
            return values  # the failed instance's slot is None

        @task(trigger_rule="all_done")
        def plus_one(v):
            return None if v is None else v + 1

        squares = square.expand(x=numbers())
        describe(squares)
        plus_one.expand(v=squares)

    d = chained_maps()
    result = await scheduler_factory(d).run_dag(d)
    assert result.states["square[1]"] is TaskState.FAILED
    assert result.results["describe"] == [1, None, 9]
    assert result.results["plus_one"] == [2, None, 10]
    # Airflow's rule: the leaves (describe, plus_one) succeeded, so the run succeeded.
    assert result.state is RunState.SUCCESS


async def test_a_teardown_leaf_does_not_hide_a_failure(scheduler_factory):
    def broken():
        raise RuntimeError("load failed")

    with DAG("with_teardown") as d:
        load = Task("load", broken)
        load >> Task("cleanup", lambda: "cleaned", is_teardown=True)
    with DAG("plain_cleanup") as d2:
        load2 = Task("load", broken)
        load2 >> Task("cleanup", lambda: "cleaned", trigger_rule="all_done")
    s = scheduler_factory(d, d2)
    with_teardown = await s.run_dag(d)
    plain = await s.run_dag(d2)
    assert with_teardown.states["cleanup"] is TaskState.SUCCESS and with_teardown.state is RunState.FAILED
    assert plain.states["cleanup"] is TaskState.SUCCESS and plain.state is RunState.SUCCESS  # Airflow's trap
