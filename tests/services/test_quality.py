"""Quality: each rule's semantics, quarantine with violations, pass rates per batch and window, alerts,
exact window counts under redelivery, HTTP trend and quarantine listing."""

import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer

from engine.services.bus import InMemoryBus
from engine.services.envelope import Envelope
from engine.services.http import make_service_app
from engine.services.quality import VIOLATIONS_HEADER, QualityService
from engine.services.rules import RuleChecker, RuleDefinitionError, parse_rules

from tests.waiting import wait_until

NOW = 1_000_000


def env(i, t=None, **payload):
    return Envelope(id=f"q{i}", source="test", time=NOW if t is None else t, payload=payload)


def violations(rules, *envs):
    checker = RuleChecker(parse_rules(rules))
    return [[v.message for v in checker.check(e, NOW)] for e in envs]


def test_record_rules():
    assert violations([{"rule": "not_null", "field": "a"}], env(1, a=0), env(2, a=None), env(3)) == [
        [], ["a is null or missing"], ["a is null or missing"]]
    assert violations([{"rule": "between", "field": "x", "min": 0, "max": 10}],
                      env(1, x=10), env(2, x=-1), env(3, x=11.5), env(4, x="5"), env(5, x=True), env(6)) == [
        [], ["x=-1 is below the minimum 0.0"], ["x=11.5 is above the maximum 10.0"],
        ["x must be a number, got '5'"], ["x must be a number, got True"], []]
    assert violations([{"rule": "in_set", "field": "c", "values": ["DE", "FR"]}],
                      env(1, c="DE"), env(2, c="XX"), env(3, c=["DE"])) == [
        [], ["c='XX' is not one of ['DE', 'FR']"], ["c=['DE'] is not one of ['DE', 'FR']"]]
    assert violations([{"rule": "regex", "field": "e", "pattern": "^[^@]+@[^@]+$"}],
                      env(1, e="a@b"), env(2, e="nope"), env(3, e=5)) == [
        [], ["e='nope' does not match /^[^@]+@[^@]+$/"], ["e must be a string, got 5"]]
    assert violations([{"rule": "freshness", "max_age_ms": 100}], env(1, t=NOW - 100), env(2, t=NOW - 101)) == [
        [], ["record is 101 ms old (max 100)"]]
    checker = RuleChecker(parse_rules([{"rule": "unique", "field": "k", "window": 2}]))
    out = [[v.message for v in checker.check(e, NOW)] for e in
           [env(1, k="a"), env(1, k="a"), env(2, k="a"), env(3, k="b"), env(4, k="c"), env(5, k="a")]]
    # same envelope again is not a duplicate; a different id is; "a" fell out of the 2-value window
    assert out == [[], [], ["k='a' was already seen in envelope 'q1'"], [], [], []]
    assert [v.message for v in RuleChecker(parse_rules([{"rule": "row_count", "min": 2}])).check_batch(1)] == [
        "batch has 1 records (min 2)"]


def test_rule_definitions_are_validated_with_a_path():
    with pytest.raises(RuleDefinitionError, match=r"<= 1.0 - at `\$\[0\].allowed_failure_fraction`"):
        parse_rules([{"rule": "not_null", "field": "a", "allowed_failure_fraction": 2}])
    with pytest.raises(RuleDefinitionError, match=r"Object missing required field `field` - at `\$\[1\]`"):
        parse_rules([{"rule": "not_null", "field": "a"}, {"rule": "regex", "pattern": "x"}])


RULES = [{"rule": "not_null", "field": "user"},
         {"rule": "between", "field": "amount", "min": 0},
         {"rule": "regex", "field": "email", "pattern": "@", "severity": "warn", "allowed_failure_fraction": 0.5}]


async def make_quality(tmp_path, **kwargs):
    bus = InMemoryBus()
    for ch in ("good", "bad", "alerts"):
        bus.declare_group(ch, "t")
    svc = QualityService("quality", bus, "in", "good", rules=RULES, quarantine="bad", alerts="alerts",
                         database=tmp_path / "q.db", alert_threshold=0.8, window_ms=1000,
                         clock=lambda: NOW, **kwargs)
    await svc.start()
    return bus, svc


