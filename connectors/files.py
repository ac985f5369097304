"""File connectors: JSON lines in and out, with msgspec.

* `JsonLinesSource`: one JSON value per line, decoded with one reusable msgspec decoder (optionally
  into a msgspec Struct ``type``, which validates each record). Blank lines are skipped; a line that
  does not decode (or does not match ``type``) goes to the source step's dead letters with the
  decoder's message and the line itself, and reading continues. The position is the byte offset of
  the next line, so a checkpointing run can seek back to it.
* `JsonLinesSink`: writes one JSON value per record to a temporary file next to ``path`` and, when the
  run finishes, flushes, fsyncs and renames it over ``path`` atomically. A cancelled or failed run
  leaves ``path`` untouched and removes the temporary file. (Two-phase commit per checkpoint comes
  with the checkpointing work; the hooks are in `engine.io.Sink`.)
"""

from __future__ import annotations

import asyncio
import os
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
    """Writes records as JSON lines to ``path``, made visible atomically when the run finishes."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._encoder = msgspec.json.Encoder(enc_hook=_enc_hook)
        self._temp: Path | None = None
        self._file: Any = None

    def describe(self) -> str:
        return f"JsonLinesSink({str(self.path)!r})"

    async def open(self) -> None:
        self._temp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}.tmp")
        try:
            self._file = open(self._temp, "wb")  # noqa: SIM115 - closed in finish/abort/close
        except OSError as exc:
            raise ConnectorError(f"JsonLinesSink cannot write next to {str(self.path)!r}: {exc}") from exc

    async def write(self, batch: Batch) -> None:
        self._file.write(self._encoder.encode_lines(batch.records))

    async def finish(self) -> None:
        file, temp = self._file, self._temp
        self._file = None
        file.flush()
        os.fsync(file.fileno())
        file.close()
        os.replace(temp, self.path)
        self._temp = None
        _fsync_dir(self.path.parent)

    async def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._temp is not None:
            self._temp.unlink(missing_ok=True)
            self._temp = None

    async def close(self) -> None:
        await self.abort()


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
