"""The connector contract: what a source or sink must provide to the runtime.

Connectors live in the top-level ``connectors`` package (memory, files, later Kafka); they subclass
`Source` and `Sink` from here. The runtime drives them from one asyncio loop:

* A `Source` is opened with the run's batch size, then read as an async iterator of `SourceChunk`
  (records *or* columns of one partition, plus inputs it could not decode). Positions are reported per
  partition after every chunk and can be sought before reading: the seam for checkpoints (collection
  index, file byte offset, later Kafka offsets per partition).
* A `Sink` receives `engine.batch.Batch` objects in order. ``finish`` is called once when every input
  ended (flush and make the output visible); ``abort`` when the job is cancelled or fails (discard what
  is not committed); ``close`` always, last. ``pre_commit``/``commit`` are the two-phase hooks a
  checkpointing run calls at batch boundaries, ``checkpoint_state``/``recover`` carry what a sink needs
  across a restart (no-ops for sinks without transactional output).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Awaitable, Callable

import numpy as np

from engine.batch import Batch

__all__ = ["Sink", "Source", "SourceChunk"]


@dataclass
class SourceChunk:
    """One read from one source partition.

    At most one of ``records`` (a list of Python records) and ``columns`` (a dict of equal-length numpy
    arrays) is set; a chunk with neither (and no errors) is a heartbeat: it lets the runtime apply idle
    timeouts by wall clock while no data arrives. ``errors`` lists inputs that could not be decoded as
    ``(raw input, reason)``; they go to the source step's dead letters. ``position`` is the partition's
    position after this chunk. ``timestamps`` (int64, one per record) is the source's own event time
    (e.g. the Kafka record timestamp), used when the flow gives no ``timestamp=``. ``revoked`` names
    partitions this worker no longer reads (consumer-group rebalance): they stop holding the watermark
    back. Partition ids are ints; a chunk may name a partition never seen before.
    """

    partition: int = 0
    records: list | None = None
    columns: dict[str, np.ndarray] | None = None
    errors: list[tuple[Any, str]] = field(default_factory=list)
    position: Any = None
    timestamps: np.ndarray | None = None
    revoked: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        if self.records is not None:
            return len(self.records)
        if self.columns:
            return len(next(iter(self.columns.values())))
        return 0


class Source:
    """Base class of sources. Subclasses implement `read` (and usually `open`, `fields`)."""

    #: batch size used when neither the source nor the run sets one
    default_batch_size: int = 1024
    #: True when the source yields ``columns`` (numpy) rather than ``records``
    columnar: bool = False
    #: True when chunks carry ``timestamps`` (then ``flow.source(..., timestamp=None)`` uses them)
    provides_timestamps: bool = False
    #: set by the runtime before ``open`` in scale-out runs (``worker_id``): keyed state follows partitions
    #: to their new owner, so a re-assigned partition resumes where its state was checkpointed (see
    #: `resume_positions`), else at the group's offset; otherwise a partition revoked and assigned back to
    #: this worker resumes where this worker left it (its state was kept)
    scale_out: bool = False
    #: set by the runtime before ``open`` in scale-out runs with shared checkpoints:
    #: ``await resume_positions(partition_ids)`` returns, for those of the newly assigned partitions whose
    #: state some worker checkpointed, the position in the latest such checkpoint. A source that can seek
    #: resumes each of them exactly there (the checkpoint wins over upstream committed offsets) and
    #: announces the partition at that position (a chunk with no records) before any of its data; the
    #: runtime then loads the partition's state from that same checkpoint.
    resume_positions: Callable[[list[int]], Awaitable[dict[int, Any]]] | None = None

    def fields(self) -> dict[str, np.dtype | None] | None:
        """Known fields and their dtypes (``None`` when unknown), for build-time checks; ``None`` when the
        source cannot tell before it runs."""
        return None

    def partitions(self) -> list[int]:
        """The partition ids known before reading (each gets its own watermark tracker); partitions that
        appear later in chunks get theirs when they first appear."""
        return [0]

    def project(self, fields: dict[str, str] | None) -> None:
        """Called by the runtime before ``open``: ``fields`` (name -> role, see
        `engine.runtime.projection`) are the only parts of this source's records the job will ever read,
        or ``None`` when records are needed whole. A source may then yield those fields as ``columns``
        instead of ``records``, batch by batch, provided each column's values fit the field's role (an
        int for ``"int"``, an int or str for ``"key"``, an int or float for ``"number"``); any batch it
        cannot deliver that way it yields as records. The default ignores the hint."""
    async def open(self, batch_size: int | None = None) -> None:
        """Prepare to read; ``batch_size`` (when not None) overrides the source's own."""

    def read(self) -> AsyncIterator[SourceChunk]:
        """Yield chunks until the input ends (bounded sources) or forever (unbounded ones)."""
        raise NotImplementedError

    def position(self) -> dict[int, Any]:
        """The position of every partition after the last chunk read (checkpoint seam)."""
        return {}

    def seek(self, positions: dict[int, Any]) -> None:
        """Resume every listed partition from ``positions`` (as returned by `position`) at the next open."""
        raise NotImplementedError(f"{type(self).__name__} cannot seek")

    async def notify_checkpoint_complete(self, positions: dict[int, Any]) -> set[int] | None:
        """A checkpoint holding ``positions`` (this source's, per partition) is durable; e.g. Kafka commits
        these offsets to the consumer group now, never earlier. Returns the partitions whose offsets are
        now committed upstream, or ``None`` (the default) when the source has no upstream commits."""
        return None

    async def close(self) -> None:
        """Release resources; called once at the end of every run, also after errors or cancellation."""

    def describe(self) -> str:
        return type(self).__name__


class Sink:
    """Base class of sinks. Subclasses implement `write` and whichever lifecycle hooks they need."""

    #: True when the sink consumes ``batch.columns`` (so no Python records need to be built for it)
    columnar: bool = False
    #: True when ``commit(checkpoint_id)`` would also make visible what was written after
    #: ``pre_commit(checkpoint_id)`` (one open transaction, like a Kafka transactional producer's): the
    #: runtime then completes each checkpoint (write, fsync, commit) before it writes the next batch,
    #: instead of persisting it in the background while the job goes on
    commit_requires_barrier: bool = False

    async def open(self) -> None:
        """Prepare for a new run."""

    async def write(self, batch: Batch) -> None:
        """Accept one non-empty batch; slow writes slow the whole job down (backpressure)."""
        raise NotImplementedError

    async def pre_commit(self, checkpoint_id: int) -> None:
        """Make everything written so far durable but not yet visible (two-phase commit, phase one)."""

    async def commit(self, checkpoint_id: int) -> None:
        """Make the output pre-committed for ``checkpoint_id`` visible (phase two)."""

    def checkpoint_state(self) -> Any:
        """State to store in the checkpoint, asked right after ``pre_commit`` (e.g. names of pre-committed
        files); ``None`` by default."""
        return None

    async def recover(self, state: Any | None) -> None:
        """Called before ``open`` when a run starts: with the state of the restored checkpoint (to commit or
        discard what was pre-committed), or ``None`` on a fresh start."""

    async def finish(self) -> None:
        """Every input ended: flush and make all output visible."""

    async def abort(self) -> None:
        """The run was cancelled or failed: discard output that was not committed."""

    async def close(self) -> None:
        """Release resources; called once at the end of every run."""

    def describe(self) -> str:
        return type(self).__name__
