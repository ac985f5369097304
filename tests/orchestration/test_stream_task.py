"""DataflowTask: a bounded stream job with a stable checkpoint directory per logical date."""

from __future__ import annotations

from datetime import datetime, timezone

from engine.orchestration import DAG, Task, TaskState
from engine.orchestration.stream_task import DataflowTask

UTC = timezone.utc


class FakeFlow:
    """Stands in for engine.Dataflow: fails on its first run, then resumes from its 'checkpoint'."""

    runs: list[dict] = []

    def __init__(self, start, end):
        self.start, self.end = start, end

    async def run_async(self, checkpoint_dir, checkpoint_interval=None):
        from pathlib import Path

        marker = Path(checkpoint_dir) / "checkpoint-1"
        resumed = marker.exists()
        FakeFlow.runs.append({"dir": checkpoint_dir, "interval": checkpoint_interval, "resumed": resumed})
        if not resumed:
            marker.write_text("state")
            raise RuntimeError("worker lost after the first checkpoint")
        return {"records": 42, "window": [self.start.isoformat(), self.end.isoformat()]}


async def test_dataflow_task_retries_resume_from_the_same_checkpoint_dir(tmp_path, scheduler_factory):
    FakeFlow.runs = []

    def build(context):
        return FakeFlow(context.data_interval_start, context.data_interval_end)

    with DAG("stream_backfill", schedule="@daily", start_date=datetime(2024, 1, 1)) as d:
        job = DataflowTask("aggregate", build, checkpoint_root=tmp_path, checkpoint_interval=5.0, retries=1, retry_delay=0)
        job >> Task("publish", lambda r: r["records"], args=(job.output,))
    result = await scheduler_factory(d).run_dag(d, logical_date=datetime(2024, 1, 2, tzinfo=UTC))
    assert result.states == {"aggregate": TaskState.SUCCESS, "publish": TaskState.SUCCESS}, result.errors
    assert result.results["publish"] == 42
    assert result.results["aggregate"]["window"] == ["2024-01-02T00:00:00+00:00", "2024-01-03T00:00:00+00:00"]
    dirs = {r["dir"] for r in FakeFlow.runs}
    assert len(dirs) == 1 and [r["resumed"] for r in FakeFlow.runs] == [False, True]
    assert dirs.pop().startswith(str(tmp_path / "stream_backfill" / "aggregate" / "2024-01-02"))
    assert FakeFlow.runs[0]["interval"] == 5.0


async def test_build_must_return_a_flow(tmp_path, scheduler_factory):
    with DAG("not_a_flow") as d:
        DataflowTask("job", lambda: 42, checkpoint_root=tmp_path)
    result = await scheduler_factory(d).run_dag(d)
    assert result.states["job"] is TaskState.FAILED
    assert "build() returned int, not a Dataflow" in result.errors["job"]
