import logging
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import CheckpointError
from engine.state import codec
from engine.state.storage import Checkpoint, LocalCheckpointStorage, read_savepoint, write_savepoint


def make_checkpoint(checkpoint_id: int, job: str = "job") -> Checkpoint:
    return Checkpoint(
        checkpoint_id=checkpoint_id,
        job=job,
        graph=[{"name": "source", "kind": "source"}],
        state={
            "source": {"position": checkpoint_id * 10},
            "windows": {"starts": np.arange(5, dtype=np.int64) * checkpoint_id, "sums": np.ones((5, 2))},
            "keys": {"keys": ["a", 1, ("t", 2), None]},
        },
    )


def assert_same(a: Checkpoint, b: Checkpoint) -> None:
    assert (a.checkpoint_id, a.job, a.graph, a.savepoint) == (b.checkpoint_id, b.job, b.graph, b.savepoint)
    assert a.state["source"] == b.state["source"]
    assert a.state["keys"] == b.state["keys"]
    for name, arr in a.state["windows"].items():
        np.testing.assert_array_equal(arr, b.state["windows"][name])
        assert arr.dtype == b.state["windows"][name].dtype


def test_round_trip_keeps_arrays_tuples_and_types(tmp_path):
    storage = LocalCheckpointStorage(tmp_path)
    original = make_checkpoint(1)
    storage.write(original)
    restored = storage.latest()
    assert_same(original, restored)
    assert isinstance(restored.state["keys"]["keys"][2], tuple)  # still hashable as a key


def test_keeps_the_newest_n(tmp_path):
    storage = LocalCheckpointStorage(tmp_path, keep=3)
    for i in range(1, 7):
        storage.write(make_checkpoint(i))
    assert storage.ids() == [4, 5, 6]
    assert storage.latest().checkpoint_id == 6
    assert storage.next_id() == 7


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "garbage"])
def test_corrupt_latest_falls_back_to_previous_with_a_warning(tmp_path, caplog, damage):
    storage = LocalCheckpointStorage(tmp_path)
    storage.write(make_checkpoint(1))
    storage.write(make_checkpoint(2))
    path = tmp_path / "chk-000000000002.ckpt"
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[len(data) // 2] ^= 0xFF
    elif damage == "empty":
        data = bytearray()
    else:
        data = bytearray(os.urandom(len(data)))
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="engine.state.storage"):
        latest = storage.latest()
    assert latest.checkpoint_id == 1
    assert_same(make_checkpoint(1), latest)
    assert "skipping checkpoint 2" in caplog.text


def test_all_corrupt_gives_none_and_direct_read_says_why(tmp_path):
    storage = LocalCheckpointStorage(tmp_path)
    storage.write(make_checkpoint(1))
    (tmp_path / "chk-000000000001.ckpt").write_bytes(b"ENGCKPT2" + b"x" * 40)
    assert storage.latest() is None
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        storage.read(1)


def test_leftover_temp_files_are_removed_and_ignored(tmp_path):
    (tmp_path / ".chk-000000000009.ckpt.123.tmp").write_bytes(b"half written")
    storage = LocalCheckpointStorage(tmp_path)
    assert storage.ids() == []
    assert not list(tmp_path.glob("*.tmp"))


def test_a_read_only_view_leaves_writes_in_progress_alone(tmp_path):
    """Reading a directory another process writes (a running job, another scale-out worker) must not
    remove its temporary file: that is a write in progress, whose rename would then fail."""
    writer = LocalCheckpointStorage(tmp_path)
    writer.write(Checkpoint(checkpoint_id=1, job="j", state={"n": 1}))
    in_progress = tmp_path / ".chk-000000000002.ckpt.123.tmp"
    in_progress.write_bytes(b"being written")
    reader = LocalCheckpointStorage(tmp_path, read_only=True)
    assert reader.latest().state == {"n": 1}
    assert in_progress.exists()
    with pytest.raises(CheckpointError, match="read-only"):
        reader.write(Checkpoint(checkpoint_id=2, job="j"))
    assert writer.ids() == [1]
    LocalCheckpointStorage(tmp_path / "missing", read_only=True)
    assert not (tmp_path / "missing").exists()  # nothing is created either


def test_savepoints_live_outside_rotation(tmp_path):
    storage = LocalCheckpointStorage(tmp_path / "checkpoints", keep=1)
    storage.write(make_checkpoint(1))
    saved = write_savepoint(tmp_path / "savepoints" / "before-upgrade.ckpt", storage.latest())
    for i in range(2, 5):
        storage.write(make_checkpoint(i))
    restored = read_savepoint(saved)
    assert restored.savepoint and restored.checkpoint_id == 1
    assert storage.ids() == [4]


