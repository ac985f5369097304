"""``engine dags list|tasks|run|trigger|status|backfill|scheduler`` on a folder of DAG files."""

from __future__ import annotations

import textwrap

import pytest

from engine.cli import main

ETL = textwrap.dedent(
    '''
    from datetime import datetime
    from engine.orchestration import dag, task

    @dag(schedule="@daily", start_date=datetime(2024, 1, 1), tags=["demo"])
    def etl():
        """Extract, transform, load."""
        @task
        def extract():
            return [1, 2, 3]

        @task
        def double(x):
            return x * 2

        @task
        def load(values, context):
            return {"total": sum(values), "conf": context.conf}

        load(double.expand(x=extract()))

    etl_dag = etl()
    '''
)

BROKEN = textwrap.dedent(
    '''
    from engine.orchestration import DAG, Task

    def boom():
        raise RuntimeError("kaput")

    with DAG("broken") as broken:
        Task("boom", boom) >> Task("after", lambda: None)
    '''
)


@pytest.fixture
def dag_folder(tmp_path, monkeypatch):
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "etl.py").write_text(ETL)
    (folder / "broken.py").write_text(BROKEN)
    (folder / "_helpers.py").write_text("raise RuntimeError('ignored: starts with an underscore')\n")
    monkeypatch.setenv("ENGINE_ORCHESTRATION_DB", str(tmp_path / "meta.db"))
    return folder


def test_list_and_tasks(dag_folder, capsys):
    assert main(["dags", "list", str(dag_folder)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("broken\t2 tasks\tschedule: manual")
    assert out[1].startswith("etl\t3 tasks\tschedule: @daily (UTC)") and out[1].endswith("Extract, transform, load.")
    assert main(["dags", "tasks", str(dag_folder), "etl"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["extract", "double", "load"]
    assert "mapped" in lines[1] and "upstream: double" in lines[2]


def test_run_prints_states_and_sets_the_exit_code(dag_folder, capsys):
    assert main(["dags", "run", str(dag_folder), "etl", "--conf", '{"who": "cli"}']) == 0
    out = capsys.readouterr().out
    assert ": success" in out and "double[2]: success" in out
    assert main(["dags", "run", str(dag_folder), "broken"]) == 1
    out = capsys.readouterr().out
    assert "boom: failed  (RuntimeError: kaput)" in out and "after: upstream_failed" in out
    assert main(["dags", "status", str(dag_folder), "broken"]) == 0
    assert "boom: failed (tries: 1)  RuntimeError: kaput" in capsys.readouterr().out


def test_trigger_then_scheduler_then_status(dag_folder, capsys):
    assert main(["dags", "trigger", str(dag_folder), "etl", "--logical-date", "2024-03-01T00:00:00+00:00",
                 "--run-id", "my-run"]) == 0
    assert capsys.readouterr().out.strip() == "my-run"
    assert main(["dags", "status", str(dag_folder), "etl"]) == 0
    assert "my-run\tmanual\tqueued" in capsys.readouterr().out
    assert main(["dags", "scheduler", str(dag_folder), "--until-idle"]) == 0
    assert main(["dags", "status", str(dag_folder), "etl", "--run-id", "my-run"]) == 0
    out = capsys.readouterr().out
    assert "my-run\tmanual\tsuccess" in out and "load: success (tries: 1)" in out


def test_backfill_reports_progress(dag_folder, capsys):
    assert main(["dags", "backfill", str(dag_folder), "etl", "--start", "2024-01-01", "--end", "2024-01-03",
                 "--max-active-runs", "2"]) == 0
    out = capsys.readouterr().out
    assert "backfill etl: 3/3 dates done (3 succeeded, 0 failed, 0 left alone, 0 running)" in out
    assert main(["dags", "backfill", str(dag_folder), "etl", "--start", "2024-01-01", "--end", "2024-01-03"]) == 0
    assert "3 left alone" in capsys.readouterr().out


def test_bad_input_exits_2_with_a_clear_message(dag_folder, tmp_path, capsys):
    assert main(["dags", "run", str(dag_folder), "nope"]) == 2
    assert "no DAG 'nope' in the given path; found: broken, etl" in capsys.readouterr().err
    cyclic = tmp_path / "cyclic.py"
    cyclic.write_text("from engine.orchestration import DAG, Task\nwith DAG('c') as c:\n"
                      "    a = Task('a', print)\n    b = Task('b', print)\n    a >> b >> a\n")
    assert main(["dags", "list", str(cyclic)]) == 2
    err = capsys.readouterr().err
    assert str(cyclic) in err and "DAG 'c' has a cycle" in err
    bad = tmp_path / "bad.py"
    bad.write_text("import no_such_module_xyz\n")
    assert main(["dags", "list", str(bad)]) == 2
    assert "bad.py raised ModuleNotFoundError" in capsys.readouterr().err
    assert main(["dags", "list", str(tmp_path / "missing")]) == 2
    assert "no such DAG file or folder" in capsys.readouterr().err
    assert main(["dags", "run", str(dag_folder), "etl", "--conf", "[1]"]) == 2
    assert "--conf must be a JSON object" in capsys.readouterr().err
