"""Crash resume: SIGKILL the scheduler process mid-run, restart it, and check every side effect.

Each task appends "start" and "done" lines to its own file, so the files count executions. Before the
kill: `a`, `fast` and the even mapped instances have succeeded (and are durable), `slow` and the odd
mapped instances are running (blocked until a release file appears). After the restart: nothing that
succeeded runs again, every interrupted instance runs once more, and the downstream tasks run once.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing
import time
from pathlib import Path

import pytest

DAG_FILE = textwrap.dedent(
    '''
    import asyncio
    import os
    from pathlib import Path

    from engine.orchestration import dag, task

    OUT = Path(os.environ["CRASH_TEST_DIR"])


    def mark(name, what):
        with open(OUT / f"{name}.log", "a") as f:
            f.write(what + "\\n")
            f.flush()
            os.fsync(f.fileno())


    async def wait_for_release():
        while not (OUT / "release").exists():
            await asyncio.sleep(0.02)


    @dag(max_active_tasks=16)
    def crashy():
        @task
        def a():
            mark("a", "start")
            mark("a", "done")
            return [0, 1, 2, 3]

        @task
        async def fast():
            mark("fast", "start")
            mark("fast", "done")
            return "fast"

        @task
        async def slow(items):
            mark("slow", "start")
            await wait_for_release()
            mark("slow", "done")
            return len(items)

        @task
        async def part(i):
            mark(f"part{i}", "start")
            if i % 2:
                await wait_for_release()
            mark(f"part{i}", "done")
            return i * 10

        @task
        def c(n, parts, f):
            mark("c", "start")
            mark("c", "done")
            return {"n": n, "parts": parts, "f": f}

        items = a()
        c(slow(items), part.expand(i=items), fast())


    crashy_dag = crashy()
    '''
)


def _states(db: Path) -> dict[str, str]:
    try:
        with closing(sqlite3.connect(db, timeout=5)) as conn:
            rows = conn.execute("SELECT task_id, map_index, state FROM task_instances").fetchall()
    except sqlite3.OperationalError:
        return {}
    return {(t if m < 0 else f"{t}[{m}]"): s for t, m, s in rows}


def _lines(out: Path, name: str) -> list[str]:
    f = out / f"{name}.log"
    return f.read_text().split() if f.exists() else []


@pytest.mark.slow
def test_sigkill_mid_run_then_resume(tmp_path):
    dag_file = tmp_path / "crash_dag.py"
    dag_file.write_text(DAG_FILE)
    out = tmp_path / "out"
    out.mkdir()
    db = tmp_path / "meta.db"
    env = {**os.environ, "CRASH_TEST_DIR": str(out), "PYTHONPATH": os.getcwd()}
    cmd = [sys.executable, "-m", "engine.cli", "dags"]

    log = open(tmp_path / "first.log", "wb")  # noqa: SIM115 - closed in finally
    first = subprocess.Popen([*cmd, "run", str(dag_file), "crashy", "--db", str(db)], env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        want = {"a": "success", "fast": "success", "part[0]": "success", "part[2]": "success",
                "slow": "running", "part[1]": "running", "part[3]": "running"}
        while True:
            states = _states(db)
            if all(states.get(k) == v for k, v in want.items()):
                break
            assert first.poll() is None, (tmp_path / "first.log").read_text()
            assert time.monotonic() < deadline, f"the run never reached the crash point: {states}"
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(10)
        log.close()
    assert first.returncode == -signal.SIGKILL
    assert _lines(out, "slow") == ["start"] and _lines(out, "c") == []

    (out / "release").touch()
    second = subprocess.run([*cmd, "scheduler", str(dag_file), "--until-idle", "--db", str(db)], env=env,
                            capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr

    # Succeeded before the crash: executed exactly once.
    for name in ("a", "fast", "part0", "part2"):
        assert _lines(out, name) == ["start", "done"], name
    # Running at the crash: started again and finished once.
    for name in ("slow", "part1", "part3"):
        assert _lines(out, name) == ["start", "start", "done"], name
    # Downstream of the interrupted tasks: once.
    assert _lines(out, "c") == ["start", "done"]

    states = _states(db)
    assert set(states.values()) == {"success"}, states
    with closing(sqlite3.connect(db)) as conn:
        run_state = conn.execute("SELECT state FROM dag_runs").fetchall()
        result = conn.execute("SELECT result FROM task_instances WHERE task_id='c'").fetchone()[0]
        interrupted = conn.execute("SELECT task_id, map_index, try_number FROM task_tries WHERE state='interrupted'"
                                   " ORDER BY task_id, map_index").fetchall()
        slow_try = conn.execute("SELECT try_number FROM task_instances WHERE task_id='slow'").fetchone()[0]
    assert run_state == [("success",)]
    assert result == '{"n":4,"parts":[0,10,20,30],"f":"fast"}'
    assert interrupted == [("part", 1, 1), ("part", 3, 1), ("slow", -1, 1)]
    assert slow_try == 1  # the interrupted attempt does not consume a retry

    status = subprocess.run([*cmd, "status", str(dag_file), "crashy", "--db", str(db)], env=env,
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 0 and "success" in status.stdout and "part[3]: success" in status.stdout


async def test_resume_in_process_keeps_every_mapped_instance(tmp_path):
    """A scheduler that stops mid-run (no idle flush) resumes with all mapped instances and counts."""
    import asyncio

    from engine.orchestration import DAG, MappedTask, Scheduler, Task

    db = tmp_path / "m.db"
    release = asyncio.Event()
    calls = []

    async def part(i):
        calls.append(i)
        if i % 2:
            await release.wait()
        return i

    def build():
        with DAG("resume_mapped", max_active_tasks=2) as d:
            src = Task("src", lambda: [0, 1, 2, 3, 4])
            m = MappedTask("part", part, expand={"i": src.output})
            Task("total", lambda xs: sum(xs), args=(m.output,))
        return d

    s1 = Scheduler([build()], store=db)
    run_id = await s1.trigger("resume_mapped")
    waiter = asyncio.ensure_future(s1.wait_for_run("resume_mapped", run_id))
    while len(calls) < 3:
        await asyncio.sleep(0.001)
    waiter.cancel()  # the "crash": the loop stops without flushing transient states
    await asyncio.gather(waiter, return_exceptions=True)
    for t in list(s1._inflight):
        t.cancel()
    await asyncio.gather(*s1._inflight, return_exceptions=True)
    s1.store._transient_ti.clear()
    s1.store._db.close()
    s1._release_lock()  # what the OS does when a crashed process's files are closed

    release.set()
    s2 = Scheduler([build()], store=db)
    try:
        result = await s2.wait_for_run("resume_mapped", run_id)
    finally:
        await s2.close()
    assert result.results["part"] == [0, 1, 2, 3, 4]
    assert result.results["total"] == 10
    assert sorted(k for k in result.states if k.startswith("part")) == [f"part[{i}]" for i in range(5)]