def test_object_arrays_are_refused_with_a_clear_error():
    with pytest.raises(TypeError, match="object array"):
        codec.encode({"bad": np.array(["a", None], dtype=object)})


keys = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=5), st.binary(max_size=5)),
    lambda inner: st.tuples(inner, inner) | st.frozensets(st.integers(0, 5), max_size=3),
    max_leaves=6,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(keys, max_size=20), st.lists(st.integers(-(2**63), 2**63 - 1), max_size=50))
def test_codec_round_trips_keys_and_arrays(key_list, numbers):
    state = {"keys": key_list, "arr": np.array(numbers, dtype=np.int64), "nested": [{"x": np.float64(1.5)}]}
    back = codec.decode(codec.encode(state))
    assert back["keys"] == key_list
    assert [type(k) for k in back["keys"]] == [type(k) for k in key_list]
    np.testing.assert_array_equal(back["arr"], state["arr"])
    assert back["nested"] == [{"x": 1.5}]


def test_codec_round_trips_arrays_of_any_plain_dtype_and_shape():
    state = {
        "empty": np.empty(0, dtype=np.int64),
        "matrix": np.arange(12, dtype=np.float64).reshape(4, 3),
        "flags": np.array([True, False, True]),
        "scalar": np.array(7, dtype=np.int32),
        "times": np.array(["2024-01-01T00:00"], dtype="datetime64[ms]"),
        "strided": np.arange(10, dtype=np.int64)[::3],  # not contiguous: copied once when encoded
        "nested": [(np.arange(3, dtype=np.uint8), "x")],
    }
    back = codec.decode(codec.encode(state))
    for name in ("empty", "matrix", "flags", "scalar", "times", "strided"):
        np.testing.assert_array_equal(back[name], state[name])
        assert back[name].dtype == state[name].dtype and back[name].shape == state[name].shape
        assert back[name].flags.writeable  # a copy, not a view pinning the file
    assert isinstance(back["nested"][0], tuple)
    np.testing.assert_array_equal(back["nested"][0][0], np.arange(3, dtype=np.uint8))


def test_frozen_arrays_are_referenced_not_copied_and_aligned():
    big = np.arange(1000, dtype=np.int64)
    parts = codec.encode_parts(codec.frozen({"a": big, "b": np.ones(3)}))
    assert not big.flags.writeable
    assert any(isinstance(p, memoryview) and p.obj is not None and np.shares_memory(np.asarray(p), big) for p in parts)
    data = b"".join(parts)
    meta_end = 8 + int.from_bytes(data[:8], "little")
    offset = data.index(big.tobytes())
    assert offset >= meta_end and offset % 64 == 0


def test_writeable_arrays_are_encoded_as_they_were_at_encoding_time():
    """A user's array (a record or accumulator) may change after the cut, while the parts are written
    in the background: the parts must hold what it held when encoded."""
    accumulator = np.arange(1000, dtype=np.int64)
    parts = codec.encode_parts({"acc": accumulator, "records": [{"v": np.ones(3)}]})
    accumulator += 1  # the job goes on and changes it in place
    back = codec.decode(b"".join(parts))
    np.testing.assert_array_equal(back["acc"], np.arange(1000, dtype=np.int64))
    assert accumulator.flags.writeable  # left as the user had it


def test_version_2_checkpoint_files_are_still_read(tmp_path):
    import msgspec
    import zlib

    def legacy(obj):  # the format 2 encoding: arrays inline as extension 1
        if isinstance(obj, np.ndarray):
            header = msgspec.msgpack.encode((obj.dtype.str, list(obj.shape)))
            return msgspec.msgpack.Ext(1, len(header).to_bytes(4, "little") + header + obj.tobytes())
        if isinstance(obj, dict):
            return {k: legacy(v) for k, v in obj.items()}
        return obj

    body = msgspec.msgpack.encode({
        "format": 1, "checkpoint_id": 4, "job": "job", "graph": [], "created": 1.0, "savepoint": False,
        "state": legacy({"windows": {"starts": np.arange(3, dtype=np.int64)}, "source": {"position": 9}}),
    })
    data = b"ENGCKPT2" + body + len(body).to_bytes(8, "little") + zlib.crc32(body).to_bytes(4, "little")
    (tmp_path / "chk-000000000004.ckpt").write_bytes(data)
    restored = LocalCheckpointStorage(tmp_path).latest()
    assert restored.checkpoint_id == 4
    np.testing.assert_array_equal(restored.state["windows"]["starts"], np.arange(3))
    assert restored.state["source"] == {"position": 9}
