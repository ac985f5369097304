"""Checkpoint storage: a small interface and the local-directory implementation (the embedded default).

A checkpoint file is ``MAGIC | body | length(body) | crc32(body)`` where the body is the encoding (see
`engine.state.codec`: msgpack metadata followed by the raw bytes of every numpy array) of the
checkpoint's metadata and state. Writes go to a temporary file in the same directory, are fsynced, then
renamed into place and the directory fsynced, so a crash leaves either the old set of checkpoints or the
new one, never a half-written file under a checkpoint name. A torn or corrupt file (bad magic, bad
checksum, undecodable body) is detected on read and skipped with a warning, and the previous good
checkpoint is used. The newest ``keep`` checkpoints are kept; savepoints are written elsewhere by the
user and never rotated away. Files of the previous format (magic ``ENGCKPT2``, arrays inline in the
msgpack body) are still read.
"""

from __future__ import annotations

import zlib
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from engine.errors import CheckpointError
from engine.state import codec

logger = logging.getLogger(__name__)

MAGIC = b"ENGCKPT3"
_LEGACY_MAGIC = b"ENGCKPT2"  # arrays inline in the msgpack body; read, never written
_TRAILER = 12  # body length (8 bytes) and CRC-32 (4 bytes), little-endian
_NAME = re.compile(r"^chk-(\d{12})\.ckpt$")


