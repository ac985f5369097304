"""Crash tests: the job runs in a subprocess that is SIGKILLed at random moments and restarted until
it finishes; the committed output must equal an uninterrupted run's exactly."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.state import jobs

ROOT = Path(__file__).resolve().parents[2]
# Enough input that the kills land before the job can finish, on any machine: the job sleeps 0.4 ms per
# record (PACE), so it runs for 2 s at least, longer than the first kill's latest moment (1.2 s); and an
# attempt killed within 0.35 s of its first checkpoint reads under 900 records, so three attempts cannot
# read 5,000 (the background-persist test needs three kills to land).
EVENTS = 5_000
PACE = "0.0004"


def start(job_input: Path, out: Path, ckpt: Path, log: Path, persist_delay: float = 0.0) -> subprocess.Popen:
    args = [str(job_input), str(out), str(ckpt), "0.05", PACE] + ([str(persist_delay)] if persist_delay else [])
    with open(log, "wb") as stderr:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "tests.state.jobs", *args],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


def _input_and_expected_output(tmp_path: Path, seed: int) -> tuple[Path, list[str]]:
    """The job's input for ``seed`` and the sorted lines an uninterrupted run writes."""
    job_input = tmp_path / "events.jsonl"
    jobs.write_input(str(job_input), EVENTS, seed)
    expected_path = tmp_path / "expected.jsonl"
    jobs.build(str(job_input), str(expected_path)).run()
    return job_input, sorted(expected_path.read_text().splitlines())


@pytest.mark.slow
@pytest.mark.parametrize("seed", [11, 2024, random.randrange(10**6)])
def test_sigkill_at_random_moments_gives_exact_output(tmp_path, seed):
    print(f"seed={seed}")
    rng = random.Random(seed)
    job_input, expected = _input_and_expected_output(tmp_path, seed)

    out, ckpt = tmp_path / "out.jsonl", tmp_path / "ckpt"
    kills = 0
    for attempt in range(30):
        log = tmp_path / f"attempt-{attempt}.log"
        process = start(job_input, out, ckpt, log)
        if kills < 4:
            # early kills land during start-up and restore, later ones mid-stream and mid-checkpoint
            time.sleep(rng.uniform(0.05, 1.2))
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
                kills += 1
                continue
        process.wait(timeout=120)
        assert process.returncode == 0, log.read_text()[-3000:]
        break
    else:
        pytest.fail("the job never finished")
    assert kills >= 1
    assert sorted(out.read_text().splitlines()) == expected


def _wait_for_line(log: Path, text: str, process: subprocess.Popen, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text() or process.poll() is not None:
            return text in log.read_text()
        time.sleep(0.005)
    return False


@pytest.mark.slow
@pytest.mark.parametrize("seed", [5, random.randrange(10**6)])
def test_sigkill_while_a_checkpoint_is_persisted_in_the_background_gives_exact_output(tmp_path, seed):
    """Every checkpoint write takes 60 ms before the rename and 60 ms after it (durable, completion not
    yet delivered), so kills land in the background persist: the job has gone on (written more output
    to the staging file) since the cut, and the sink has not committed."""
    print(f"seed={seed}")
    rng = random.Random(seed)
    job_input, expected = _input_and_expected_output(tmp_path, seed)

    out, ckpt = tmp_path / "out.jsonl", tmp_path / "ckpt"
    landed = {"before the rename": 0, "after the rename": 0}
    for attempt in range(30):
        log = tmp_path / f"attempt-{attempt}.log"
        process = start(job_input, out, ckpt, log, persist_delay=0.06)
        if sum(landed.values()) < 5 and _wait_for_line(log, "persisting", process):
            time.sleep(rng.uniform(0.0, 0.3))
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
                steps = [line for line in log.read_text().splitlines() if line.startswith(("persisting", "renamed"))]
                landed["before the rename" if steps[-1].startswith("persisting") else "after the rename"] += 1
                continue
        process.wait(timeout=120)
        assert process.returncode == 0, log.read_text()[-3000:]
        break
    else:
        pytest.fail("the job never finished")
    print(landed)
    assert sum(landed.values()) >= 3
    assert sorted(out.read_text().splitlines()) == expected
