"""Checkpointed state: checkpoint storage (and, with the runtime, the checkpoint coordinator)."""

from engine.state.storage import Checkpoint, CheckpointStorage, LocalCheckpointStorage

__all__ = ["Checkpoint", "CheckpointStorage", "LocalCheckpointStorage"]
