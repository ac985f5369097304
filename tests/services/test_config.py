"""platform.yaml: validation errors with paths, environment references, paths relative to the file."""

import pytest

from engine.services.config import ConfigError, load_config, parse_config

SERVING = {"kind": "serving", "name": "serving", "input": "validated"}


def test_environment_references_are_expanded(monkeypatch, tmp_path):
    monkeypatch.setenv("BOOT", "10.0.0.1:9092")
    monkeypatch.delenv("PREFIX", raising=False)
    config = parse_config({"mode": "per-service", "services": [SERVING],
                           "bus": {"type": "kafka", "bootstrap_servers": "${BOOT}", "topic_prefix": "${PREFIX:-dev.}"}})
    assert config.bus.bootstrap_servers == "10.0.0.1:9092" and config.bus.topic_prefix == "dev."
    monkeypatch.delenv("BOOT")
    with pytest.raises(ConfigError, match=r"\$.bus.bootstrap_servers: environment variable 'BOOT' is not set"):
        parse_config({"services": [SERVING], "bus": {"type": "kafka", "bootstrap_servers": "${BOOT}"}})


@pytest.mark.parametrize("raw, message", [
    ({"services": [{**SERVING, "indexes": {"a": "blob"}}]}, "Invalid enum value 'blob' - at `$.services[0].indexes[...]`"),
    ({"services": [{**SERVING, "kind": "nope"}]}, "Invalid value 'nope' - at `$.services[0].kind`"),
    ({"services": [SERVING, SERVING]}, "repeated: serving"),
    ({"services": []}, "lists no services"),
    ({"services": [{**SERVING, "name": "has space"}]}, "at `$.services[0].name`"),
    ({"services": [{"kind": "transformation", "name": "t", "input": "a", "output": "b", "steps": [{}]}]},
     "give exactly one of 'transform' or 'lookup'"),
    ({"services": [{"kind": "ingestion", "name": "i", "output": "o", "source": {"type": "jsonl"}}]},
     "a jsonl source needs 'path'"),
    ({"services": [SERVING], "http": {"port": 70000}}, "at `$.http.port`"),
    ({"services": [SERVING], "http": {"token_env": "ENGINE_NOT_SET_ANYWHERE"}}, None),
    (["not", "a", "mapping"], "must be a mapping"),
])
def test_invalid_configs_name_the_problem(raw, message):
    if message is None:  # token_env pointing at an unset variable fails when the token is resolved
        with pytest.raises(ConfigError, match="ENGINE_NOT_SET_ANYWHERE"):
            parse_config(raw).http.resolve_token()
        return
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    assert message in str(info.value)


def test_relative_paths_resolve_against_the_config_file(tmp_path):
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "platform.yaml"
    path.write_text("data_dir: state\nservices:\n  - {kind: serving, name: s, input: v}\n"
                    "  - {kind: serving, name: t, input: w, database: other/t.db}\n")
    config = load_config(path)
    assert config.database_for(config.services[0]) == str(tmp_path / "sub" / "state" / "s.db")
    assert config.database_for(config.services[1]) == str(tmp_path / "sub" / "other" / "t.db")
    path.write_text("services: [\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(path)