async def test_quarantine_pass_rates_windows_and_alerts(tmp_path):
    bus, svc = await make_quality(tmp_path)
    batch = [env(1, t=100, user="a", amount=5, email="a@x"),
             env(2, t=200, user=None, amount=5, email="b@x"),      # error -> quarantined
             env(3, t=300, user="c", amount=-1, email="c@x"),      # error -> quarantined
             env(4, t=400, user="d", amount=1, email="nope"),      # warn only -> passes with header
             env(5, t=1500, user="e", amount=2, email="e@x")]
    await bus.publish("in", batch)
    await wait_until(lambda: svc.records_in.value == 5)
    good = bus.read_all("good")
    assert [e.id for e in good] == ["q1", "q4", "q5"]
    assert "regex(email)" in good[1].headers[VIOLATIONS_HEADER]
    bad = bus.read_all("bad")
    assert [e.id for e in bad] == ["q2", "q3"]
    assert msgspec.json.decode(bad[1].headers[VIOLATIONS_HEADER])[0]["message"] == "amount=-1 is below the minimum 0.0"
    assert svc.batches[-1]["pass_rate"] == 0.6
    kinds = sorted(a["kind"] for a in svc.alerts)
    # regex fails 1/5 <= 0.5: allowed. Window [0, 1000) closed at t=1500 (watermark 1499): 2/4 passed.
    assert kinds == ["batch_pass_rate", "rule_breached", "rule_breached", "window_pass_rate"]
    await bus.publish("in", [env(6, t=2600, user="f", amount=1, email="f@x")])
    await wait_until(lambda: svc.records_in.value == 6)
    windows = {w["start"]: w for w in svc.windows()}
    assert windows[0]["total"] == 4 and windows[0]["passed"] == 2 and windows[0]["closed"]
    assert windows[0]["failures"] == {"not_null(user)": 1, "between(amount)": 1, "regex(email)": 1}
    assert windows[1000]["closed"] and windows[1000]["pass_rate"] == 1.0
    assert not windows[2000]["closed"]
    assert any(a["kind"] == "window_pass_rate" and a["window"]["start"] == 0 for a in svc.alerts)
    assert [e.payload["kind"] for e in bus.read_all("alerts")].count("window_pass_rate") == 1
    await svc.stop()


async def test_redelivery_after_restart_is_not_double_counted(tmp_path):
    bus, svc = await make_quality(tmp_path)
    records = [env(i, t=100 + i, user="u", amount=i - 2) for i in range(6)]  # q0, q1 fail
    await bus.publish("in", records)
    await wait_until(lambda: svc.records_in.value == 6)
    await svc.stop()
    svc2 = QualityService("quality", bus, "in", "good", rules=RULES, quarantine="bad",
                          database=tmp_path / "q.db", window_ms=1000, clock=lambda: NOW, dedup_window=0)
    await svc2.start()
    await bus.publish("in", records[:3])  # redelivered after the restart (fresh in-memory dedup)
    await wait_until(lambda: svc2.records_in.value == 3)
    [window] = svc2.windows()
    assert window["total"] == 6 and window["passed"] == 4
    assert svc2.quarantine_count() == 2
    await svc2.stop()


async def test_http_trend_and_protected_quarantine_listing(tmp_path):
    bus, svc = await make_quality(tmp_path)
    await bus.publish("in", [env(i, t=i, user=None if i % 2 else "u", amount=1) for i in range(7)])
    await wait_until(lambda: svc.records_in.value == 7)
    async with TestClient(TestServer(make_service_app(svc, token="tok"))) as client:
        trend = await (await client.get("/quality/trend")).json()
        assert trend["windows"][0]["total"] == 7 and trend["batches"][-1]["quarantined"] == 3
        assert (await client.get("/quality/quarantine")).status == 401
        auth = {"Authorization": "Bearer tok"}
        page = await (await client.get("/quality/quarantine", params={"limit": "2"}, headers=auth)).json()
        assert [i["id"] for i in page["items"]] == ["q1", "q3"] and page["total"] == 3
        assert page["items"][0]["violations"][0]["rule"] == "not_null(user)"
        page = await (await client.get("/quality/quarantine", params={"limit": "2", "cursor": page["next_cursor"]},
                                       headers=auth)).json()
        assert [i["id"] for i in page["items"]] == ["q5"] and page["next_cursor"] is None
        resp = await client.get("/quality/quarantine", params={"cursor": "zz"}, headers=auth)
        assert resp.status == 400 and "invalid cursor" in (await resp.json())["error"]
        rules = await (await client.get("/quality/rules")).json()
        assert rules["rules"][0] == {"rule": "not_null", "field": "user", "severity": "error",
                                     "allowed_failure_fraction": 0.0}
    await svc.stop()


async def test_batch_alerts_are_throttled_and_count_what_they_held_back(tmp_path):
    now = [NOW]
    bus = InMemoryBus()
    svc = QualityService("quality", bus, "in", "good", rules=[{"rule": "not_null", "field": "user"}],
                         database=tmp_path / "q.db", alert_threshold=0.9, window_ms=10**9,
                         alert_cooldown_ms=1000, clock=lambda: now[0])
    await svc.start()
    for i in range(3):  # three bad batches within the cooldown
        await bus.publish("in", [env(10 * i, user=None), env(10 * i + 1, user="u")])
        await wait_until(lambda: svc.records_in.value == 2 * (i + 1))
    now[0] += 1000
    await bus.publish("in", [env(99, user=None)])
    await wait_until(lambda: svc.records_in.value == 7)
    rate_alerts = [a for a in svc.alerts if a["kind"] == "batch_pass_rate"]
    assert [a["suppressed_since_last"] for a in rate_alerts] == [0, 2]
    await svc.stop()


def test_store_count_is_exact_across_inserts_duplicates_and_deletes(tmp_path):
    store = RecordStoreForCount(tmp_path / "c.db", indexes=["user"]).open()
    store.put_many([env(i, user="u") for i in range(5)])
    store.put_many([env(i, user="u") for i in range(3, 8)])
    assert store.count() == 8
    assert store.delete("q4") and not store.delete("q4")
    assert store.count() == 7
    store.close()
    assert RecordStoreForCount(tmp_path / "c.db", indexes=["user"]).open().count() == 7


from engine.services.store import RecordStore as RecordStoreForCount  # noqa: E402
