# cython: language_level=3
# distutils: language = c++
"""Compiled kernels of the engine; the contract is in `_core.pyi` and `SEMANTICS.md`.

One include file per concept, all compiled into this one extension module. Each public function or
class checks its arguments with `engine._checks` (shared with the twin in `engine/_reference.py`), then
runs a typed loop over memoryviews without the GIL-bound Python objects. `cdivision` is on for speed,
so every floor division or modulo of possibly negative time goes through `floor_div`/`floor_mod` in
`_kernels/common.pxi`.
"""

include "_kernels/common.pxi"
include "_kernels/windows.pxi"
include "_kernels/watermarks.pxi"
include "_kernels/interning.pxi"
include "_kernels/aggregation.pxi"
include "_kernels/sessions.pxi"
include "_kernels/join.pxi"
include "_kernels/patterns.pxi"
include "_kernels/flatjson.pxi"
include "_kernels/gather.pxi"
include "_kernels/jsonrows.pxi"
include "_kernels/kafkarecords.pxi"
include "_kernels/kafkajson.pxi"
include "_kernels/crc32c.pxi"
