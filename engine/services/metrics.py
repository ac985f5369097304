"""Counters, gauges and latency histograms, rendered in the Prometheus text exposition format.

Each service owns a `Metrics` collection whose samples carry a constant ``service`` label; the HTTP
layer renders one or many collections with `render_prometheus`, merging families of the same name so
that ``# HELP``/``# TYPE`` appear once per family (as the format requires). Metric objects are plain
Python and not thread-safe: services update them from their event loop.

`RateMeter` is not a Prometheus type: it gives the status page a recent records/s figure without a
time-series database (Prometheus computes rates itself from the counters).
"""

from __future__ import annotations

import bisect
import math
import re
import time
from collections import deque
from typing import Iterable, Sequence

from engine.errors import ServiceError

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

# Seconds; spans sub-millisecond cache hits to multi-second batch handlers.
DEFAULT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels_text(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items()) + "}"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


class _Metric:
    kind = ""

    def __init__(self, name: str, help: str, labels: dict[str, str]):
        if not _NAME.match(name):
            raise ServiceError(f"invalid metric name {name!r}: use letters, digits, '_' and ':'")
        for key in labels:
            if not _LABEL.match(key):
                raise ServiceError(f"invalid label name {key!r} on metric {name!r}")
        self.name = name
        self.help = help
        self.labels = dict(labels)

    def samples(self) -> list[tuple[str, dict[str, str], float]]:
        raise NotImplementedError


class Counter(_Metric):
    """A monotonically increasing count (Prometheus ``counter``; the name should end in ``_total``)."""

    kind = "counter"

    def __init__(self, name: str, help: str, labels: dict[str, str]):
        super().__init__(name, help, labels)
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ServiceError(f"counter {self.name} cannot decrease (inc by {amount})")
        self.value += amount

    def samples(self):
        return [(self.name, self.labels, self.value)]


class Gauge(_Metric):
    """A value that goes up and down."""

    kind = "gauge"

    def __init__(self, name: str, help: str, labels: dict[str, str]):
        super().__init__(name, help, labels)
        self.value = 0.0

    def set(self, value: float) -> None:
        self.value = float(value)

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount

    def samples(self):
        return [(self.name, self.labels, self.value)]


class Histogram(_Metric):
    """Observations counted in fixed cumulative buckets (upper bounds, seconds for latencies)."""

    kind = "histogram"

    def __init__(self, name: str, help: str, labels: dict[str, str], buckets: Sequence[float] = DEFAULT_BUCKETS):
        super().__init__(name, help, labels)
        bounds = sorted(float(b) for b in buckets)
        if not bounds or len(set(bounds)) != len(bounds):
            raise ServiceError(f"histogram {name}: buckets must be distinct numbers, got {list(buckets)}")
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last slot is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def time(self) -> "_Timer":
        """``with histogram.time(): ...`` observes the block's wall time in seconds."""
        return _Timer(self)

    def quantile(self, q: float) -> float:
        """Estimated ``q``-quantile (the upper bound of the bucket holding it; NaN when empty)."""
        if self.count == 0:
            return math.nan
        rank = q * self.count
        seen = 0
        for bound, count in zip(self.bounds + [math.inf], self.counts):
            seen += count
            if seen >= rank:
                return bound
        return math.inf

    def samples(self):
        out = []
        cumulative = 0
        for bound, count in zip(self.bounds + [math.inf], self.counts):
            cumulative += count
            out.append((self.name + "_bucket", {**self.labels, "le": _number(bound)}, cumulative))
        out.append((self.name + "_sum", self.labels, self.sum))
        out.append((self.name + "_count", self.labels, self.count))
        return out


class _Timer:
    def __init__(self, histogram: Histogram):
        self.histogram = histogram

    def __enter__(self):
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.histogram.observe(time.perf_counter() - self.started)
        return False


class RateMeter:
    """Events per second over the last ``window`` seconds, from per-second buckets (bounded memory)."""

    def __init__(self, window: int = 10, clock=time.monotonic):
        self.window = window
        self.clock = clock
        self.buckets: deque[list[float]] = deque()  # [second, count]

    def mark(self, count: int = 1) -> None:
        second = int(self.clock())
        if self.buckets and self.buckets[-1][0] == second:
            self.buckets[-1][1] += count
        else:
            self.buckets.append([second, count])
        self._trim(second)

    def _trim(self, second: int) -> None:
        while self.buckets and self.buckets[0][0] <= second - self.window:
            self.buckets.popleft()

    def rate(self) -> float:
        now = self.clock()
        self._trim(int(now))
        return sum(count for _, count in self.buckets) / self.window


class Metrics:
    """A service's metric collection; every sample carries ``const_labels`` (e.g. ``service``)."""

    def __init__(self, const_labels: dict[str, str] | None = None):
        self.const_labels = dict(const_labels or {})
        self._metrics: dict[tuple[str, tuple], _Metric] = {}

    def _get(self, cls, name: str, help: str, labels: dict[str, str] | None, **kwargs):
        merged = {**self.const_labels, **(labels or {})}
        key = (name, tuple(sorted(merged.items())))
        metric = self._metrics.get(key)
        if metric is None:
            metric = self._metrics[key] = cls(name, help, merged, **kwargs)
        elif not isinstance(metric, cls):
            raise ServiceError(f"metric {name!r} is already registered as a {metric.kind}")
        return metric

    def counter(self, name: str, help: str, labels: dict[str, str] | None = None) -> Counter:
        return self._get(Counter, name, help, labels)

    def gauge(self, name: str, help: str, labels: dict[str, str] | None = None) -> Gauge:
        return self._get(Gauge, name, help, labels)

    def histogram(self, name: str, help: str, labels: dict[str, str] | None = None,
                  buckets: Sequence[float] = DEFAULT_BUCKETS) -> Histogram:
        return self._get(Histogram, name, help, labels, buckets=buckets)

    def __iter__(self):
        return iter(self._metrics.values())


def render_prometheus(collections: Iterable[Metrics]) -> str:
    """Prometheus text format (version 0.0.4) for all metrics of ``collections``, merged by family."""
    families: dict[str, list[_Metric]] = {}
    for collection in collections:
        for metric in collection:
            families.setdefault(metric.name, []).append(metric)
    lines = []
    for name in sorted(families):
        members = families[name]
        first = members[0]
        lines.append(f"# HELP {name} {first.help.replace(chr(92), chr(92) * 2).replace(chr(10), ' ')}")
        lines.append(f"# TYPE {name} {first.kind}")
        for metric in members:
            for sample_name, labels, value in metric.samples():
                lines.append(f"{sample_name}{_labels_text(labels)} {_number(value)}")
    return "\n".join(lines) + "\n"
