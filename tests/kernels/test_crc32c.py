"""`crc32c`: the compiled kernel (SSE4.2 and slice-by-8 paths) and its pure-Python twin, against
aiokafka's CRC-32C, the standard check value and each other; continuation, buffers of every kind and
offset, and argument errors."""

from __future__ import annotations

import array
import contextlib
import platform

import numpy as np
import pytest
from aiokafka.record.util import calc_crc32c
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import _core, _reference, kernels

IMPLS = [_core, _reference]
IDS = ["compiled", "twin"]


@contextlib.contextmanager
def compiled_path(hardware: bool):
    """The compiled kernel on its SSE4.2 path (skipped on a CPU without it) or its software path; the
    hardware path is restored afterwards wherever the CPU has it."""
    try:
        in_use = _core._crc32c_use_hardware(hardware)
        if hardware and not in_use:
            pytest.skip("this CPU (or build) has no SSE4.2 crc32 instruction")
        assert in_use == hardware
        yield _core.crc32c
    finally:
        _core._crc32c_use_hardware(True)


@pytest.fixture(params=["hardware", "software", "twin"])
def crc32c(request):
    """Each implementation in turn: the compiled kernel's two paths, then the twin."""
    if request.param == "twin":
        yield _reference.crc32c
    else:
        with compiled_path(request.param == "hardware") as function:
            yield function


@pytest.fixture(params=["hardware", "software"])
def compiled(request):
    with compiled_path(request.param == "hardware") as function:
        yield function


def test_kernels_exports_the_selected_implementation():
    assert kernels.crc32c is (_reference.crc32c if kernels.IMPLEMENTATION == "engine._reference" else _core.crc32c)


def _cpu_has_sse42() -> bool:
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return any(line.startswith("flags") and " sse4_2" in line for line in cpuinfo)
    except OSError:
        return False


def test_the_private_switch_reports_the_path_in_use():
    # Asking for the hardware says whether it is there; where Linux reports SSE4.2 it must be found,
    # or the kernel would silently run its slower path.
    available = _core._crc32c_use_hardware(True)
    if _cpu_has_sse42():
        assert available
    assert _core._crc32c_use_hardware(True) == available
    assert _core._crc32c_use_hardware(False) is False
    assert _core._crc32c_use_hardware(True) == available
    with pytest.raises(TypeError, match="enabled must be a bool"):
        _core._crc32c_use_hardware(1)


def test_check_values(crc32c):
    assert crc32c(b"123456789") == 0xE3069283  # the catalogue's check value for CRC-32C
    assert crc32c(b"") == 0
    assert crc32c(b"", 0xDEADBEEF) == 0xDEADBEEF
    assert crc32c(b"\x00" * 32) == 0x8A9136AA  # RFC 3720 (iSCSI) B.4 test vectors
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    assert crc32c(bytes(range(32))) == 0x46DD794E
    assert crc32c(bytes(range(31, -1, -1))) == 0x113FDB5C


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=5000), st.integers(0, 2**32 - 1))
def test_matches_aiokafka_and_continues(data, split):
    expected = calc_crc32c(data)
    cut = split % (len(data) + 1)
    for impl in ("hardware", "software", "twin"):
        if impl == "twin":
            function = _reference.crc32c
            assert function(data) == expected, impl
            assert function(data[cut:], function(data[:cut])) == expected, impl
            continue
        with compiled_path(impl == "hardware") as function:
            assert function(data) == expected, impl
            assert function(data[cut:], function(data[:cut])) == expected, impl


def test_random_lengths_and_every_offset(compiled):
    seed = int(np.random.SeedSequence().entropy % 2**32)
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, 5000 + 64, dtype=np.uint8).tobytes()
    view = memoryview(data)
    for length in [*range(0, 80), *rng.integers(0, 5001, 200).tolist()]:
        for offset in range(0, 16):
            piece = view[offset:offset + length]
            assert compiled(piece) == calc_crc32c(bytes(piece)), (length, offset)


def test_the_twin_at_every_offset():
    data = bytes(range(256)) * 2
    view = memoryview(data)
    for length in (0, 1, 7, 8, 9, 63, 300):
        for offset in range(0, 9):
            assert _reference.crc32c(view[offset:offset + length]) == calc_crc32c(data[offset:offset + length])


