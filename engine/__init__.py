"""engine: an embeddable stream-processing engine with compiled kernels and an asyncio runtime.

The public API is re-exported here; `__all__` is explicit and sorted (a test checks it).
"""

from engine import errors
from engine.aggregations import Aggregation, agg
from engine.batch import Batch
from engine.dataflow import Dataflow, JoinedStream, KeyedStream, Step, Stream, WindowedStream, WindowResultStream
from engine.dead_letters import DeadLetter
from engine.errors import (
    ConnectorError,
    EngineError,
    FlowDefinitionError,
    JobFailedError,
    RecordError,
)
from engine.io import Sink, Source, SourceChunk
from engine.time import BoundedOutOfOrderness
from engine.windows import Session, Sliding, Tumbling

__version__ = "0.1.0"

__all__ = [
    "Aggregation",
    "Batch",
    "BoundedOutOfOrderness",
    "ConnectorError",
    "Dataflow",
    "DeadLetter",
    "EngineError",
    "FlowDefinitionError",
    "JobFailedError",
    "JoinedStream",
    "KeyedStream",
    "RecordError",
    "Session",
    "Sink",
    "Sliding",
    "Source",
    "SourceChunk",
    "Step",
    "Stream",
    "Tumbling",
    "WindowResultStream",
    "WindowedStream",
    "__version__",
    "agg",
    "errors",
]
