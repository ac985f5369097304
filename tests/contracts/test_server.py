"""`engine registry serve` against a real client not written here: confluent-kafka's SchemaRegistryClient
and its Avro / JSON serializers, with the server started in-process on a free loopback port."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

pytest.importorskip("confluent_kafka.schema_registry")  # the schemaregistry extra of confluent-kafka

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient  # noqa: E402
from confluent_kafka.schema_registry.error import SchemaRegistryError as ClientError  # noqa: E402
from confluent_kafka.serialization import MessageField, SerializationContext  # noqa: E402

from engine.contracts.registry import SchemaRegistry  # noqa: E402
from engine.contracts.server import CONTENT_TYPE, RegistryServerThread  # noqa: E402
from engine.contracts.store import SQLiteStore  # noqa: E402
from engine.contracts.wire import ContractDeserializer, ContractSerializer, unframe  # noqa: E402


@pytest.fixture
def server(tmp_path):
    registry = SchemaRegistry(SQLiteStore(tmp_path / "registry.db"))
    with RegistryServerThread(registry, port=0) as srv:
        yield srv
    registry.close()


@pytest.fixture
def client(server):
    with SchemaRegistryClient({"url": server.url}) as c:  # closes its HTTP connections
        yield c


USER_V1 = {"type": "record", "name": "User", "namespace": "shop", "fields": [
    {"name": "id", "type": "long"}, {"name": "name", "type": "string"}]}
USER_V2 = {**USER_V1, "fields": USER_V1["fields"] + [{"name": "email", "type": ["null", "string"], "default": None}]}
USER_BAD = {**USER_V1, "fields": USER_V1["fields"] + [{"name": "age", "type": "int"}]}


def avro(doc):
    return Schema(json.dumps(doc), "AVRO")


def test_register_get_latest_and_ids(client):
    id1 = client.register_schema("users-value", avro(USER_V1))
    assert client.register_schema("audit-value", avro(USER_V1)) == id1  # one global id
    id2 = client.register_schema("users-value", avro(USER_V2))
    assert id2 != id1
    latest = client.get_latest_version("users-value")
    assert (latest.version, latest.schema_id) == (2, id2)
    assert json.loads(latest.schema.schema_str) == USER_V2
    assert json.loads(client.get_schema(id1).schema_str) == USER_V1
    assert client.get_version("users-value", 1).schema_id == id1
    assert client.get_versions("users-value") == [1, 2]
    assert sorted(client.get_subjects()) == ["audit-value", "users-value"]
    assert client.lookup_schema("users-value", avro(USER_V1)).version == 1
    assert sorted((v.subject, v.version) for v in client.get_schema_versions(id1)) == [("audit-value", 1),
                                                                                      ("users-value", 1)]
    assert sorted(client.get_subjects_by_schema_id(id1)) == ["audit-value", "users-value"]


def test_compatibility_check_and_config(client):
    client.register_schema("users-value", avro(USER_V1))
    assert client.test_compatibility("users-value", avro(USER_V2)) is True
    assert client.test_compatibility("users-value", avro(USER_BAD)) is False
    assert client.test_compatibility_all_versions("users-value", avro(USER_BAD)) is False
    with pytest.raises(ClientError) as info:
        client.register_schema("users-value", avro(USER_BAD))
    assert info.value.http_status_code == 409
    assert "age" in info.value.error_message and "READER_FIELD_MISSING_DEFAULT_VALUE" in info.value.error_message
    assert client.get_compatibility() == "BACKWARD"
    client.set_compatibility("users-value", "FORWARD")
    assert client.get_compatibility("users-value") == "FORWARD"
    assert client.register_schema("users-value", avro(USER_BAD)) > 0  # forward: old readers skip `age`
    client.set_compatibility(level="FULL_TRANSITIVE")
    assert client.get_compatibility() == "FULL_TRANSITIVE"
    with pytest.raises(ClientError) as info:
        client.set_compatibility(level="SOMETIMES")
    assert (info.value.http_status_code, info.value.error_code) == (422, 42203)


def test_error_codes_reach_the_client(client):
    client.register_schema("users-value", avro(USER_V1))
    checks = [
        (lambda: client.get_latest_version("missing"), 404, 40401),
        (lambda: client.get_version("users-value", 7), 404, 40402),
        (lambda: client.get_schema(999), 404, 40403),
        (lambda: client.register_schema("x", Schema('{"type": "record"}', "AVRO")), 422, 42201),
        (lambda: client.lookup_schema("users-value", avro(USER_V2)), 404, 40403),
        (lambda: client.delete_subject("users-value", permanent=True), 404, 40405),
    ]
    for call, status, code in checks:
        with pytest.raises(ClientError) as info:
            call()
        assert (info.value.http_status_code, info.value.error_code) == (status, code), info.value


def test_delete_version_and_subject(client):
    client.register_schema("users-value", avro(USER_V1))
    client.register_schema("users-value", avro(USER_V2))
    assert client.delete_version("users-value", 2) == 2
    assert client.get_versions("users-value") == [1]
    assert client.delete_subject("users-value") == [1]
    assert client.get_subjects() == []
    assert client.delete_subject("users-value", permanent=True) == [1, 2]


def test_content_type_and_raw_endpoints(server, client):
    schema_id = client.register_schema("users-value", avro(USER_V1))
    with urllib.request.urlopen(f"{server.url}/schemas/ids/{schema_id}") as resp:
        assert resp.headers["Content-Type"].startswith(CONTENT_TYPE)
        assert json.loads(json.loads(resp.read())["schema"]) == USER_V1
    with urllib.request.urlopen(f"{server.url}/subjects/users-value/versions/latest/schema") as resp:
        assert json.loads(resp.read()) == USER_V1
    with urllib.request.urlopen(f"{server.url}/schemas/types") as resp:
        assert "AVRO" in json.loads(resp.read())


def test_avro_serializer_round_trip(client):
    pytest.importorskip("fastavro")
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer

    ser = AvroSerializer(client, json.dumps(USER_V1))
    ctx = SerializationContext("users", MessageField.VALUE)
    data = ser({"id": 7, "name": "ada"}, ctx)
    schema_id, _ = unframe(data)
    assert schema_id == client.get_latest_version("users-value").schema_id
    # a reader on v2 (registered later, backward compatible) resolves the v1 data via the registry
    client.register_schema("users-value", avro(USER_V2))
    de = AvroDeserializer(client, json.dumps(USER_V2))
    assert de(data, ctx) == {"id": 7, "name": "ada", "email": None}


def test_json_serializers_interoperate_with_contract_serde(client, orders, order_record):
    from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer

    ctx = SerializationContext("orders", MessageField.VALUE)
    # engine -> Confluent: our serializer registers the contract's JSON Schema; Confluent's reader decodes
    ours = ContractSerializer(orders, client, "orders-value")
    data = ours.serialize(order_record())
    theirs = JSONDeserializer(None, schema_registry_client=client)
    assert theirs(data, ctx)["order_id"] == "o-123"
    # Confluent -> engine: their serializer (same schema, so the same id); our deserializer validates
    schema_str = json.dumps(orders.to_json_schema())
    their_ser = JSONSerializer(schema_str, client, conf={"auto.register.schemas": True})
    framed = their_ser(order_record(user_id=42), ctx)
    assert unframe(framed)[0] == ours.schema_id
    de = ContractDeserializer(orders, client)
    assert de.deserialize(framed).user_id == 42
    valid, dead = de.deserialize_many([framed, b"\x00\x00\x00\x03\xe7{}", b"junk"])
    assert len(valid) == 1
    assert "not registered" in dead[0].reason and "Confluent header" in dead[1].reason


def test_avro_serializers_interoperate_with_contract_serde(client, orders, order_record):
    pytest.importorskip("fastavro")
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer

    ctx = SerializationContext("orders", MessageField.VALUE)
    ours = ContractSerializer(orders, client, "orders-value", schema_format="avro")
    data = ours.serialize(order_record(note="hi"))
    theirs = AvroDeserializer(client)  # reads with the writer schema fetched from our server
    decoded = theirs(data, ctx)
    assert decoded["order_id"] == "o-123" and decoded["note"] == "hi" and decoded["state"] == "PAID"
    their_ser = AvroSerializer(client, json.dumps(orders.to_avro()))
    framed = their_ser({**decoded, "user_id": 99}, ctx)
    assert unframe(framed)[0] == ours.schema_id  # same schema text -> same global id
    rec = ContractDeserializer(orders, client).deserialize(framed)
    assert rec.user_id == 99 and rec.items[0].sku == "A1"


def _http(url, method="GET", body=None):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": CONTENT_TYPE})
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read())


def test_rest_edge_cases(server, client):
    base = server.url
    assert _http(f"{base}/subjects/s/versions", "POST", b"{not json") == (400, {
        "error_code": 400, "message": "Request body is not valid JSON"})
    status, body = _http(f"{base}/subjects/s/versions", "POST", {"schema": '"int"', "schemaType": "PROTOBUF"})
    assert (status, body["error_code"]) == (422, 42201)
    status, body = _http(f"{base}/subjects/s/versions", "POST", {"schema": '"int"', "references": [
        {"name": "x", "subject": "y", "version": 1}]})
    assert (status, body["error_code"]) == (422, 42201) and "references" in body["message"]
    assert _http(f"{base}/subjects/s/versions", "POST", {"schema": '"int"'})[1]["id"] == 1
    assert _http(f"{base}/subjects/s/versions/1/referencedby") == (200, [])
    assert _http(f"{base}/subjects/s/versions/zero")[1]["error_code"] == 42202
    assert _http(f"{base}/config/s")[1]["error_code"] == 40408
    assert _http(f"{base}/config/s?defaultToGlobal=true") == (200, {"compatibilityLevel": "BACKWARD"})
    assert _http(f"{base}/compatibility/subjects/new/versions", "POST", {"schema": '"int"'}) == (
        200, {"is_compatible": True})
    status, body = _http(f"{base}/compatibility/subjects/s/versions/latest?verbose=true", "POST", {"schema": '"string"'})
    assert status == 200 and body["is_compatible"] is False and "TYPE_MISMATCH" in body["messages"][0]
    assert _http(f"{base}/nope")[0] == 404


def test_contract_schema_type_over_rest(client, orders):
    doc = orders.to_dict()
    schema_id = client.register_schema("orders-contract", Schema(json.dumps(doc), "CONTRACT"))
    fetched = client.get_schema(schema_id)
    assert fetched.schema_type == "CONTRACT" and json.loads(fetched.schema_str)["name"] == "orders"
    tightened = json.loads(json.dumps(doc))
    tightened["fields"][1]["constraints"]["ge"] = 10
    assert client.test_compatibility("orders-contract", Schema(json.dumps(tightened), "CONTRACT")) is False
    with pytest.raises(ClientError) as info:
        client.register_schema("orders-contract", Schema(json.dumps(tightened), "CONTRACT"))
    assert info.value.http_status_code == 409 and "CONSTRAINT_NARROWED" in info.value.error_message
    assert "user_id" in info.value.error_message


def test_storage_failure_is_50001(tmp_path):
    store = SQLiteStore(tmp_path / "r.db")
    registry = SchemaRegistry(store)
    with RegistryServerThread(registry) as srv:
        assert _http(f"{srv.url}/subjects")[0] == 200
        store.close()  # the database goes away under the running server
        status, body = _http(f"{srv.url}/subjects/s/versions", "POST", {"schema": '"int"'})
    assert (status, body["error_code"]) == (500, 50001)
    assert "registry database error" in body["message"]
