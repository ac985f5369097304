"""The status page in a real browser: headless Chromium (Debian package ``chromium``) loads ``/`` from a
running platform and the test checks what the rendered DOM shows. A missing Chromium is installed from
Debian's packages (as root); when that is impossible the test fails rather than skipping."""

import asyncio
import html.parser
import os
import shutil
import subprocess

import pytest

from engine.services.config import parse_config
from engine.services.envelope import Envelope
from engine.services.platform import Platform

from tests.waiting import wait_until

BROWSER = "chromium"


class Tables(html.parser.HTMLParser):
    """Collects every <table id=...> as a list of rows of cell texts, and the text of id'd elements."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.texts: dict[str, str] = {}
        self._table = None
        self._row = None
        self._cell = None
        self._ids: list[tuple[str, str, list[str]]] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and "id" in attrs:
            self._table = self.tables.setdefault(attrs["id"], [])
        elif tag == "tr" and self._table is not None:
            self._row = []
            self._table.append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        if "id" in attrs:
            self._ids.append((tag, attrs["id"], []))

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None
        if self._ids and self._ids[-1][0] == tag:
            _, ident, parts = self._ids.pop()
            self.texts[ident] = "".join(parts).strip()

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        for _, _, parts in self._ids:
            parts.append(data)


def ensure_browser() -> str:
    """The Chromium binary; installed from Debian's packages when missing (the project installs what its
    tests need, as it does the Kafka broker). Fails, never skips, when it cannot be had."""
    binary = shutil.which(BROWSER)
    if binary is not None:
        return binary
    apt = shutil.which("apt-get")
    if apt is not None and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in ([apt, "update", "-qq"], [apt, "install", "-y", "-qq", "--no-install-recommends", BROWSER]):
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                pytest.fail(f"installing {BROWSER!r} failed: {' '.join(command)}: {done.stderr[-2000:]}", pytrace=False)
        binary = shutil.which(BROWSER)
    if binary is None:
        pytest.fail(f"the browser test needs the Debian package {BROWSER!r} (apt-get install -y chromium)",
                    pytrace=False)
    return binary


async def dump_dom(url: str, profile_dir) -> str:
    binary = await asyncio.to_thread(ensure_browser)
    proc = await asyncio.create_subprocess_exec(
        binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
        f"--user-data-dir={profile_dir}", "--dump-dom", url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 90)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    return out.decode()


async def test_status_page_in_headless_chromium(tmp_path):
    config = parse_config({
        "name": "Orders <platform>",  # escaped, not interpreted
        "http": {"port": 0},
        "services": [
            {"kind": "quality", "name": "quality", "input": "enriched", "output": "validated",
             "rules": [{"rule": "not_null", "field": "user"}], "database": ":memory:"},
            {"kind": "serving", "name": "serving", "input": "validated", "database": ":memory:"},
        ]}, base_dir=tmp_path)

    def flows():
        return [{"flow": "clicks-per-user", "watermark": 1_700_000_060_000, "late_records": 2}]

    def dag_runs():
        raise ConnectionError("metadata store offline")

    async with Platform(config, flows_provider=flows, dag_runs_provider=dag_runs) as platform:
        await platform.bus.publish("enriched", [
            Envelope(id=f"e{i}", source="t", time=i, payload={"user": None if i == 0 else "u"}) for i in range(8)])
        await wait_until(lambda: platform.service("serving").records_in.value == 7)
        await platform.service("serving").subscription.stop()  # serving no longer ready
        dom = await dump_dom(platform.url + "/", tmp_path / "chromium-profile")

    page = Tables()
    page.feed(dom)
    assert "<h1>Orders &lt;platform&gt;</h1>" in dom
    header, *rows = page.tables["services"]
    assert header[:5] == ["name", "kind", "state", "healthy", "ready"]
    by_name = {row[0]: dict(zip(header, row)) for row in rows}
    assert set(by_name) == {"quality", "serving"}
    assert by_name["quality"]["state"] == "running" and by_name["quality"]["healthy"] == "yes"
    assert by_name["quality"]["ready"] == "yes"
    assert by_name["quality"]["records_in"] == "8" and by_name["quality"]["records_out"] == "7"
    assert by_name["serving"]["records_in"] == "7" and by_name["serving"]["ready"] == "no"
    assert by_name["quality"]["throughput"].endswith("/s")
    assert by_name["serving"]["summary"] == "7 records stored, 0 duplicates ignored"
    assert by_name["quality"]["summary"].endswith("1 quarantined, 2 alerts")
    assert page.texts["platform-ready"] == "not ready" and page.texts["platform-health"] == "healthy"
    flow_header, flow_row = page.tables["flows-table"]
    assert dict(zip(flow_header, flow_row)) == {"flow": "clicks-per-user", "watermark": "1700000060000",
                                               "late_records": "2"}
    assert page.texts["dag-runs"] == "unavailable: ConnectionError: metadata store offline"
