"""Sensors: poke intervals, backoff, timeout across attempts, soft-fail, and the built-ins."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from engine.orchestration import DAG, Dataset, FakeClock, RunState, Task, TaskState, dag, task
from engine.orchestration.exceptions import DagDefinitionError
from engine.orchestration.sensors import (
    DatasetSensor,
    ExternalDagSensor,
    FileSensor,
    KafkaSensor,
    PokeResult,
    PythonSensor,
)

UTC = timezone.utc


async def test_poke_interval_with_exponential_backoff_and_max_wait(scheduler_factory):
    pokes = []

    @dag
    def waiting():
        @task.sensor(poke_interval=10, exponential_backoff=True, max_wait=35, timeout=3600)
        def ready():
            pokes.append(1)
            return PokeResult(len(pokes) == 5, {"after": len(pokes)})

        @task
        def use(value):
            return value["after"]

        use(ready())

    d = waiting()
    clock = FakeClock()
    result = await scheduler_factory(d, clock=clock).run_dag(d)
    assert result.state is RunState.SUCCESS
    assert clock.sleeps == [10, 20, 35, 35]
    assert result.results["use"] == 5


async def test_timeout_counts_across_attempts_and_is_not_retried(scheduler_factory):
    pokes = []

    def poke(context):
        pokes.append((context.try_number, clock.now()))
        if len(pokes) == 3:
            raise ConnectionError("flaky endpoint")  # fails attempt 1; attempt 2 must not restart the clock
        return False

    with DAG("sensor_timeout") as d:
        PythonSensor("wait", poke, poke_interval=30, timeout=100, retries=3, retry_delay=50)
    clock = FakeClock()
    s = scheduler_factory(d, clock=clock)
    result = await s.run_dag(d)
    assert result.states["wait"] is TaskState.FAILED
    assert "condition not met within the timeout of 100s" in result.errors["wait"]
    start = pokes[0][1]
    assert [(n, (t - start).total_seconds()) for n, t in pokes] == [(1, 0), (1, 30), (1, 60), (2, 110)]
    assert [t["state"] for t in s.store.tries("sensor_timeout", result.run_id)] == ["failed", "failed"]


async def test_soft_fail_skips_the_sensor_and_its_downstream(scheduler_factory):
    with DAG("soft") as d:
        s_ = PythonSensor("wait", lambda: False, poke_interval=5, timeout=12, soft_fail=True)
        s_ >> Task("after", lambda: None)
    clock = FakeClock()
    result = await scheduler_factory(d, clock=clock).run_dag(d)
    assert result.states == {"wait": TaskState.SKIPPED, "after": TaskState.SKIPPED}
    assert clock.sleeps == [5, 5, 2]  # the last wait is cut to the remaining timeout


async def test_file_sensor(tmp_path, scheduler_factory):
    (tmp_path / "a.csv").write_text("x")
    (tmp_path / "b.csv").write_text("y")
    with DAG("files") as d:
        FileSensor("glob", tmp_path / "*.csv", poke_interval=1, timeout=5)
        FileSensor("missing", tmp_path / "nope.txt", poke_interval=1, timeout=3, soft_fail=True)
    result = await scheduler_factory(d, clock=FakeClock()).run_dag(d)
    assert result.results["glob"] == [str(tmp_path / "a.csv"), str(tmp_path / "b.csv")]
    assert result.states["missing"] is TaskState.SKIPPED


def _upstream_dag():
    def maybe_fail(context):
        if context.conf.get("fail"):
            raise RuntimeError("asked to fail")

    with DAG("upstream_dag") as up:
        Task("load", maybe_fail)
    return up


async def test_external_dag_sensor_same_date_and_delta(scheduler_factory):
    day = datetime(2024, 5, 2, tzinfo=UTC)
    with DAG("downstream_dag") as down:
        ExternalDagSensor("same_day", "upstream_dag", poke_interval=60, timeout=600)
        ExternalDagSensor("task_previous_day", "upstream_dag", "load", execution_delta=timedelta(days=1),
                          poke_interval=60, timeout=600)
    s = scheduler_factory(_upstream_dag(), down, clock=FakeClock(day))
    await s.run_dag("upstream_dag", logical_date=day)
    await s.run_dag("upstream_dag", logical_date=day - timedelta(days=1))
    result = await s.run_dag("downstream_dag", logical_date=day)
    assert result.state is RunState.SUCCESS, result.errors
    assert result.results["same_day"]["state"] == "success"


async def test_external_dag_sensor_fails_fast_on_a_failed_run_and_times_out_on_a_missing_one(scheduler_factory):
    day = datetime(2024, 5, 2, tzinfo=UTC)
    with DAG("watcher") as down:
        ExternalDagSensor("failed_run", "upstream_dag", poke_interval=60, timeout=600, retries=2)
        ExternalDagSensor("missing_run", "upstream_dag", execution_delta=timedelta(days=3), poke_interval=60,
                          timeout=120)
    clock = FakeClock(day)
    s = scheduler_factory(_upstream_dag(), down, clock=clock)
    await s.run_dag("upstream_dag", logical_date=day, conf={"fail": True})
    result = await s.run_dag("watcher", logical_date=day)
    assert result.states["failed_run"] is TaskState.FAILED
    assert "ended 'failed'" in result.errors["failed_run"]
    assert len(s.store.tries("watcher", result.run_id, "failed_run")) == 1  # fail fast: no retries
    assert result.states["missing_run"] is TaskState.FAILED
    assert "timeout of 120s" in result.errors["missing_run"]


async def test_dataset_sensor(scheduler_factory):
    day = datetime(2024, 5, 2, tzinfo=UTC)
    clock = FakeClock(day + timedelta(hours=1))
    with DAG("ds_sensor") as d:
        DatasetSensor("wait", Dataset("file://x"), poke_interval=10, timeout=100)
    s = scheduler_factory(d, clock=clock)
    await s.emit_dataset_event("file://x", {"rows": 3})
    result = await s.run_dag("ds_sensor", logical_date=day)
    assert result.state is RunState.SUCCESS
    assert [e["extra"] for e in result.results["wait"]] == [{"rows": 3}]


class FakeRecord:
    def __init__(self, offset, timestamp):
        self.offset = offset
        self.timestamp = timestamp


class FakeConsumer:
    """Just enough of AIOKafkaConsumer: a fetch reveals the high-water mark, as on a real broker."""

    def __init__(self, logs):
        self.logs = logs  # partition -> list of record timestamps
        self.positions = {}
        self.fetched = set()
        self.started = self.stopped = False

    async def start(self):
        self.started = True

    async def stop(self):
        self.stopped = True

    def partitions_for_topic(self, topic):
        return set(self.logs) if topic == "events" else None

    async def topics(self):
        return {"events"}

    def assign(self, tps):
        self.assigned = list(tps)

    def seek(self, tp, offset):
        self.positions[tp.partition] = offset

    async def getmany(self, *tps, timeout_ms=0, max_records=None):
        out = {}
        for tp in tps or self.assigned:
            self.fetched.add(tp.partition)
            pos = self.positions[tp.partition]
            log = self.logs[tp.partition]
            if pos < len(log):
                out[tp] = [FakeRecord(pos, log[pos])]
                self.positions[tp.partition] = pos + 1
        return out

    def highwater(self, tp):
        return len(self.logs[tp.partition]) if tp.partition in self.fetched else None


@pytest.mark.parametrize(
    ("kwargs", "logs", "done"),
    [
        ({"min_offset": 3}, {0: [1, 2, 3], 1: [1, 2, 3, 4]}, True),
        ({"min_offset": 3}, {0: [1, 2], 1: [1, 2, 3, 4]}, False),
        ({"min_offset": 3, "require": "any"}, {0: [1, 2], 1: [1, 2, 3, 4]}, True),
        ({"min_offset": 1, "partitions": [1]}, {0: [], 1: [5]}, True),
        ({"timestamp": 1000}, {0: [10, 1000], 1: [999, 2000]}, True),
        ({"timestamp": 1000}, {0: [10, 999], 1: [2000]}, False),
        ({"timestamp": datetime.fromtimestamp(1, UTC)}, {0: [1000]}, True),
        ({"timestamp": 1000}, {0: []}, False),
    ],
)
async def test_kafka_sensor_conditions_with_a_fake_consumer(kwargs, logs, done):
    consumers = []

    def factory():
        consumers.append(FakeConsumer(logs))
        return consumers[-1]

    with DAG("kafka_fake"):
        sensor = KafkaSensor("wait", "events", consumer_factory=factory, fetch_timeout=0.5, **kwargs)
    result = await sensor.poke(None)
    assert result.done is done, result.value
    assert consumers[0].started and consumers[0].stopped


def test_kafka_sensor_needs_exactly_one_condition():
    with DAG("kafka_bad"):
        Task("placeholder", lambda: None)
        with pytest.raises(DagDefinitionError, match="exactly one of min_offset or timestamp"):
            KafkaSensor("wait", "events")
        with pytest.raises(DagDefinitionError, match="timezone-aware"):
            KafkaSensor("wait2", "events", timestamp=datetime(2024, 1, 1))


@pytest.mark.kafka
async def test_kafka_sensor_against_the_test_broker(bootstrap_servers, topic_factory, scheduler_factory):
    from aiokafka import AIOKafkaProducer

    topic = await topic_factory(partitions=2)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers)
    await producer.start()
    try:
        for i in range(3):
            await producer.send_and_wait(topic, b"x", partition=0, timestamp_ms=1_000 + i)
        await producer.send_and_wait(topic, b"y", partition=1, timestamp_ms=5_000)
    finally:
        await producer.stop()
    with DAG("kafka_real") as d:
        KafkaSensor("offsets_ready", topic, bootstrap_servers=bootstrap_servers, min_offset=1, poke_interval=0.1, timeout=30)
        KafkaSensor("p0_has_3", topic, bootstrap_servers=bootstrap_servers, min_offset=3, partitions=[0],
                    poke_interval=0.1, timeout=30)
        KafkaSensor("not_yet", topic, bootstrap_servers=bootstrap_servers, min_offset=2, poke_interval=0.1,
                    timeout=0.5, soft_fail=True)  # partition 1 holds one record only
        KafkaSensor("time_reached", topic, bootstrap_servers=bootstrap_servers, timestamp=1_002, poke_interval=0.1,
                    timeout=30)
        KafkaSensor("time_not_reached", topic, bootstrap_servers=bootstrap_servers, timestamp=6_000,
                    poke_interval=0.1, timeout=0.5, soft_fail=True)
    result = await scheduler_factory(d).run_dag(d)
    assert result.states == {
        "offsets_ready": TaskState.SUCCESS,
        "p0_has_3": TaskState.SUCCESS,
        "not_yet": TaskState.SKIPPED,
        "time_reached": TaskState.SUCCESS,
        "time_not_reached": TaskState.SKIPPED,
    }, result.errors
    assert result.results["p0_has_3"]["highwater"] == {"0": 3}
    assert result.results["time_reached"]["last_timestamp"] == {"0": 1_002, "1": 5_000}


async def test_reschedule_mode_frees_the_pool_slot_between_pokes(scheduler_factory):
    flag = {"set": False}
    pokes = []

    def poke():
        pokes.append(flag["set"])
        return flag["set"]

    def setter():
        flag["set"] = True

    with DAG("reschedule") as d:
        # One slot: a poke-mode sensor would hold it forever and `setter` could never run.
        PythonSensor("wait", poke, mode="reschedule", poke_interval=10, exponential_backoff=True, timeout=600,
                     pool="single", priority_weight=100)
        Task("setter", setter, pool="single")
    clock = FakeClock()
    s = scheduler_factory(d, clock=clock, pools={"single": 1})
    result = await s.run_dag(d)
    assert result.states == {"wait": TaskState.SUCCESS, "setter": TaskState.SUCCESS}
    assert pokes == [False, True] and clock.sleeps == [10]
    assert [t["try_number"] for t in s.store.tries("reschedule", result.run_id, "wait")] == [1]


async def test_reschedule_mode_timeout_counts_from_the_first_poke(scheduler_factory):
    with DAG("reschedule_timeout") as d:
        PythonSensor("wait", lambda: False, mode="reschedule", poke_interval=30, timeout=100, exponential_backoff=True)
    clock = FakeClock()
    result = await scheduler_factory(d, clock=clock).run_dag(d)
    assert result.states["wait"] is TaskState.FAILED and "timeout of 100s" in result.errors["wait"]
    assert clock.sleeps == [30, 60, 10]


async def test_empty_task_without_a_callable_is_a_no_op(scheduler_factory):
    with DAG("markers") as d:
        Task("start") >> Task("work", lambda: 1) >> Task("end")
    result = await scheduler_factory(d).run_dag(d)
    assert result.states == {"start": TaskState.SUCCESS, "work": TaskState.SUCCESS, "end": TaskState.SUCCESS}
    assert result.results["end"] is None
