"""Metrics: Prometheus text format (parsed back), histogram buckets, rate meter."""

import math

import pytest

from engine.errors import ServiceError
from engine.services.metrics import Metrics, RateMeter, render_prometheus


def parse(text):
    """Prometheus text -> ({family: type}, {sample line name+labels: value}); checks HELP/TYPE once each."""
    types, samples, helps = {}, {}, set()
    for line in text.strip().splitlines():
        if line.startswith("# HELP "):
            name = line.split()[2]
            assert name not in helps, f"duplicate HELP for {name}"
            helps.add(name)
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert name not in types, f"duplicate TYPE for {name}"
            types[name] = kind
        else:
            key, value = line.rsplit(" ", 1)
            samples[key] = float(value)
    return types, samples


def test_counters_gauges_histograms_render_and_merge_families():
    a, b = Metrics({"service": "a"}), Metrics({"service": "b"})
    a.counter("jobs_total", "Jobs.").inc(3)
    b.counter("jobs_total", "Jobs.").inc()
    g = a.gauge("queue_depth", "Depth.", {"queue": 'we"ird'})
    g.set(7)
    g.dec(2)
    h = a.histogram("latency_seconds", "Latency.", buckets=(0.1, 1.0))
    for v in (0.05, 0.5, 0.5, 3.0):
        h.observe(v)
    types, samples = parse(render_prometheus([a, b]))
    assert types == {"jobs_total": "counter", "queue_depth": "gauge", "latency_seconds": "histogram"}
    assert samples['jobs_total{service="a"}'] == 3
    assert samples['jobs_total{service="b"}'] == 1
    assert samples['queue_depth{service="a",queue="we\\"ird"}'] == 5
    assert samples['latency_seconds_bucket{service="a",le="0.1"}'] == 1
    assert samples['latency_seconds_bucket{service="a",le="1"}'] == 3
    assert samples['latency_seconds_bucket{service="a",le="+Inf"}'] == 4
    assert samples['latency_seconds_count{service="a"}'] == 4
    assert samples['latency_seconds_sum{service="a"}'] == pytest.approx(4.05)
    assert h.quantile(0.5) == 1.0 and h.quantile(0.2) == 0.1 and math.isinf(h.quantile(1.0))


def test_invalid_metrics_are_refused():
    m = Metrics()
    with pytest.raises(ServiceError, match="invalid metric name"):
        m.counter("bad-name", "x")
    with pytest.raises(ServiceError, match="cannot decrease"):
        m.counter("ok_total", "x").inc(-1)
    m.gauge("thing", "x")
    with pytest.raises(ServiceError, match="already registered as a gauge"):
        m.counter("thing", "x")


def test_rate_meter_counts_the_recent_window_only():
    now = [100.0]
    meter = RateMeter(window=10, clock=lambda: now[0])
    meter.mark(50)
    now[0] = 105.0
    meter.mark(50)
    assert meter.rate() == 10.0
    now[0] = 112.0
    assert meter.rate() == 5.0
    now[0] = 200.0
    assert meter.rate() == 0.0
