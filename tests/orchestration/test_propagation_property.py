"""Differential test: the scheduler's incremental, early-deciding propagation vs a plain reference.

For random DAGs (random edges, trigger rules and task outcomes), the reference walks the tasks in
topological order and applies each task's rule once every upstream is final. The scheduler decides
incrementally, sometimes before every upstream has finished; the final states must be the same.
"""

from __future__ import annotations

import asyncio

from hypothesis import given, settings, strategies as st

from engine.orchestration import DAG, FailFastError, RunState, Scheduler, SkipTaskError, Task, TaskState, TriggerRule
from engine.orchestration.trigger_rules import Decision, UpstreamCounts, evaluate

OUTCOMES = ("ok", "fail", "skip")


def _behave(outcome):
    async def run():
        await asyncio.sleep(0)
        if outcome == "fail":
            raise FailFastError("planned")
        if outcome == "skip":
            raise SkipTaskError("planned")
        return outcome

    return run


@st.composite
def random_dags(draw):
    n = draw(st.integers(2, 8))
    tasks = []
    for i in range(n):
        ups = sorted(draw(st.sets(st.integers(0, i - 1), max_size=min(i, 3)))) if i else []
        rule = draw(st.sampled_from(list(TriggerRule)))
        outcome = draw(st.sampled_from(OUTCOMES))
        tasks.append((ups, rule, outcome))
    return tasks


def reference(tasks):
    states = []
    for ups, rule, outcome in tasks:
        c = UpstreamCounts(total_tasks=len(ups), waiting=0)
        for u in ups:
            attr = {TaskState.SUCCESS: "success", TaskState.FAILED: "failed", TaskState.SKIPPED: "skipped",
                    TaskState.UPSTREAM_FAILED: "upstream_failed"}[states[u]]
            setattr(c, attr, getattr(c, attr) + 1)
        decision = evaluate(rule, c)
        assert decision is not Decision.WAIT
        if decision is Decision.RUN:
            states.append({"ok": TaskState.SUCCESS, "fail": TaskState.FAILED, "skip": TaskState.SKIPPED}[outcome])
        elif decision is Decision.SKIP:
            states.append(TaskState.SKIPPED)
        else:
            states.append(TaskState.UPSTREAM_FAILED)
    return states


@settings(max_examples=120, deadline=None)
@given(random_dags())
def test_incremental_propagation_matches_the_reference(tasks):
    with DAG("random") as d:
        objs = [Task(f"t{i}", _behave(outcome), trigger_rule=rule) for i, (_, rule, outcome) in enumerate(tasks)]
        for i, (ups, _, _) in enumerate(tasks):
            for u in ups:
                objs[u] >> objs[i]

    async def go():
        s = Scheduler([d], store=":memory:")
        try:
            return await s.run_dag(d)
        finally:
            await s.close()

    result = asyncio.run(go())
    want = reference(tasks)
    assert [result.states[f"t{i}"] for i in range(len(tasks))] == want, tasks
    leaves = [i for i in range(len(tasks)) if not any(i in ups for ups, _, _ in tasks)]
    failed = any(want[i] in (TaskState.FAILED, TaskState.UPSTREAM_FAILED) for i in leaves)
    assert result.state is (RunState.FAILED if failed else RunState.SUCCESS)