@dataclass(frozen=True)
class Checkpoint:
    """One consistent cut of a job: ``state`` holds source positions, operator and sink state."""

    checkpoint_id: int
    job: str
    graph: list = field(default_factory=list)  # the job's operators and parameters, for compatibility
    state: dict = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    savepoint: bool = False

    def to_bytes(self) -> bytes:
        return seal(self.body_parts())

    def body_parts(self) -> list:
        """The encoded checkpoint without its frame (see `seal`), as parts to write in order. The
        metadata is encoded now; the state's numpy arrays are referenced, not copied, so they must not
        change until the parts are written."""
        return codec.encode_parts(
            {
                "format": 1,
                "checkpoint_id": self.checkpoint_id,
                "job": self.job,
                "graph": self.graph,
                "state": self.state,
                "created": self.created,
                "savepoint": self.savepoint,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes, origin: str = "<bytes>") -> "Checkpoint":
        """Parse and verify a checkpoint; raises `CheckpointError` saying what is wrong with it."""
        legacy = data.startswith(_LEGACY_MAGIC)
        if len(data) < len(MAGIC) + _TRAILER or not (legacy or data.startswith(MAGIC)):
            raise CheckpointError(f"{origin}: not a checkpoint file or truncated ({len(data)} bytes)")
        body = memoryview(data)[len(MAGIC) : -_TRAILER]
        length = int.from_bytes(data[-_TRAILER:-4], "little")
        crc = int.from_bytes(data[-4:], "little")
        if length != len(body) or zlib.crc32(body) != crc:
            raise CheckpointError(f"{origin}: checksum mismatch (torn or corrupt file)")
        try:
            meta = codec.decode_legacy(body) if legacy else codec.decode(body)
            return cls(
                checkpoint_id=meta["checkpoint_id"],
                job=meta["job"],
                graph=meta["graph"],
                state=meta["state"],
                created=meta["created"],
                savepoint=meta["savepoint"],
            )
        except Exception as exc:  # a checksum collision is not plausible, a format bug is
            raise CheckpointError(f"{origin}: undecodable checkpoint body: {exc}") from exc


def seal(body_parts: list) -> bytes:
    """Frame an encoded checkpoint (`Checkpoint.body_parts`) into one bytes object: magic, body, then
    the body's length and CRC-32 (a torn or altered file fails the check)."""
    return b"".join((MAGIC, *body_parts, _trailer(body_parts)))


def _trailer(body_parts: list) -> bytes:
    # CRC-32 runs at memory speed and zlib releases the GIL for large buffers, so sealing a large
    # checkpoint in a background thread does not hold up the event loop.
    crc = 0
    length = 0
    for part in body_parts:
        crc = zlib.crc32(part, crc)
        length += len(part)
    return length.to_bytes(8, "little") + crc.to_bytes(4, "little")


class CheckpointStorage(Protocol):
    """Where a job's checkpoints live. Implementations must make ``write`` atomic."""

    def write(self, checkpoint: Checkpoint) -> str: ...
    def write_body(self, checkpoint_id: int, body_parts: list) -> str:
        """Write an encoded checkpoint atomically; called from a worker thread while the job runs."""
        ...
    def latest(self) -> Checkpoint | None: ...
    def ids(self) -> list[int]: ...
    def next_id(self) -> int: ...


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_CHUNK = 4 << 20  # sealing checksums and writes a large part in slices that are still in cache


def _write_all(fh, view: memoryview) -> None:
    while view:  # a raw write may be partial
        view = view[fh.write(view):]


def write_atomically(path: Path, data: bytes | list | tuple, *, sealed: bool = False) -> None:
    """Write ``data`` (bytes, or parts written in order) to ``path`` via a fsynced temporary file and a
    rename, then fsync the directory so the rename itself is durable.

    ``sealed``: ``data`` is a checkpoint body (`Checkpoint.body_parts`), written framed as `seal` frames
    it; its CRC-32 is computed slice by slice as the slices are written (one pass over the state)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    parts = (data,) if isinstance(data, (bytes, bytearray)) else data
    try:
        with open(tmp, "wb", buffering=0) as fh:  # parts are large: no copy into a write buffer
            if not sealed:
                for part in parts:
                    _write_all(fh, memoryview(part))
            else:
                _write_all(fh, memoryview(MAGIC))
                crc = length = 0
                for part in parts:
                    view = memoryview(part).cast("B")
                    for start in range(0, len(view), _CHUNK):
                        piece = view[start : start + _CHUNK]
                        crc = zlib.crc32(piece, crc)
                        _write_all(fh, piece)
                    length += len(view)
                _write_all(fh, memoryview(length.to_bytes(8, "little") + crc.to_bytes(4, "little")))
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # e.g. a full disk: leave no partial file behind
        raise
    _fsync_dir(path.parent)


class LocalCheckpointStorage:
    """Checkpoints as files ``chk-<id>.ckpt`` in one directory, keeping the newest ``keep``.

    The writer's storage creates the directory and removes temporary files a crash left behind.
    ``read_only=True`` opens a directory that another process may be writing (inspecting a running
    job's checkpoints, reading another scale-out worker's): nothing is created or removed there, since
    its temporary files are writes in progress, and `write_body` is refused.
    """

    def __init__(self, directory: str | os.PathLike, keep: int = 3, *, read_only: bool = False):
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.directory = Path(directory)
        self.keep = keep
        self.read_only = read_only
        if not read_only:
            self.directory.mkdir(parents=True, exist_ok=True)
            for leftover in self.directory.glob(".chk-*.tmp"):  # a crash during a write
                leftover.unlink(missing_ok=True)

    def _path(self, checkpoint_id: int) -> Path:
        return self.directory / f"chk-{checkpoint_id:012d}.ckpt"

    def ids(self) -> list[int]:
        """Checkpoint ids present, oldest first (whether or not they are intact)."""
        found = (_NAME.match(p.name) for p in self.directory.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def next_id(self) -> int:
        ids = self.ids()
        return ids[-1] + 1 if ids else 1

    def write(self, checkpoint: Checkpoint) -> str:
        return self.write_body(checkpoint.checkpoint_id, checkpoint.body_parts())

    def write_body(self, checkpoint_id: int, body_parts: list) -> str:
        """Seal and write an encoded checkpoint (`Checkpoint.body_parts`) atomically, then rotate. Runs
        in a worker thread during a run: it touches nothing but the parts and the directory."""
        if self.read_only:
            raise CheckpointError(f"{self.directory} was opened read-only; checkpoint {checkpoint_id} not written")
        path = self._path(checkpoint_id)
        write_atomically(path, body_parts, sealed=True)
        try:
            self._rotate()
        except OSError as exc:
            # the checkpoint is durable already: an old file left behind must not make it count as failed
            logger.warning("checkpoint %d written, but rotating old checkpoints out of %s failed: %s",
                           checkpoint_id, self.directory, exc)
        return str(path)

    def _rotate(self) -> None:
        for old in self.ids()[: -self.keep]:
            self._path(old).unlink(missing_ok=True)

    def read(self, checkpoint_id: int) -> Checkpoint:
        path = self._path(checkpoint_id)
        return Checkpoint.from_bytes(path.read_bytes(), origin=str(path))

    def latest(self) -> Checkpoint | None:
        """The newest intact checkpoint; corrupt newer ones are skipped with a warning."""
        for checkpoint_id in reversed(self.ids()):
            try:
                return self.read(checkpoint_id)
            except (CheckpointError, OSError) as exc:
                logger.warning("skipping checkpoint %d: %s; trying the previous one", checkpoint_id, exc)
        return None


def write_savepoint(path: str | os.PathLike, checkpoint: Checkpoint) -> Path:
    """Write ``checkpoint`` as a savepoint file at ``path`` (never rotated away)."""
    return write_savepoint_parts(path, savepoint_parts(checkpoint))


def savepoint_parts(checkpoint: Checkpoint) -> list:
    """``checkpoint`` encoded as a savepoint (`Checkpoint.body_parts`); encode on the thread that owns the
    state, then write with `write_savepoint_parts` anywhere."""
    savepoint = Checkpoint(
        checkpoint.checkpoint_id, checkpoint.job, checkpoint.graph, checkpoint.state, checkpoint.created, True
    )
    return savepoint.body_parts()


def write_savepoint_parts(path: str | os.PathLike, body_parts: list) -> Path:
    """Write an encoded savepoint (`savepoint_parts`) atomically at ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, body_parts, sealed=True)
    return path


def read_savepoint(path: str | os.PathLike) -> Checkpoint:
    path = Path(path)
    return Checkpoint.from_bytes(path.read_bytes(), origin=str(path))
