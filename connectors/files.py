"""File connectors: JSON lines in and out, with msgspec.

* `JsonLinesSource`: one JSON value per line, decoded with one reusable msgspec decoder (optionally
  into a msgspec Struct ``type``, which validates each record). Blank lines are skipped; a line that
  does not decode (or does not match ``type``) goes to the source step's dead letters with the
  decoder's message and the line itself, and reading continues. The position is the byte offset of
  the next line, so a checkpointing run can seek back to it.
* `JsonLinesSink`: writes one JSON value per record to a staging file next to ``path`` and, when the
  run finishes, makes ``path`` appear complete and atomically. With checkpoints it is exactly-once
  (two-phase commit: the staging file is fsynced at every checkpoint and cut back to the checkpointed
  length on restore). A cancelled or failed run leaves ``path`` untouched.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, AsyncIterator

import msgspec
import numpy as np

from engine.batch import Batch
from engine.errors import ConnectorError, FlowDefinitionError
from engine.io import Sink, Source, SourceChunk

__all__ = ["JsonLinesSink", "JsonLinesSource"]


class JsonLinesSource(Source):
    """Reads ``path`` as JSON lines, ``batch_size`` lines per chunk (the run's batch size overrides)."""

    default_batch_size = 1024

    def __init__(self, path: str | os.PathLike, batch_size: int = 1024, type: Any = Any) -> None:  # noqa: A002
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise FlowDefinitionError(f"JsonLinesSource: batch_size must be a positive int, got {batch_size!r}")
        self.path = Path(path)
        self.batch_size = batch_size
        self.type = type
        self._decoder = msgspec.json.Decoder(type)
        self._run_batch_size = batch_size
        self._start = 0
        self._offset = 0
        self._file: Any = None

    def describe(self) -> str:
        return f"JsonLinesSource({str(self.path)!r}, batch_size={self.batch_size})"

    def fields(self) -> dict[str, Any] | None:
        if isinstance(self.type, type) and issubclass(self.type, msgspec.Struct):
            return {name: None for name in self.type.__struct_fields__}
        return None

    async def open(self, batch_size: int | None = None) -> None:
        self._run_batch_size = batch_size or self.batch_size
        try:
            self._file = open(self.path, "rb")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise ConnectorError(f"JsonLinesSource cannot open {str(self.path)!r}: {exc}") from exc
        self._file.seek(self._start)
        self._offset = self._start

    def _read_lines(self) -> tuple[list[bytes], int]:
        lines = []
        offset = self._offset
        for _ in range(self._run_batch_size):
            line = self._file.readline()
            if not line:
                break
            offset += len(line)
            lines.append(line)
        return lines, offset

    async def read(self) -> AsyncIterator[SourceChunk]:
        decode = self._decoder.decode
        while True:
            lines, offset = await asyncio.to_thread(self._read_lines)
            if not lines:
                return
            records: list[Any] = []
            errors: list[tuple[Any, str]] = []
            for line in lines:
                if not line.strip():
                    continue
                try:
                    records.append(decode(line))
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    raw = line.rstrip(b"\r\n")
                    try:
                        raw = raw.decode("utf-8")  # type: ignore[assignment]
                    except UnicodeDecodeError:
                        pass
                    errors.append((raw, f"{type(exc).__name__}: {exc}"))
            self._offset = offset
            yield SourceChunk(0, records=records, errors=errors, position=offset)

    def position(self) -> dict[int, Any]:
        return {0: self._offset}

    def seek(self, positions: dict[int, Any]) -> None:
        self._start = int(positions.get(0, 0))

    async def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _enc_hook(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"JsonLinesSink cannot encode {type(value).__name__} values as JSON: {value!r}")


class JsonLinesSink(Sink):
    """Writes records as JSON lines to ``path``; the file appears, complete, when the run finishes.

    **Exactly-once** with checkpoints (two-phase commit): records are appended to a staging file
    ``.<name>.inprogress`` next to ``path``; at each checkpoint the staging file is flushed and fsynced
    (pre-commit) and its length is stored in the checkpoint. A restarted job truncates the staging file
    back to the length of the checkpoint it restores (dropping output written after it, which the job
    produces again) and goes on appending. When the input ends, after the final checkpoint, the staging
    file is copied to a temporary file that is fsynced and renamed over ``path``: readers only ever see a
    complete file. The staging file is kept while checkpoints refer to it, so a restart after the end
    rebuilds the same ``path``.

    Without checkpoints the staging file is simply renamed over ``path`` at the end. A cancelled or failed
    run leaves ``path`` untouched.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.staging = self.path.with_name(f".{self.path.name}.inprogress")
        self._encoder = msgspec.json.Encoder(enc_hook=_enc_hook)
        self._file: Any = None
        self._checkpointed = False
        self._resume_at: int | None = None

    def describe(self) -> str:
        return f"JsonLinesSink({str(self.path)!r})"

    async def recover(self, state: Any) -> None:
        """Called before open() by a checkpointing run: ``state`` is this sink's part of the restored
        checkpoint (``None`` on a fresh start, which discards any old staging file)."""
        self._checkpointed = True
        self._resume_at = None if state is None else int(state["length"])

    async def open(self) -> None:
        try:
            if self._resume_at is None:
                self._file = open(self.staging, "wb")  # noqa: SIM115 - closed in finish/abort/close
                return
            size = self.staging.stat().st_size if self.staging.exists() else -1
            if size < self._resume_at:
                raise ConnectorError(
                    f"JsonLinesSink {str(self.path)!r}: the staging file {str(self.staging)!r} holds {max(size, 0)} bytes "
                    f"but the checkpoint needs {self._resume_at}; it was removed or truncated outside the job"
                )
            self._file = open(self.staging, "r+b")  # noqa: SIM115
            self._file.truncate(self._resume_at)  # output after the checkpoint is produced again
            self._file.seek(self._resume_at)
        except OSError as exc:
            raise ConnectorError(f"JsonLinesSink cannot write next to {str(self.path)!r}: {exc}") from exc

    async def write(self, batch: Batch) -> None:
        self._file.write(self._encoder.encode_lines(batch.records))

    async def pre_commit(self, checkpoint_id: int) -> None:
        # The runtime waits for pre_commit before it writes again; the fsync (milliseconds to seconds on
        # a busy disk) runs off the event loop so sources, heartbeats and timers keep running meanwhile.
        self._file.flush()
        await asyncio.to_thread(os.fsync, self._file.fileno())

    def checkpoint_state(self) -> Any:
        return {"length": self._file.tell()}

    async def finish(self) -> None:
        file, self._file = self._file, None
        file.flush()
        await asyncio.to_thread(os.fsync, file.fileno())
        file.close()
        if self._checkpointed:
            await asyncio.to_thread(_copy_atomically, self.staging, self.path)
        else:
            os.replace(self.staging, self.path)
            _fsync_dir(self.path.parent)

    async def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            if not self._checkpointed:
                self.staging.unlink(missing_ok=True)

    async def close(self) -> None:
        await self.abort()


def _copy_atomically(source: Path, target: Path) -> None:
    temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    with open(source, "rb") as src, open(temp, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
        dst.flush()
        os.fsync(dst.fileno())
    os.replace(temp, target)
    _fsync_dir(target.parent)


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
