"""Scheduling overhead of the orchestration layer: 10,000 no-op tasks per DAG run.

Workloads: a fan-out/fan-in DAG (one root, 9,998 parallel tasks, one join) and a 10,000-task chain.
"engine" runs one DAG run through the `Scheduler` (trigger rules, pools, priorities, state persisted
to SQLite with group commits); the floor is ``asyncio.gather`` of the same 10,000 no-op coroutine
functions in the same process, plus, for the chain, awaiting them one after the other. Metadata
modes: an in-memory SQLite database (the default here), and a SQLite file (WAL, synchronous=NORMAL)
in its own group; and the fan-out under the default ``max_active_tasks=16`` (16 tasks in flight, so
one scheduling step per task, like the chain). Ratios are baseline time / engine time (< 1: the engine is slower than the floor);
tasks per second = 10,000 / engine time.
"""

from __future__ import annotations

import asyncio
import os
import tempfile


from benchmarks._harness import Case, pytest_cases, run_case_with_benchmark
from engine.orchestration import DAG, Scheduler, Task

N = 10_000


async def noop() -> None:
    return None


def fan_dag(max_active_tasks: int = N) -> DAG:
    with DAG("bench_fan", max_active_tasks=max_active_tasks, max_active_runs=1) as d:
        root = Task("root", noop)
        join = Task("join", noop)
        for i in range(N - 2):
            t = Task(f"t{i}", noop)
            root >> t
            t >> join
    return d


def chain_dag() -> DAG:
    with DAG("bench_chain") as d:
        prev = Task("t0", noop)
        for i in range(1, N):
            t = Task(f"t{i}", noop)
            prev >> t
            prev = t
    return d


def run_engine(args) -> int:
    dag, store = args

    async def go() -> int:
        s = Scheduler([dag], store=store, default_pool_slots=N)
        try:
            result = await s.run_dag(dag)
        finally:
            await s.close()
        assert result.state.value == "success"
        return len(result.states)

    return asyncio.run(go())


def setup_engine(builder, file_store: bool = False):
    def setup():
        dag = builder()
        dag.priority_weights()  # definition-time work, as when a DAG file is loaded
        if file_store:
            path = os.path.join(tempfile.mkdtemp(prefix="bench-orch-"), "meta.db")
            return dag, path
        return dag, ":memory:"

    return setup


def setup_callables():
    return [noop] * N


def run_gather(fns) -> int:
    async def go() -> int:
        await asyncio.gather(*(f() for f in fns))
        return len(fns)

    return asyncio.run(go())


def run_sequential(fns) -> int:
    async def go() -> int:
        for f in fns:
            await f()
        return len(fns)

    return asyncio.run(go())


def check_same_count(engine_result, baseline_result) -> None:
    assert engine_result == baseline_result == N, (engine_result, baseline_result)


FAN = "fan-out/fan-in, 10k no-op tasks (memory)"
CHAIN = "chain, 10k no-op tasks (memory)"
FAN_FILE = "fan-out/fan-in, 10k no-op tasks (SQLite file)"
FAN_LIMITED = "fan-out/fan-in, 10k tasks, max_active_tasks=16"
CASES = [
    Case(FAN, "engine", setup_engine(fan_dag), run_engine, repeat=3),
    Case(FAN, "asyncio.gather", setup_callables, run_gather, target="the floor", repeat=3, check=check_same_count),
    Case(CHAIN, "engine", setup_engine(chain_dag), run_engine, repeat=3),
    Case(CHAIN, "asyncio.gather", setup_callables, run_gather, target="the floor", repeat=3, check=check_same_count),
    Case(CHAIN, "sequential await", setup_callables, run_sequential, target="the floor", repeat=3, check=check_same_count),
    Case(FAN_FILE, "engine", setup_engine(fan_dag, file_store=True), run_engine, repeat=3),
    Case(FAN_FILE, "asyncio.gather", setup_callables, run_gather, target="the floor", repeat=3, check=check_same_count),
    Case(FAN_LIMITED, "engine", setup_engine(lambda: fan_dag(16)), run_engine, repeat=3),
    Case(FAN_LIMITED, "asyncio.gather", setup_callables, run_gather, target="the floor", repeat=3, check=check_same_count),
]


@pytest_cases(CASES)
def test_orchestration(benchmark, case):
    run_case_with_benchmark(benchmark, case)
