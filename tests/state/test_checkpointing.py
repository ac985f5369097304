"""Checkpoint, restore and exactly-once output of a whole job (in-process failures)."""

from __future__ import annotations

import random

import pytest

from connectors.files import JsonLinesSource
from engine.errors import IncompatibleCheckpointError, ConnectorError
from engine.state.storage import LocalCheckpointStorage
from tests.state import jobs


def read_lines(path) -> list[str]:
    return sorted(path.read_text().splitlines())


@pytest.fixture
def job_input(tmp_path):
    seed = random.randrange(10**6)
    print(f"seed={seed}")
    path = tmp_path / "events.jsonl"
    jobs.write_input(str(path), 1_500, seed)
    return path


@pytest.fixture
def expected(job_input, tmp_path):
    out = tmp_path / "uninterrupted.jsonl"
    jobs.build(str(job_input), str(out)).run()
    lines = read_lines(out)
    assert len(lines) > 100
    return lines


class FailAfter(JsonLinesSource):
    """A file source that fails after ``chunks`` chunks: a crash in the middle of the job."""

    def __init__(self, path, chunks: int) -> None:
        super().__init__(path, batch_size=25)
        self.chunks = chunks

    async def read(self):
        count = 0
        async for chunk in super().read():
            if count == self.chunks:
                raise OSError("disk went away")
            count += 1
            yield chunk


def crashing_job(job_input, out, chunks: int):
    return jobs.build(str(job_input), str(out), source=FailAfter(job_input, chunks))


def test_checkpoints_are_written_rotated_and_consistent(job_input, expected, tmp_path):
    out = tmp_path / "out.jsonl"
    flow = jobs.build(str(job_input), str(out))
    flow.run(checkpoint_dir=tmp_path / "ckpt", checkpoint_interval=0.001)
    assert read_lines(out) == expected
    storage = LocalCheckpointStorage(tmp_path / "ckpt")
    # keep=3: the newest three of those taken (how many were taken depends on how fast they were
    # written: one that falls due while the previous is still being written waits for it)
    taken = flow._last_run.checkpointer.completed
    assert taken == list(range(1, len(taken) + 1)) and len(taken) >= 2
    assert storage.ids() == taken[-3:]
    latest = storage.latest()
    assert latest.job == "crash-job"
    assert set(latest.state) == {"sources", "operators", "sinks"}
    # the final checkpoint is taken when the input has ended: the source is at the end of the file
    assert list(latest.state["sources"].values()) == [{0: job_input.stat().st_size}]


@pytest.mark.parametrize("fail_after", [3, 17, 40])
def test_a_failed_run_resumes_and_the_output_is_exact(job_input, expected, tmp_path, fail_after):
    out = tmp_path / "out.jsonl"
    with pytest.raises(ConnectorError, match="disk went away"):
        crashing_job(job_input, out, fail_after).run(checkpoint_dir=tmp_path / "ckpt", checkpoint_interval=0.001)
    assert not out.exists()  # nothing is visible before the job completes
    jobs.build(str(job_input), str(out)).run(checkpoint_dir=tmp_path / "ckpt", checkpoint_interval=0.001)
    assert read_lines(out) == expected


def test_several_failures_in_a_row_still_give_exact_output(job_input, expected, tmp_path):
    out = tmp_path / "out.jsonl"
    for fail_after in (5, 9, 2, 30):
        with pytest.raises(ConnectorError):
            crashing_job(job_input, out, fail_after).run(checkpoint_dir=tmp_path / "ckpt", checkpoint_interval=0.001)
    jobs.build(str(job_input), str(out)).run(checkpoint_dir=tmp_path / "ckpt", checkpoint_interval=0.001)
    assert read_lines(out) == expected


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_corrupt_latest_checkpoint_falls_back_and_output_is_exact(job_input, expected, tmp_path, damage):
    out = tmp_path / "out.jsonl"
    with pytest.raises(ConnectorError):
        crashing_job(job_input, out, 25).run(checkpoint_dir=tmp_path / "ckpt", checkpoint_interval=0.001)
    storage = LocalCheckpointStorage(tmp_path / "ckpt")
    latest = tmp_path / "ckpt" / f"chk-{storage.ids()[-1]:012d}.ckpt"
    data = bytearray(latest.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 3]
    else:
        data[len(data) // 2] ^= 0x5A
    latest.write_bytes(bytes(data))
    jobs.build(str(job_input), str(out)).run(checkpoint_dir=tmp_path / "ckpt", checkpoint_interval=0.001)
    assert read_lines(out) == expected


def test_a_changed_graph_is_refused_with_the_difference(job_input, tmp_path):
    out = tmp_path / "out.jsonl"
    with pytest.raises(ConnectorError):
        crashing_job(job_input, out, 10).run(checkpoint_dir=tmp_path / "ckpt", checkpoint_interval=0.001)
    changed = jobs.build(str(job_input), str(out), lateness=0)
    with pytest.raises(IncompatibleCheckpointError, match=r"step 'window_\d+' parameter 'allowed_lateness' changed from 600 to 0"):
        changed.run(checkpoint_dir=tmp_path / "ckpt")
    # starting fresh is the explicit way out
    changed.run(checkpoint_dir=tmp_path / "ckpt", fresh=True)
    assert out.exists()


def test_a_checkpoint_of_another_job_is_refused(job_input, tmp_path):
    jobs.build(str(job_input), str(tmp_path / "a.jsonl"), name="job-a").run(checkpoint_dir=tmp_path / "ckpt")
    with pytest.raises(IncompatibleCheckpointError, match="belongs to job 'job-a', not 'job-b'"):
        jobs.build(str(job_input), str(tmp_path / "b.jsonl"), name="job-b").run(checkpoint_dir=tmp_path / "ckpt")


def test_savepoint_survives_rotation_and_a_job_starts_from_it(job_input, expected, tmp_path):
    from engine.cli import main

    out = tmp_path / "out.jsonl"
    with pytest.raises(ConnectorError):
        crashing_job(job_input, out, 12).run(checkpoint_dir=tmp_path / "ckpt", checkpoint_interval=0.001)
    assert main(["savepoint", str(tmp_path / "ckpt"), str(tmp_path / "sp" / "before.ckpt")]) == 0
    with pytest.raises(ConnectorError):  # more checkpoints rotate the old ones away
        crashing_job(job_input, out, 40).run(checkpoint_dir=tmp_path / "ckpt", checkpoint_interval=0.001)
    jobs.build(str(job_input), str(out)).run(
        checkpoint_dir=tmp_path / "ckpt2", from_savepoint=tmp_path / "sp" / "before.ckpt"
    )
    assert read_lines(out) == expected