def test_large_inputs_and_the_stream_joins(compiled):
    # Sizes around the hardware path's three-stream rounds (3 x 8 KiB) and a few MB, at odd offsets.
    seed = int(np.random.SeedSequence().entropy % 2**32)
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, 3_000_007, dtype=np.uint8)
    block = 8192
    for length in (3 * block - 1, 3 * block, 3 * block + 1, 6 * block + 5, 1 << 20, len(data) - 3):
        piece = data[3:3 + length]
        assert compiled(piece) == calc_crc32c(piece.tobytes()), length
    whole = calc_crc32c(data.tobytes())
    assert compiled(data) == whole
    # Continuation across cuts that fall inside and between rounds.
    for cut in (1, block, 3 * block + 7, len(data) // 2):
        assert compiled(data[cut:], compiled(data[:cut])) == whole, cut


def test_the_two_compiled_paths_agree_on_many_sizes():
    seed = int(np.random.SeedSequence().entropy % 2**32)
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, 200_000, dtype=np.uint8).tobytes()
    sizes = rng.integers(0, len(data), 100).tolist()
    with compiled_path(False) as software:
        expected = [software(data[:n], n & 0xFFFFFFFF) for n in sizes]
    with compiled_path(True) as hardware:
        assert [hardware(data[:n], n & 0xFFFFFFFF) for n in sizes] == expected


def test_any_c_contiguous_buffer_is_summed_as_its_bytes(crc32c):
    raw = bytes(range(200)) * 3
    expected = calc_crc32c(raw)
    assert crc32c(bytearray(raw)) == expected
    assert crc32c(memoryview(raw)) == expected
    assert crc32c(np.frombuffer(raw, dtype=np.uint8)) == expected
    assert crc32c(np.frombuffer(raw, dtype=np.uint32).reshape(25, 6)) == expected  # raw bytes, any item type
    assert crc32c(array.array("B", raw)) == expected
    assert crc32c(memoryview(raw).cast("B", (30, 20))) == expected
    assert crc32c(np.zeros((0, 5))) == 0


def test_crc_accepts_numpy_integers(crc32c):
    first = crc32c(b"abc")
    assert crc32c(b"def", np.uint32(first)) == crc32c(b"abcdef")


def test_argument_errors(crc32c):
    with pytest.raises(TypeError, match="bytes-like object.*got str"):
        crc32c("123456789")
    with pytest.raises(TypeError, match="bytes-like object.*got list"):
        crc32c([1, 2, 3])
    with pytest.raises(TypeError, match="bytes-like object.*got NoneType"):
        crc32c(None)
    with pytest.raises(TypeError, match="C-contiguous.*strides"):
        crc32c(memoryview(b"abcdef")[::2])
    with pytest.raises(TypeError, match="C-contiguous"):
        crc32c(np.arange(20, dtype=np.uint8)[::3])
    with pytest.raises(TypeError, match="C-contiguous"):
        crc32c(np.zeros((4, 4), dtype=np.uint8).T)
    with pytest.raises(TypeError, match="crc must be an int"):
        crc32c(b"a", 1.0)
    with pytest.raises(TypeError, match="crc must be an int"):
        crc32c(b"a", True)
    with pytest.raises(TypeError, match="crc must be an int"):
        crc32c(b"a", "0")
    with pytest.raises(ValueError, match=r"crc must be in \[0, 2\*\*32\), got -1"):
        crc32c(b"a", -1)
    with pytest.raises(ValueError, match=r"crc must be in \[0, 2\*\*32\), got 4294967296"):
        crc32c(b"a", 2**32)


def test_a_refused_buffer_is_left_unlocked(crc32c):
    # The check takes a memoryview of the argument; refusing it must release the view, or the
    # bytearray could no longer be resized.
    data = bytearray(b"abcdef")
    with pytest.raises(ValueError):
        crc32c(data, -1)
    with pytest.raises(TypeError):
        crc32c(data, None)
    crc32c(data)
    data.extend(b"ghi")  # BufferError if any view were still exported
    assert crc32c(data) == calc_crc32c(b"abcdefghi")


def test_the_compiled_kernel_runs_without_the_gil_on_large_inputs():
    # A thread summing large inputs alongside this one: both finish with the right answers (a kernel
    # that kept the GIL would too, so this guards the buffer handling under nogil, not the timing).
    import threading

    data = np.random.default_rng(7).integers(0, 256, 1 << 20, dtype=np.uint8)
    expected = calc_crc32c(data.tobytes())
    results = []
    threads = [threading.Thread(target=lambda: results.append([_core.crc32c(data) for _ in range(5)]))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [[expected] * 5, [expected] * 5]
