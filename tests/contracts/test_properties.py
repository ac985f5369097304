"""Property tests: contracts round-trip through YAML/JSON; generated records pass; mutations fail at the right path."""

from __future__ import annotations

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from engine.contracts import dumps_contract, loads_contract

from tests.contracts.strategies import contracts, invalid_value, record_strategy, with_defaults

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(contracts(), st.sampled_from(["yaml", "json"]))
def test_contract_round_trips_with_equal_fingerprint(contract, fmt):
    text = dumps_contract(contract, fmt)
    note(text)
    again = loads_contract(text, fmt)
    assert again == contract
    assert again.fingerprint() == contract.fingerprint()


@SETTINGS
@given(contracts(), st.randoms(use_true_random=False))
def test_field_order_does_not_change_the_fingerprint(contract, rnd):
    fields = list(contract.fields)
    rnd.shuffle(fields)
    import msgspec

    shuffled = msgspec.structs.replace(contract, fields=tuple(fields))
    assert shuffled.fingerprint() == contract.fingerprint()


@SETTINGS
@given(st.data())
def test_generated_valid_records_pass(data):
    contract = data.draw(contracts())
    record = data.draw(record_strategy(contract.fields))
    validator = contract.compile()
    import msgspec

    validator.validate_python(record)
    validator.validate_json(msgspec.json.encode(record))
    valid, invalid = validator.validate_many([msgspec.json.encode(record)], output="dict")
    assert invalid == []
    assert valid == [with_defaults(record, contract.fields)]


def _mutable_paths(fields, prefix=""):
    """(path, field) pairs reachable through present values of nested objects."""
    for f in fields:
        yield prefix + f.name, f


@SETTINGS
@given(st.data())
def test_mutated_records_fail_with_the_field_path(data):
    contract = data.draw(contracts())
    record = data.draw(record_strategy(contract.fields))
    # pick a top-level field, or a field inside a present nested object
    target = data.draw(st.sampled_from(contract.fields))
    path = target.name
    holder = record
    t = target.type
    if t.type == "object" and isinstance(record.get(target.name), dict) and data.draw(st.booleans()):
        inner = data.draw(st.sampled_from(t.fields))
        holder = record[target.name]
        path = f"{target.name}.{inner.name}"
        t = inner.type
        target = inner
    bad = invalid_value(t)
    holder[target.name] = bad
    note(f"mutated {path} to {bad!r}")
    import msgspec

    validator = contract.compile()
    valid, invalid = validator.validate_many([msgspec.json.encode(record)])
    assert valid == []
    [dead] = invalid
    [issue] = dead.issues
    assert issue.path == path
    assert issue.value == bad
    # the Python-object path reports the same place
    valid, invalid = validator.validate_many([record])
    assert invalid[0].issues[0].path == path
