"""Trigger rules: a truth table for every rule, checked on the pure function and end to end.

Upstream mixes use S = success, F = failed, K = skipped, U = upstream_failed. Expected outcomes:
R = the task runs, K = skipped, U = upstream_failed (Airflow's semantics).
"""

from __future__ import annotations

import asyncio

import pytest

from engine.orchestration import DAG, FailFastError, RunState, SkipTaskError, Task, TaskState, TriggerRule, task, dag
from engine.orchestration.trigger_rules import Decision, UpstreamCounts, evaluate

MIXES = ["SS", "SF", "SK", "SU", "FF", "FU", "KK", "FK", "UU", "SFK"]
TABLE = """
rule                          SS SF SK SU FF FU KK FK UU SFK
all_success                   R  U  K  U  U  U  K  U  U  U
all_failed                    K  K  K  K  R  R  K  K  R  K
all_done                      R  R  R  R  R  R  R  R  R  R
all_done_min_one_success      R  R  R  R  U  U  K  U  U  R
all_skipped                   K  K  K  K  K  K  R  K  K  K
one_success                   R  R  R  R  U  U  K  U  U  R
one_failed                    K  R  K  R  R  R  K  R  R  R
one_done                      R  R  R  R  R  R  K  R  K  R
none_failed                   R  U  R  U  U  U  R  U  U  U
none_failed_min_one_success   R  U  R  U  U  U  K  U  U  U
none_skipped                  R  R  K  R  R  R  K  K  R  K
always                        R  R  R  R  R  R  R  R  R  R
"""


def _table() -> list[tuple[str, str, str]]:
    lines = [line.split() for line in TABLE.strip().splitlines()]
    header, rows = lines[0][1:], lines[1:]
    assert header == MIXES
    assert sorted(r[0] for r in rows) == sorted(r.value for r in TriggerRule), "every rule has a row"
    return [(row[0], mix, row[1 + i]) for row in rows for i, mix in enumerate(MIXES)]


CASES = _table()
_DECISION = {"R": Decision.RUN, "K": Decision.SKIP, "U": Decision.UPSTREAM_FAILED}
_FINAL = {"R": TaskState.SUCCESS, "K": TaskState.SKIPPED, "U": TaskState.UPSTREAM_FAILED}


def _counts(mix: str, finished: int | None = None) -> UpstreamCounts:
    c = UpstreamCounts(total_tasks=len(mix), waiting=len(mix))
    for letter in mix[: len(mix) if finished is None else finished]:
        attr = {"S": "success", "F": "failed", "K": "skipped", "U": "upstream_failed"}[letter]
        setattr(c, attr, getattr(c, attr) + 1)
        c.waiting -= 1
    return c


@pytest.mark.parametrize(("rule", "mix", "expected"), CASES, ids=[f"{r}-{m}" for r, m, _ in CASES])
def test_truth_table_pure(rule, mix, expected):
    assert evaluate(TriggerRule(rule), _counts(mix)) is _DECISION[expected]


@pytest.mark.parametrize("rule", [r.value for r in TriggerRule])
def test_no_upstream_always_runs(rule):
    assert evaluate(TriggerRule(rule), UpstreamCounts()) is Decision.RUN


def test_early_decisions_do_not_wait_for_every_upstream():
    partial = _counts("SS", finished=1)  # one succeeded, one still running
    assert evaluate(TriggerRule.ONE_SUCCESS, partial) is Decision.RUN
    assert evaluate(TriggerRule.ALL_SUCCESS, partial) is Decision.WAIT
    assert evaluate(TriggerRule.ONE_DONE, partial) is Decision.RUN
    failed_first = _counts("FS", finished=1)
    assert evaluate(TriggerRule.ONE_FAILED, failed_first) is Decision.RUN
    assert evaluate(TriggerRule.ALL_SUCCESS, failed_first) is Decision.UPSTREAM_FAILED
    assert evaluate(TriggerRule.NONE_FAILED, failed_first) is Decision.UPSTREAM_FAILED
    assert evaluate(TriggerRule.ALL_DONE, failed_first) is Decision.WAIT
    assert evaluate(TriggerRule.ALWAYS, _counts("SS", finished=0)) is Decision.RUN


@pytest.mark.parametrize("rule", [r.value for r in TriggerRule])
@pytest.mark.parametrize("mix", MIXES)
def test_early_decisions_never_contradict_the_final_one(rule, mix):
    """Whatever order the upstreams finish in, an early decision equals the all-done decision."""
    import itertools

    final = evaluate(TriggerRule(rule), _counts(mix))
    for order in set(itertools.permutations(mix)):
        for finished in range(len(mix)):
            early = evaluate(TriggerRule(rule), _counts("".join(order), finished=finished))
            assert early in (Decision.WAIT, final), (rule, order, finished, early, final)


async def test_all_success_with_a_skip_then_a_failure_is_upstream_failed(scheduler_factory):
    gate = asyncio.Event()

    async def skip_first():
        gate.set()
        raise SkipTaskError("first")

    async def fail_later():
        await asyncio.wait_for(gate.wait(), 60)  # generous: only stops a broken scheduler from hanging
        await asyncio.sleep(0.01)
        raise FailFastError("later")

    with DAG("skip_then_fail") as d:
        [Task("skipper", skip_first), Task("failer", fail_later)] >> Task("target", _ok)
    result = await scheduler_factory(d).run_dag(d)
    assert result.states["target"] is TaskState.UPSTREAM_FAILED


