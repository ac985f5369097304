"""engine: an embeddable stream-processing engine with compiled kernels and an asyncio runtime.

The public API is re-exported here; `__all__` is explicit and sorted (a test checks it).
"""

from engine import errors
from engine.errors import EngineError

__version__ = "0.1.0"

__all__ = [
    "EngineError",
    "__version__",
    "errors",
]
