"""Every example job runs through ``engine run`` (a subprocess) and prints results and a summary."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Kafka examples need a broker: tests/connectors/test_kafka_example.py runs them against the test broker.
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.py") if not p.name.startswith("kafka_"))
SUMMARY = re.compile(r"engine run: (\S+) \(flow '([^']+)'\): ([\d,]+) records in, ([\d,]+) records out, [\d.]+s, [\d,]+ records/s")


def engine_run(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "engine.cli", "run", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_there_are_the_four_example_jobs():
    assert {p.name for p in EXAMPLES} >= {"clicks_per_user.py", "transaction_totals.py", "orders_shipments.py", "user_sessions.py"}


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_job_runs_and_prints_a_summary(script):
    done = engine_run(str(script.relative_to(ROOT)))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    match = SUMMARY.fullmatch(lines[-1])
    assert match, lines[-1]
    assert match.group(1) == script.name
    assert int(match.group(3).replace(",", "")) > 0 and int(match.group(4).replace(",", "")) > 0
    assert len(lines) > 1, "the job prints its results"


def test_main_job_output_is_the_same_for_every_batch_size():
    outputs = []
    for size in ("1", "64", "100000"):
        done = engine_run("examples/clicks_per_user.py", "--batch-size", size)
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout.strip().splitlines()[:-1])
    assert outputs[0][0].startswith("{'key': 'user-")
    assert outputs[0] == outputs[1] == outputs[2]


def test_engine_run_reports_a_failing_job(tmp_path):
    job = tmp_path / "bad_job.py"
    job.write_text(
        "from connectors.memory import CollectionSource, CollectSink\n"
        "from engine import Dataflow\n"
        "flow = Dataflow('bad')\n"
        "flow.source(CollectionSource([{'ts': 'soon'}]), timestamp='ts').sink(CollectSink())\n"
    )
    done = engine_run(str(job))
    assert done.returncode == 1
    assert "JobFailedError" in done.stderr and "step 'source_1'" in done.stderr and "'soon'" in done.stderr
    missing = engine_run(str(tmp_path / "nope.py"))
    assert missing.returncode == 2 and "no such job script" in missing.stderr
