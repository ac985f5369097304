"""The quality service: checks every record against rules, quarantines failures, tracks pass rates.

Per batch: each record is checked (`engine.services.rules`); records with an ``error``-severity
violation are quarantined (table ``quarantine`` keyed by envelope id, plus the ``quarantine`` channel
when configured, the violations in the ``quality.violations`` header), the rest go to ``output``
(``warn`` violations ride along in the same header). Pass rates are computed per batch (kept in memory,
the most recent ``recent_batches``) and per event-time tumbling window of ``window_ms``.

Windows are persisted in SQLite and counted exactly once per envelope id (a ``seen`` table of the ids
processed in the last ``seen_retention_ms`` of wall-clock time, default a day), so a batch redelivered
after a crash or restart does not inflate the trend. A window
closes when the watermark (max event time seen - ``window_lateness_ms`` - 1) passes its end; records
arriving later still count, and are reported as ``late``. An alert event is emitted (``alerts`` channel
when configured, and kept for ``GET /quality/alerts``) when a batch's or a closed window's pass rate
is below ``alert_threshold``, or a rule's failure fraction exceeds its ``allowed_failure_fraction``.
Batch alerts of one kind and rule are throttled to one per ``alert_cooldown_ms`` (the next one carries
``suppressed_since_last``); every closed window below the threshold alerts.

Order inside a batch, for at-least-once: stats and quarantine rows commit in one SQLite transaction,
then the outputs are published, and only then does the bus commit the batch. A redelivery re-publishes
(downstream stores de-duplicate by id) but never double-counts.
"""

from __future__ import annotations

import logging
from collections import deque
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

from engine.errors import ServiceError
from engine.services.base import Service
from engine.services.bus import EventBus, Subscription
from engine.services.envelope import Envelope, now_ms
from engine.services.http import RequestError, Route, json_response, query_int
from engine.services.rules import Rule, RuleChecker, Violation, parse_rules
from engine.services.sqlite import connect
from engine.services.store import QueryError, decode_cursor, encode_cursor

logger = logging.getLogger(__name__)

VIOLATIONS_HEADER = "quality.violations"
_json = msgspec.json.Encoder()