def _ok():
    return "ok"


def _fail():
    raise FailFastError("planned failure")


def _skip():
    raise SkipTaskError("planned skip")


def _build(rule: str, mix: str) -> DAG:
    with DAG(f"tt_{rule}_{mix}") as d:
        target = Task("target", _ok, trigger_rule=rule)
        for i, letter in enumerate(mix):
            if letter == "S":
                up = Task(f"u{i}", _ok)
            elif letter == "F":
                up = Task(f"u{i}", _fail)
            elif letter == "K":
                up = Task(f"u{i}", _skip)
            else:  # upstream_failed: downstream (default rule) of a failing task
                up = Task(f"u{i}", _ok)
                Task(f"f{i}", _fail) >> up
            up >> target
    return d


@pytest.mark.parametrize(("rule", "mix", "expected"), CASES, ids=[f"{r}-{m}" for r, m, _ in CASES])
async def test_truth_table_end_to_end(scheduler_factory, rule, mix, expected):
    d = _build(rule, mix)
    result = await scheduler_factory(d).run_dag(d)
    for i, letter in enumerate(mix):
        want = {"S": TaskState.SUCCESS, "F": TaskState.FAILED, "K": TaskState.SKIPPED, "U": TaskState.UPSTREAM_FAILED}[letter]
        assert result.states[f"u{i}"] is want
    assert result.states["target"] is _FINAL[expected]


async def test_one_success_runs_while_another_upstream_still_runs(scheduler_factory):
    released = asyncio.Event()

    async def slow():
        await asyncio.wait_for(released.wait(), 60)  # `fast` runs in a thread: slow on a loaded machine
        return "slow"

    async def early():
        released.set()  # only possible if this ran before `slow` finished
        return "early"

    with DAG("early") as d:
        [Task("fast", _ok), Task("slow", slow)] >> Task("joiner", early, trigger_rule="one_success")
    result = await scheduler_factory(d).run_dag(d)
    assert result.states == {"fast": TaskState.SUCCESS, "slow": TaskState.SUCCESS, "joiner": TaskState.SUCCESS}


async def test_branch_skips_the_other_path_and_the_join_runs(scheduler_factory):
    ran = []

    @dag
    def branching():
        @task.branch
        def choose():
            return "left"

        @task
        def left():
            ran.append("left")

        @task
        def right():
            ran.append("right")

        @task
        def after_right():
            ran.append("after_right")

        @task(trigger_rule="none_failed_min_one_success")
        def join():
            ran.append("join")

        @task
        def plain_join():
            ran.append("plain_join")

        c = choose()
        l_, r_ = left(), right()
        c >> [l_, r_]
        r_ >> after_right() >> join()
        l_ >> join.override(task_id="join")()  # a second join task, same rule
        [l_, r_] >> plain_join()

    d = branching()
    result = await scheduler_factory(d).run_dag(d)
    assert result.states["choose"] is TaskState.SUCCESS
    assert result.states["right"] is TaskState.SKIPPED
    assert result.states["after_right"] is TaskState.SKIPPED  # skip propagates with all_success
    assert result.states["join"] is TaskState.SKIPPED  # its only upstream was skipped
    assert result.states["join__1"] is TaskState.SUCCESS
    assert result.states["plain_join"] is TaskState.SKIPPED  # all_success with a skipped upstream
    assert result.state is RunState.SUCCESS
    assert sorted(ran) == ["join", "left"]


async def test_branch_join_directly_downstream_is_not_skipped(scheduler_factory):
    with DAG("direct_join") as d:
        b = Task("branch", lambda: ["a"], is_branch=True)
        a = Task("a", _ok)
        c = Task("c", _ok)
        j = Task("join", _ok, trigger_rule="none_failed_min_one_success")
        b >> [a, c]
        [a, c] >> j
        b >> j  # directly downstream too, but reachable from the followed 'a'
    result = await scheduler_factory(d).run_dag(d)
    assert result.states == {"branch": TaskState.SUCCESS, "a": TaskState.SUCCESS, "c": TaskState.SKIPPED,
                             "join": TaskState.SUCCESS}


async def test_branch_to_unknown_id_fails_the_branch(scheduler_factory):
    with DAG("bad_branch") as d:
        b = Task("branch", lambda: "nowhere", is_branch=True)
        b >> Task("a", _ok)
    result = await scheduler_factory(d).run_dag(d)
    assert result.states["branch"] is TaskState.FAILED
    assert "not a direct downstream task" in result.errors["branch"]
    assert result.states["a"] is TaskState.UPSTREAM_FAILED
    assert result.state is RunState.FAILED


async def test_branch_into_a_task_group(scheduler_factory):
    from engine.orchestration import TaskGroup

    with DAG("branch_group") as d:
        b = Task("branch", lambda: "grp", is_branch=True)
        with TaskGroup("grp") as g:
            Task("x", _ok) >> Task("y", _ok)
        other = Task("other", _ok)
        b >> [g, other]
    result = await scheduler_factory(d).run_dag(d)
    assert result.states == {"branch": TaskState.SUCCESS, "grp.x": TaskState.SUCCESS, "grp.y": TaskState.SUCCESS,
                             "other": TaskState.SKIPPED}
