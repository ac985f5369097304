"""DAG definition: decorators and objects, dependencies, groups, mapping, and load-time validation."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from engine.errors import OrchestrationError
from engine.orchestration import (
    DAG,
    CronSyntaxError,
    DagDefinitionError,
    MappedTask,
    Task,
    TaskGroup,
    TaskState,
    TriggerRule,
    dag,
    task,
    task_group,
)


def noop():
    return None


def test_objects_and_shift_operators_build_the_graph():
    with DAG("objects") as d:
        a = Task("a", noop)
        b = Task("b", noop)
        c = Task("c", noop)
        e = Task("e", noop)
        a >> [b, c] >> e
    assert d.get_task("a").downstream_task_ids == {"b", "c"}
    assert d.get_task("e").upstream_task_ids == {"b", "c"}
    assert d.topological_order()[0] == "a" and d.topological_order()[-1] == "e"
    assert [t.task_id for t in d.roots] == ["a"] and [t.task_id for t in d.leaves] == ["e"]


def test_list_on_the_left_and_reverse_shift():
    with DAG("lists") as d:
        a, b, c = Task("a", noop), Task("b", noop), Task("c", noop)
        [a, b] >> c
        x = Task("x", noop)
        x << c
    assert d.get_task("c").upstream_task_ids == {"a", "b"}
    assert d.get_task("x").upstream_task_ids == {"c"}


def test_decorators_pass_outputs_and_number_repeated_calls():
    @dag(schedule=None, default_args={"retries": 2})
    def pipeline():
        @task
        def extract():
            return 1

        @task(retries=5)
        async def add(x, y=0):
            return x + y

        first = add(extract())
        add(first, y=2)

    d = pipeline()
    assert d.dag_id == "pipeline"
    assert d.task_ids == ["extract", "add", "add__1"]
    assert d.get_task("add__1").upstream_task_ids == {"add"}
    assert d.get_task("extract").retries == 2  # from default_args
    assert d.get_task("add").retries == 5  # explicit beats default_args


def test_task_group_prefixes_ids_and_connects_roots_and_leaves():
    with DAG("groups") as d:
        start = Task("start", noop)
        with TaskGroup("extract") as g:
            a = Task("a", noop)
            with TaskGroup("inner"):
                b = Task("b", noop)
            a >> b
        end = Task("end", noop)
        start >> g >> end
    assert d.task_ids == ["start", "extract.a", "extract.inner.b", "end"]
    assert d.get_task("extract.a").upstream_task_ids == {"start"}
    assert d.get_task("end").upstream_task_ids == {"extract.inner.b"}


def test_task_group_decorator():
    @dag
    def grouped():
        @task
        def one():
            return 1

        @task_group
        def section():
            one()
            one()

        section()
        section()

    d = grouped()
    assert d.task_ids == ["section.one", "section.one__1", "section__1.one", "section__1.one__1"]


def test_dynamic_mapping_definitions():
    @dag
    def mapped():
        @task
        def items():
            return [1, 2]

        @task
        def scale(x, factor):
            return x * factor

        scale.partial(factor=3).expand(x=items())

    d = mapped()
    t = d.get_task("scale")
    assert isinstance(t, MappedTask) and t.upstream_task_ids == {"items"}
    with DAG("explicit_map") as d2:
        up = Task("up", noop)
        Task.partial("m", lambda x, k: x, kwargs={"k": 1}).expand(x=up.output)
    assert d2.get_task("m").upstream_task_ids == {"up"}


# -- load-time validation -----------------------------------------------------------------------


def test_cycle_is_refused_naming_the_dag_and_tasks():
    with pytest.raises(DagDefinitionError, match=r"DAG 'cyclic' has a cycle: a >> b >> c >> a"):
        with DAG("cyclic"):
            a, b, c = Task("a", noop), Task("b", noop), Task("c", noop)
            a >> b >> c >> a
    with pytest.raises(DagDefinitionError, match=r"DAG 'cyclic2' has a cycle: b >> c >> b"):
        with DAG("cyclic2"):
            a, b, c = Task("a", noop), Task("b", noop), Task("c", noop)
            a >> b >> c >> b


def test_unknown_upstream_id_is_refused():
    with pytest.raises(DagDefinitionError, match=r"DAG 'd', task 'b': unknown upstream task id 'nope'"):
        with DAG("d"):
            Task("a", noop)
            Task("b", noop, upstream=["nope"])


def test_upstream_by_id_is_resolved():
    with DAG("by_id") as d:
        Task("b", noop, upstream=["a"])  # defined before its upstream: resolved at validation
        Task("a", noop)
    assert d.get_task("a").downstream_task_ids == {"b"}
    assert d.topological_order() == ["a", "b"]


def test_duplicate_task_id_is_refused():
    with pytest.raises(DagDefinitionError, match=r"DAG 'dup': duplicate task id 'a'"):
        with DAG("dup"):
            Task("a", noop)
            Task("a", noop)


def test_mapping_over_a_literal_non_list_is_refused():
    with pytest.raises(DagDefinitionError, match=r"DAG 'bad_map', task 'm': cannot map over argument 'x'.*dict"):
        with DAG("bad_map"):
            MappedTask("m", noop, expand={"x": {"a": 1}})


def test_invalid_cron_is_refused_naming_the_dag():
    with pytest.raises(CronSyntaxError, match=r"DAG 'bad_cron'.*minute value 61 is out of range"):
        DAG("bad_cron", schedule="61 * * * *")
    with pytest.raises(CronSyntaxError, match=r"expected 5 fields"):
        DAG("bad_cron2", schedule="* * *")
    with pytest.raises(DagDefinitionError, match=r"invalid schedule"):
        DAG("bad_schedule", schedule=42)


def test_other_bad_options_name_the_task():
    with pytest.raises(DagDefinitionError, match=r"DAG 'o', task 't': unknown trigger_rule 'sometimes'"):
        with DAG("o"):
            Task("t", noop, trigger_rule="sometimes")
    with pytest.raises(DagDefinitionError, match=r"unknown default_args \['retires'\]"):
        DAG("o2", default_args={"retires": 1})
    with pytest.raises(DagDefinitionError, match="outside a DAG"):
        Task("lonely", noop)
    with pytest.raises(DagDefinitionError, match="outside a DAG"):
        task(noop)()
    with pytest.raises(DagDefinitionError, match="no tasks"):
        with DAG("empty"):
            pass
    with pytest.raises(DagDefinitionError, match="unknown timezone"):
        DAG("tz", timezone="Mars/Olympus")


def test_errors_derive_from_orchestration_error():
    assert issubclass(DagDefinitionError, OrchestrationError)
    assert issubclass(CronSyntaxError, DagDefinitionError)


def test_priority_weights_follow_the_weight_rules():
    with DAG("prio") as d:
        a = Task("a", noop, priority_weight=2)
        b = Task("b", noop)
        c = Task("c", noop, priority_weight=10)
        e = Task("e", noop, weight_rule="upstream")
        f = Task("f", noop, weight_rule="absolute", priority_weight=7)
        a >> [b, c] >> e
        a >> f
    w = d.priority_weights()
    assert w == {"a": 2 + 1 + 10 + 1 + 7, "b": 1 + 1, "c": 10 + 1, "e": 1 + 2 + 1 + 10, "f": 7}


def test_chain_of_10000_tasks_validates_quickly():
    with DAG("long") as d:
        prev = Task("t0", noop)
        for i in range(1, 10_000):
            t = Task(f"t{i}", noop)
            prev >> t
            prev = t
    w = d.priority_weights()
    assert w["t0"] == 10_000 and w["t9999"] == 1


def test_default_args_and_timezone_and_dates():
    d = DAG("dates", start_date=datetime(2024, 1, 1), timezone="Europe/Berlin", schedule=timedelta(hours=6),
            default_args={"trigger_rule": "all_done"})
    assert d.start_date.tzinfo is not None and d.start_date.utcoffset() == timedelta(hours=1)
    with d:
        t = Task("t", noop)
    assert t.trigger_rule is TriggerRule.ALL_DONE
    assert TaskState.SUCCESS == "success"


def test_a_time_schedule_needs_a_start_date():
    with pytest.raises(DagDefinitionError, match=r"DAG 'no_start': schedule '@daily' needs a start_date"):
        DAG("no_start", schedule="@daily")
    with pytest.raises(DagDefinitionError, match="needs a start_date"):
        DAG("no_start2", schedule=timedelta(hours=1))
    DAG("manual", schedule=None)  # fine: triggered only