_SCHEMA = """
CREATE TABLE IF NOT EXISTS quarantine (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL, time INTEGER NOT NULL, schema_id TEXT, payload TEXT NOT NULL,
    violations TEXT NOT NULL, quarantined_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS windows (start INTEGER PRIMARY KEY, end INTEGER NOT NULL, total INTEGER NOT NULL,
    passed INTEGER NOT NULL, late INTEGER NOT NULL, failures TEXT NOT NULL, closed INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS seen_at ON seen (at);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


def _window_start(ts: int, size: int) -> int:
    return ts - ts % size  # Python's % floors, so negative timestamps land in the right window


class QualityService(Service):
    kind = "quality"

    def __init__(self, name: str, bus: EventBus, input: str, output: str, *, rules: list[Rule] | list[dict],
                 quarantine: str | None = None, alerts: str | None = None, database: str | Path = ":memory:",
                 alert_threshold: float = 0.95, window_ms: int = 60_000, window_lateness_ms: int = 0,
                 group: str | None = None, recent_batches: int = 100, recent_alerts: int = 200,
                 max_batch: int = 500, dedup_window: int = 100_000, max_attempts: int = 3,
                 synchronous: str = "FULL",
                 seen_retention_ms: int = 86_400_000, alert_cooldown_ms: int = 60_000, clock=now_ms):
        super().__init__(name)
        if not 0.0 <= alert_threshold <= 1.0:
            raise ServiceError(f"quality {name!r}: alert_threshold must be in [0, 1], got {alert_threshold}")
        if window_ms < 1 or window_lateness_ms < 0:
            raise ServiceError(f"quality {name!r}: window_ms must be >= 1 and window_lateness_ms >= 0")
        self.rules = rules if all(not isinstance(r, dict) for r in rules) else parse_rules(rules)
        self.checker = RuleChecker(self.rules)
        self.bus = bus
        self.input, self.output = input, output
        self.quarantine_channel, self.alerts_channel = quarantine, alerts
        self.group = group or name
        self.database = str(database)
        self.synchronous = synchronous
        self.alert_threshold = alert_threshold
        self.window_ms, self.window_lateness_ms = window_ms, window_lateness_ms
        self.max_batch, self.dedup_window, self.max_attempts = max_batch, dedup_window, max_attempts
        self.clock = clock
        self.seen_retention_ms = seen_retention_ms
        self.alert_cooldown_ms = alert_cooldown_ms
        self._last_alert: dict[str, int] = {}  # batch alert key -> when it was last raised
        self._suppressed: dict[str, int] = {}  # batch alert key -> alerts held back since then
        self.batches: deque[dict[str, Any]] = deque(maxlen=recent_batches)
        self.alerts: deque[dict[str, Any]] = deque(maxlen=recent_alerts)
        self.subscription: Subscription | None = None
        self._db = None
        self._batch_seq = 0
        self.watermark: int | None = None
        self.passed = self.metrics.counter("engine_quality_records_passed_total", "Records that passed.")
        self.quarantined = self.metrics.counter("engine_quality_records_quarantined_total", "Records quarantined.")
        self.alert_count = self.metrics.counter("engine_quality_alerts_total", "Alert events raised.")
        self.pass_rate = self.metrics.gauge("engine_quality_batch_pass_rate", "Pass rate of the last batch.")
        self.rule_failures = {r.name: self.metrics.counter("engine_quality_rule_failures_total",
                                                           "Records failing a rule.", {"rule": r.name})
                              for r in self.rules}
        self.add_check("database", lambda: self._db is not None)
        self.add_check("subscription", lambda: self.subscription is not None and self.subscription.running)

    # --- lifecycle ------------------------------------------------------------------------------------

    async def on_start(self) -> None:
        db = connect(self.database, self.synchronous)
        db.executescript(_SCHEMA)
        row = db.execute("SELECT value FROM meta WHERE key = 'watermark'").fetchone()
        self.watermark = None if row is None else row[0]
        self._db = db
        self.subscription = await self.bus.subscribe(self.input, self.group, self.handle_batch,
                                                     max_batch=self.max_batch, dedup_window=self.dedup_window,
                                                     max_attempts=self.max_attempts)
        self.watch(self.subscription)

    async def on_stop(self, timeout: float) -> None:
        if self.subscription is not None:
            await self.subscription.stop(timeout)
        if self._db is not None:
            db, self._db = self._db, None
            db.close()

    # --- the batch handler ----------------------------------------------------------------------------

    async def handle_batch(self, batch: list[Envelope]) -> None:
        with self.batch_latency.time():
            await self._handle(batch)

    async def _handle(self, batch: list[Envelope]) -> None:
        now = self.clock()
        good, bad = [], []
        rule_fail = {r.name: 0 for r in self.rules}
        checked = []
        for env in batch:
            violations = self.checker.check(env, now)
            for v in violations:
                rule_fail[v.rule] += 1
            checked.append((env, violations))
            if any(v.severity == "error" for v in violations):
                bad.append((env, violations))
            else:
                good.append(env.with_headers(**{VIOLATIONS_HEADER: _json.encode(violations).decode()})
                            if violations else env)
        batch_violations = self.checker.check_batch(len(batch))
        for v in batch_violations:
            rule_fail[v.rule] += 1
        closed = self._persist(checked, bad)

        self._batch_seq += 1
        rate = len(good) / len(batch) if batch else 1.0
        summary = {"batch": self._batch_seq, "at": now, "total": len(batch), "passed": len(good),
                   "quarantined": len(bad), "pass_rate": round(rate, 6),
                   "failures": {k: v for k, v in rule_fail.items() if v},
                   "batch_violations": [v.message for v in batch_violations]}
        self.batches.append(summary)
        self.pass_rate.set(rate)
        self.records_in.inc(len(batch))
        self.throughput.mark(len(batch))
        self.passed.inc(len(good))
        self.quarantined.inc(len(bad))
        for rule, count in rule_fail.items():
            if count:
                self.rule_failures[rule].inc(count)

        alerts = self._throttle(self._batch_alerts(summary, rule_fail, len(batch), batch_violations), now)
        for window in closed:
            alerts.extend(self._window_alerts(window))

        if good:
            await self.bus.publish(self.output, good)
            self.records_out.inc(len(good))
        if bad and self.quarantine_channel:
            await self.bus.publish(self.quarantine_channel, [
                env.with_headers(**{VIOLATIONS_HEADER: _json.encode(v).decode()}) for env, v in bad])
        if alerts:
            self.alerts.extend(alerts)
            self.alert_count.inc(len(alerts))
            for alert in alerts:
                self._log(logging.WARNING, alert["message"], "quality.alert", alert=alert["kind"])
            if self.alerts_channel:
                await self.bus.publish(self.alerts_channel, [
                    Envelope(id=alert["id"], source=self.name, time=now, payload=alert,
                             headers={"severity": alert["severity"]}) for alert in alerts])

    def _persist(self, checked: list[tuple[Envelope, list[Violation]]],
                 bad: list[tuple[Envelope, list[Violation]]]) -> list[dict[str, Any]]:
        """Quarantine rows, window counts and the watermark in one transaction; returns windows closed."""
        db = self._db
        if db is None:
            raise ServiceError(f"quality {self.name!r} is not running")
        now = self.clock()
        closed = []
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT OR IGNORE INTO quarantine (id, source, time, schema_id, payload, violations, quarantined_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(env.id, env.source, env.time, env.schema_id, _json.encode(env.payload).decode(),
                  _json.encode(v).decode(), now) for env, v in bad])
            counted = self._already_counted(db, [env.id for env, _ in checked])
            fresh_ids = []
            deltas: dict[int, list] = {}
            for env, violations in checked:
                start = _window_start(env.time, self.window_ms)
                if env.id in counted:
                    continue  # already counted (a redelivery, or a repeat inside this batch)
                counted.add(env.id)
                fresh_ids.append((env.id, now))
                d = deltas.setdefault(start, [0, 0, 0, {}])
                d[0] += 1
                d[1] += not any(v.severity == "error" for v in violations)
                if self.watermark is not None and start + self.window_ms - 1 <= self.watermark:
                    d[2] += 1
                for v in violations:
                    d[3][v.rule] = d[3].get(v.rule, 0) + 1
                candidate = env.time - self.window_lateness_ms - 1
                self.watermark = candidate if self.watermark is None else max(self.watermark, candidate)
            db.executemany("INSERT INTO seen (id, at) VALUES (?, ?)", fresh_ids)
            for start, (total, passed, late, failures) in deltas.items():
                row = db.execute("SELECT total, passed, late, failures FROM windows WHERE start = ?", (start,)).fetchone()
                if row is not None:
                    merged = msgspec.json.decode(row[3])
                    for k, v in failures.items():
                        merged[k] = merged.get(k, 0) + v
                    db.execute("UPDATE windows SET total = ?, passed = ?, late = ?, failures = ? WHERE start = ?",
                               (row[0] + total, row[1] + passed, row[2] + late, _json.encode(merged).decode(), start))
                else:
                    db.execute("INSERT INTO windows (start, end, total, passed, late, failures, closed) "
                               "VALUES (?, ?, ?, ?, ?, ?, 0)",
                               (start, start + self.window_ms, total, passed, late, _json.encode(failures).decode()))
            # Redeliveries come from batches that were not committed, i.e. recently processed ones: ids are
            # remembered for seen_retention_ms of processing time (event time would be wrong: partitions
            # are consumed at different speeds, so a redelivered record can be far behind the watermark).
            db.execute("DELETE FROM seen WHERE at < ?", (now - self.seen_retention_ms,))
            if self.watermark is not None:
                db.execute("INSERT INTO meta (key, value) VALUES ('watermark', ?) "
                           "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (self.watermark,))
                for row in db.execute("SELECT start, end, total, passed, late, failures FROM windows "
                                      "WHERE closed = 0 AND end - 1 <= ?", (self.watermark,)).fetchall():
                    closed.append(self._window_dict(row, closed=True))
                db.execute("UPDATE windows SET closed = 1 WHERE closed = 0 AND end - 1 <= ?", (self.watermark,))
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return closed

    @staticmethod
    def _already_counted(db, ids: list[str]) -> set[str]:
        """The subset of ``ids`` already in the ``seen`` table (looked up in chunks, not one by one)."""
        found: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            found.update(row[0] for row in db.execute(
                f"SELECT id FROM seen WHERE id IN ({','.join('?' * len(chunk))})", chunk))
        return found

    @staticmethod
    def _window_dict(row, closed: bool) -> dict[str, Any]:
        start, end, total, passed, late, failures = row[:6]
        return {"start": start, "end": end, "total": total, "passed": passed, "late": late,
                "pass_rate": round(passed / total, 6) if total else 1.0,
                "failures": msgspec.json.decode(failures) if isinstance(failures, str) else failures,
                "closed": closed}

    def _alert(self, kind: str, key: str, severity: str, message: str, **fields) -> dict[str, Any]:
        return {"id": f"{self.name}:{kind}:{key}", "kind": kind, "service": self.name, "severity": severity,
                "message": message, "at": self.clock(), **fields}

    def _batch_alerts(self, summary, rule_fail, size, batch_violations) -> list[dict[str, Any]]:
        alerts = []
        key = f"{self.group}-{summary['batch']}-{summary['at']}"
        if size and summary["pass_rate"] < self.alert_threshold:
            alerts.append(self._alert("batch_pass_rate", key, "error",
                                      f"batch pass rate {summary['pass_rate']:.3f} is below {self.alert_threshold}",
                                      pass_rate=summary["pass_rate"], total=size))
        for rule in self.rules:
            failed = rule_fail[rule.name]
            fraction = failed / size if size else 0.0
            if failed and fraction > rule.allowed_failure_fraction:
                alerts.append(self._alert("rule_breached", f"{key}-{rule.name}", rule.severity,
                                          f"rule {rule.name} failed for {failed}/{size} records "
                                          f"(allowed fraction {rule.allowed_failure_fraction})",
                                          rule=rule.name, failed=failed, total=size))
        return alerts

    def _throttle(self, alerts: list[dict[str, Any]], now: int) -> list[dict[str, Any]]:
        """At most one batch alert per kind and rule per ``alert_cooldown_ms``; the next one that goes
        out says how many were held back (so a bad stream does not flood the alerts channel)."""
        out = []
        for alert in alerts:
            key = f"{alert['kind']}:{alert.get('rule', '')}"
            last = self._last_alert.get(key)
            if last is not None and now - last < self.alert_cooldown_ms:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                continue
            self._last_alert[key] = now
            alert["suppressed_since_last"] = self._suppressed.pop(key, 0)
            out.append(alert)
        return out

    def _window_alerts(self, window: dict[str, Any]) -> list[dict[str, Any]]:
        if window["total"] and window["pass_rate"] < self.alert_threshold:
            return [self._alert("window_pass_rate", str(window["start"]), "error",
                                f"window [{window['start']}, {window['end']}) pass rate {window['pass_rate']:.3f} "
                                f"is below {self.alert_threshold}", window=window)]
        return []

    # --- reads ----------------------------------------------------------------------------------------

    def _require_db(self):
        if self._db is None:
            raise RequestError(f"quality {self.name!r} is not running (state {self.state})", status=503)
        return self._db

    def windows(self, limit: int = 50) -> list[dict[str, Any]]:
        """The most recent ``limit`` windows (newest first) with pass rates and failures per rule."""
        rows = self._require_db().execute(
            "SELECT start, end, total, passed, late, failures, closed FROM windows ORDER BY start DESC LIMIT ?",
            (limit,)).fetchall()
        return [self._window_dict(r, bool(r[6])) for r in rows]

    def quarantine_page(self, limit: int, cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        params: list[Any] = []
        where = ""
        if cursor:
            where = "WHERE seq > ?"
            params.append(decode_cursor(cursor))
        rows = self._require_db().execute(
            "SELECT id, source, time, schema_id, payload, violations, quarantined_at, seq FROM quarantine "
            f"{where} ORDER BY seq LIMIT ?", (*params, limit + 1)).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        items = [{"id": r[0], "source": r[1], "time": r[2], "schema_id": r[3],
                  "payload": msgspec.json.decode(r[4]), "violations": msgspec.json.decode(r[5]),
                  "quarantined_at": r[6]} for r in rows]
        return items, encode_cursor(rows[-1][7]) if more else None

    def quarantine_count(self) -> int:
        return self._require_db().execute("SELECT count(*) FROM quarantine").fetchone()[0]

    def summary(self) -> str:
        if self._db is None:
            return ""
        last = self.batches[-1]["pass_rate"] if self.batches else None
        rate = "no batches yet" if last is None else f"last batch pass rate {last:.1%}"
        return f"{rate}, {self.quarantine_count()} quarantined, {len(self.alerts)} alerts"

    def details(self) -> dict[str, Any]:
        last = self.batches[-1] if self.batches else None
        return {"input": self.input, "output": self.output, "watermark": self.watermark,
                "last_batch_pass_rate": None if last is None else last["pass_rate"],
                "quarantined_total": self.quarantine_count() if self._db is not None else None,
                "subscription": None if self.subscription is None else self.subscription.statistics()}

    # --- HTTP -----------------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [Route("GET", "/quality/trend", self._http_trend), Route("GET", "/quality/alerts", self._http_alerts),
                Route("GET", "/quality/rules", self._http_rules),
                # Quarantined payloads are the raw bad data: an admin endpoint.
                Route("GET", "/quality/quarantine", self._http_quarantine, protected=True)]

    async def _http_trend(self, request: web.Request) -> web.Response:
        limit = query_int(request, "limit", 50, 1, 1000)
        return json_response({"service": self.name, "alert_threshold": self.alert_threshold,
                              "window_ms": self.window_ms, "watermark": self.watermark,
                              "windows": self.windows(limit), "batches": list(self.batches)[-limit:]})

    async def _http_alerts(self, request: web.Request) -> web.Response:
        limit = query_int(request, "limit", 50, 1, 1000)
        return json_response({"alerts": list(self.alerts)[-limit:]})

    async def _http_rules(self, request: web.Request) -> web.Response:
        return json_response({"rules": msgspec.to_builtins(self.rules)})

    async def _http_quarantine(self, request: web.Request) -> web.Response:
        limit = query_int(request, "limit", 100, 1, 1000)
        try:
            items, cursor = self.quarantine_page(limit, request.query.get("cursor") or None)
        except QueryError as exc:
            raise RequestError(str(exc)) from None
        return json_response({"items": items, "next_cursor": cursor, "total": self.quarantine_count()})
