"""The `engine contracts ...` and `engine registry serve` commands."""

from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
import threading
import time

import pytest

from engine.cli import main


@pytest.fixture
def files(write_file, orders_yaml):
    return {
        "v1": write_file("v1.yaml", orders_yaml),
        "v2": write_file("v2.yaml", orders_yaml.replace("version: 1.0.0", "version: 1.1.0").replace(
            "  - name: ts\n", "  - name: coupon\n    type: string\n    required: false\n  - name: ts\n")),
        "v3": write_file("v3.yaml", orders_yaml.replace("version: 1.0.0", "version: 2.0.0").replace(
            "constraints: {ge: 1}\n  - name: amount", "constraints: {ge: 100}\n  - name: amount")),
    }


def test_check_compatible_and_incompatible(files, capsys):
    assert main(["contracts", "check", str(files["v1"]), str(files["v2"]), "--mode", "full"]) == 0
    assert "compatible" in capsys.readouterr().out
    assert main(["contracts", "check", str(files["v1"]), str(files["v2"]), str(files["v3"]),
                 "--mode", "BACKWARD_TRANSITIVE"]) == 1
    out = capsys.readouterr().out
    assert "INCOMPATIBLE" in out and "user_id" in out and "CONSTRAINT_NARROWED" in out and "v1.yaml" in out
    assert "MAJOR" not in out  # v3 is 2.0.0
    v3_minor = files["v3"].with_name("v3minor.yaml")
    v3_minor.write_text(files["v3"].read_text().replace("version: 2.0.0", "version: 1.5.0"))
    capsys.readouterr()
    assert main(["contracts", "check", str(files["v1"]), str(v3_minor), "--mode", "BACKWARD"]) == 1
    assert "needs a new MAJOR version (1.0.0 -> 1.5.0" in capsys.readouterr().out


def test_check_avro_files(write_file, capsys):
    old = write_file("old.avsc", json.dumps({"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]}))
    new = write_file("new.avsc", json.dumps({"type": "record", "name": "R", "fields": [{"name": "a", "type": "long"}]}))
    assert main(["contracts", "check", str(old), str(new), "--mode", "BACKWARD"]) == 0
    assert main(["contracts", "check", str(old), str(new), "--mode", "FORWARD"]) == 1
    assert "TYPE_MISMATCH" in capsys.readouterr().out


def test_check_reports_bad_input(write_file, capsys):
    bad = write_file("bad.yaml", "name: x\nversion: 1.0.0\nfields: [{name: a, type: nope}]\n")
    ok = write_file("ok.yaml", "name: x\nversion: 1.0.0\nfields: [{name: a, type: integer}]\n")
    assert main(["contracts", "check", str(ok), str(bad)]) == 2
    assert "unknown type 'nope'" in capsys.readouterr().err


def test_validate_jsonl_summary_exit_code_and_dead_letters(files, tmp_path, order_record, capsys):
    path = tmp_path / "orders.jsonl"
    lines = [json.dumps(order_record(user_id=i + 1)) for i in range(30)]
    lines[4] = json.dumps(order_record(amount=-1))
    lines[9] = "{broken"
    path.write_text("\n".join(lines) + "\n\n")
    dead = tmp_path / "dead.jsonl"
    assert main(["contracts", "validate", str(files["v1"]), str(path), "--dead-letter", str(dead)]) == 1
    out = capsys.readouterr().out
    assert "line 5: amount" in out and "line 10: <record>: malformed JSON" in out
    assert "INVALID: 30 record(s), 28 valid, 2 invalid" in out
    letters = [json.loads(x) for x in dead.read_text().splitlines()]
    assert [x["line"] for x in letters] == [5, 10] and letters[0]["errors"][0]["path"] == "amount"
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(json.dumps(order_record()) for _ in range(3)))
    assert main(["contracts", "validate", str(files["v1"]), str(good)]) == 0
    assert "OK: 3 record(s), 3 valid, 0 invalid" in capsys.readouterr().out
    # the three records share one order_id: the contract's `unique` rule fails
    assert main(["contracts", "validate", str(files["v1"]), str(good), "--quality"]) == 1
    out = capsys.readouterr().out
    assert "OK: 3 record(s)" in out and "[FAIL] unique(order_id): 2/3 failing" in out


def test_export_and_fingerprint(files, tmp_path, capsys):
    assert main(["contracts", "export", str(files["v1"]), "--format", "avro"]) == 0
    avro = json.loads(capsys.readouterr().out)
    assert avro["type"] == "record" and avro["name"] == "Orders"
    out = tmp_path / "orders.schema.json"
    assert main(["contracts", "export", str(files["v1"]), "--format", "jsonschema", "-o", str(out)]) == 0
    assert json.loads(out.read_text())["$schema"].endswith("2020-12/schema")
    assert main(["contracts", "fingerprint", str(files["v1"])]) == 0
    assert len(capsys.readouterr().out.strip()) == 64


def _read_lines(stream, lines: queue.Queue) -> None:
    """Put every line of ``stream`` on ``lines``, then ``None`` at its end (the process exited)."""
    for raw in stream:
        lines.put(raw.decode())
    lines.put(None)


def _serving_url(proc: subprocess.Popen, lines: queue.Queue, timeout: float = 60.0) -> str:
    """The base URL `engine registry serve` prints once it listens; a server that never starts fails the
    test after ``timeout`` s instead of hanging it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            pytest.fail(f"registry did not start within {timeout}s")
        if line is None:
            proc.wait(10)
            pytest.fail(f"registry exited with {proc.returncode}: {proc.stderr.read().decode()}")
        found = re.search(r"serving (http://\S+)", line)
        if found:
            return found.group(1)


def test_registry_serve_command_with_the_confluent_client(tmp_path):
    pytest.importorskip("confluent_kafka.schema_registry")
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

    # --port 0: the server binds a free port itself and prints it. (Probing for a free port here and
    # passing it on races with every other process on the machine binding ports in between.)
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "registry", "serve", "--port", "0",
                             "--db", str(tmp_path / "r.db")], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True)
    reader.start()
    try:
        url = _serving_url(proc, lines)
        assert re.fullmatch(r"http://127\.0\.0\.1:[1-9][0-9]*", url), url
        schema = Schema(json.dumps({"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]}), "AVRO")
        with SchemaRegistryClient({"url": url}) as client:
            schema_id = client.register_schema("r-value", schema)
            assert client.get_latest_version("r-value").schema_id == schema_id
    finally:
        proc.terminate()
        proc.wait(10)
        reader.join(10)  # it ends at the exited server's end of output; then the pipes can be closed
        proc.stdout.close()
        proc.stderr.close()
    assert (tmp_path / "r.db").exists()
