"""The status page's "Flows" section fed by running dataflows."""

from __future__ import annotations

import asyncio

from connectors.memory import CollectionSource, CollectSink
from engine import BoundedOutOfOrderness, Dataflow, Tumbling, agg
from engine.services.providers import dataflow_provider
from engine.services.status import render_status_page


def make_flow() -> Dataflow:
    flow = Dataflow("clicks")
    records = [{"user": f"u{i % 3}", "ts": i * 100} for i in range(50)] + [{"user": "u1", "ts": 0}]
    (
        flow.source(CollectionSource(records, batch_size=10), timestamp="ts", watermark=BoundedOutOfOrderness(0))
        .key_by("user").window(Tumbling(1_000)).aggregate(n=agg.count()).sink(CollectSink())
    )
    return flow


def test_rows_show_state_counts_and_watermark_and_render_on_the_page():
    flow = make_flow()
    provider = dataflow_provider(flow)
    assert provider() == [{"flow": "clicks", "state": "not started", "records_in": 0, "records_out": 0,
                           "late_records": 0, "watermark": None}]
    flow.run()
    [row] = provider()
    assert row["state"] == "finished" and row["records_in"] == 51 and row["late_records"] == 1
    assert row["watermark"] == 2**63 - 1  # every input ended
    page = render_status_page("platform", [], provider(), None, [], None)
    assert "clicks" in page and "finished" in page


async def test_a_running_flow_reports_its_current_watermark():
    flow = make_flow()
    provider = dataflow_provider(flow)
    task = asyncio.create_task(flow.run_async(batch_size=1))
    seen = []
    while not task.done():
        rows = provider()
        if rows[0]["state"] == "running":
            seen.append(rows[0]["watermark"])
        await asyncio.sleep(0)
    await task
    assert seen and seen == sorted(seen)  # watermarks only move forward while it runs
