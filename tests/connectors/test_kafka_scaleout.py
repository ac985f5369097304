"""Scale-out: two worker processes in one consumer group share a 4-partition topic; one is killed with
SIGKILL; the other takes over its partitions with their keyed state from the shared checkpoint
directory, and the final results equal a single-worker run.

The input is unbounded (scale-out workers run until stopped); a far-future record per partition at the
end makes every window of the real data fire. The Kafka sink is at-least-once, so the output topic may
hold repeated results: the last value per (key, window) counts, and repeats must be identical.
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import msgspec
import pytest

from connectors.kafka import KafkaSource
from connectors.memory import CollectSink
from engine.state.storage import LocalCheckpointStorage
from tests.connectors.kafka_helpers import consume_all, produce_json
from tests.connectors.kafka_scaleout_job import build

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 4
USERS = [f"u{i}" for i in range(8)]
FAR_FUTURE = 10**9


def events(seed: int, per_partition: int) -> list[dict]:
    rng = random.Random(seed)
    print(f"seed={seed}")
    out = []
    for i in range(per_partition * PARTITIONS):
        user = rng.choice(USERS)
        out.append({"user": user, "ts": 2 * i + rng.randrange(0, 500), "amount": rng.randrange(10)})
    return out


def partition_of(record: dict) -> int:
    return int(record["user"][1:]) % PARTITIONS  # co-partitioned by the key the job uses


def _start(bootstrap, source_topic, out_topic, ckpt, group, worker, log, slow) -> subprocess.Popen:
    with open(log, "wb") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.connectors.kafka_scaleout_job", bootstrap, source_topic, out_topic,
             str(ckpt), group, worker, str(slow)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )


def _held_partitions(ckpt: Path, worker: str) -> dict[int, int]:
    storage_dir = ckpt / f"worker-{worker}"
    if not storage_dir.exists():
        return {}
    checkpoint = LocalCheckpointStorage(storage_dir, read_only=True).latest()  # the worker is writing there
    if checkpoint is None:
        return {}
    return {int(p): o for positions in checkpoint.state["sources"].values() for p, o in positions.items()}


async def _until(predicate, timeout: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await asyncio.to_thread(predicate):
            return True
        await asyncio.sleep(0.25)
    return False


_PROTOCOL = ("assigned at", "resumes at", "restored from", "revoked", "went back", "starts empty", "ERROR", "WARNING")


def _diagnosis(windows: list, expected: dict, messages: list, tmp_path: Path) -> str:
    """What went wrong, for the failure message: per bad window, its partition and every value each
    worker wrote for it (the job tags its output with the worker); then each worker's protocol log
    (assignments, where partitions resumed, restores, revocations)."""
    written: dict = {}
    for m in messages:
        row = msgspec.json.decode(m.value)
        worker = dict(m.headers or ()).get("worker", b"?").decode()
        written.setdefault((row["key"], row["start"]), []).append((worker, row["count"], row["total"]))
    lines = [f"{k} partition {partition_of({'user': k[0]})}: expected {expected.get(k)}, written {written.get(k)}"
             for k in windows[:10]]
    for name in ("a", "b"):
        log = tmp_path / f"{name}.log"
        if log.exists():
            lines += [line[11:400] for line in log.read_text().splitlines() if any(p in line for p in _PROTOCOL)][:60]
    return "\n".join(lines)


def _last_values(rows: list[dict]) -> dict:
    return {(r["key"], r["start"]): (r["count"], r["total"]) for r in rows}


async def test_a_killed_workers_partitions_continue_on_the_other_worker(bootstrap_servers, topic_factory, tmp_path):
    seed = random.randrange(10**6)
    per_partition = 1_500
    source_topic, out_topic = await topic_factory(partitions=PARTITIONS), await topic_factory(partitions=1)
    records = events(seed, per_partition)
    # The workers first get half the input; the rest (and the far-future records that make every window
    # of the real data fire) only once worker a is dead. So a always dies with work left on its
    # partitions, however long worker b took to join (before, a could read everything alone first).
    first, rest = records[: len(records) // 2], records[len(records) // 2:]
    flush = [{"user": USERS[p], "ts": FAR_FUTURE, "amount": 0} for p in range(PARTITIONS)]
    await produce_json(bootstrap_servers, source_topic, first, partition_of=partition_of)
    first_sizes = collections.Counter(partition_of(r) for r in first)

    ckpt, group = tmp_path / "ckpt", f"g-{uuid.uuid4().hex}"
    workers = {}
    try:
        for name in ("a", "b"):
            workers[name] = await asyncio.to_thread(
                _start, bootstrap_servers, source_topic, out_topic, ckpt, group, name, tmp_path / f"{name}.log", 0.002)
        # Both workers own partitions (the group rebalanced) and have checkpointed them, worker a a fifth
        # of a partition at least (so it dies with keyed state and fired windows behind it).
        both = await _until(lambda: _held_partitions(ckpt, "a") and _held_partitions(ckpt, "b")
                            and not set(_held_partitions(ckpt, "a")) & set(_held_partitions(ckpt, "b"))
                            and max(_held_partitions(ckpt, "a").values()) >= per_partition // 5, 90)
        assert both, (tmp_path / "a.log").read_text()[-2000:] + (tmp_path / "b.log").read_text()[-2000:]
        taken_over = _held_partitions(ckpt, "a")
        assert all(offset <= first_sizes[p] for p, offset in taken_over.items()), taken_over
        os.kill(workers["a"].pid, signal.SIGKILL)
        await asyncio.to_thread(workers["a"].wait)
        # worker a still had work to do: the rest of its partitions comes now
        await produce_json(bootstrap_servers, source_topic, rest + flush, partition_of=partition_of)

        # The single-worker reference, in process (bounded: it reads the whole topic, then every window
        # fires; the windows of the far-future records are not compared).
        expected_sink = CollectSink()
        flow, _ = build(KafkaSource(source_topic, bootstrap_servers, bounded=True), expected_sink)
        await flow.run_async()
        expected = {k: v for k, v in _last_values(expected_sink.results).items() if k[1] < FAR_FUTURE - 10_000}
        assert expected

        seen: dict = {}

        def complete() -> bool:
            seen["messages"] = asyncio.run(consume_all(bootstrap_servers, out_topic, timeout=5))
            rows = [msgspec.json.decode(m.value) for m in seen["messages"]]
            seen["got"] = {k: v for k, v in _last_values(rows).items() if k[1] < FAR_FUTURE - 10_000}
            return seen["got"] == expected

        finished = await _until(complete, 150)
        assert workers["b"].poll() is None, (tmp_path / "b.log").read_text()[-3000:]
        got = seen.get("got", {})
        missing = sorted(set(expected) - set(got))
        wrong = sorted(k for k in expected if k in got and got[k] != expected[k])
        assert finished, (f"{len(missing)} windows missing (e.g. {missing[:5]}), {len(wrong)} differ "
                          f"(e.g. {[(k, got[k], expected[k]) for k in wrong[:5]]}), taken over {taken_over}\n"
                          + _diagnosis(missing + wrong, expected, seen.get("messages", []), tmp_path))
        # Worker b really took over a's partitions (it checkpoints them now).
        assert set(taken_over) <= set(_held_partitions(ckpt, "b"))
    finally:
        for process in workers.values():
            if process.poll() is None:
                process.kill()
                await asyncio.to_thread(process.wait)

    # Repeats in the at-least-once output topic are identical results.
    rows = [msgspec.json.decode(m.value) for m in await consume_all(bootstrap_servers, out_topic, timeout=10)]
    variants: dict = {}
    for row in rows:
        variants.setdefault((row["key"], row["start"]), set()).add((row["count"], row["total"]))
    assert all(len(v) == 1 for k, v in variants.items() if k[1] < FAR_FUTURE - 10_000)
