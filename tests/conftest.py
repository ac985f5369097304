"""Session-wide test set-up.

The compiled kernels must be the ones under test unless ``ENGINE_NO_EXTENSIONS`` says otherwise, so a
broken build can never pass by silently running the pure-Python twin.
"""

from __future__ import annotations

import os

from engine import kernels


def pytest_report_header(config):
    return f"engine kernels: {kernels.IMPLEMENTATION}"


def pytest_sessionstart(session):
    wants_twin = kernels._flag("ENGINE_NO_EXTENSIONS")
    if not wants_twin:
        assert kernels.USING_EXTENSIONS and kernels.IMPLEMENTATION == "engine._core", (
            "compiled kernels are not loaded; build them (pip install -e .) or set ENGINE_NO_EXTENSIONS=1"
        )
        import engine._core

        assert engine._core.__file__.endswith((".so", ".pyd")), engine._core.__file__


# --- the Kafka-protocol test broker ------------------------------------------------------------------

import uuid  # noqa: E402

import pytest  # noqa: E402

from tests import _broker  # noqa: E402


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory):
    """A real Kafka-protocol broker (Tansu, memory storage) on a free loopback port, for the session.

    A broker that cannot start fails the test that asked for it; it is never a skip.
    """
    try:
        broker = _broker.start_broker(tmp_path_factory.mktemp("tansu"))
    except _broker.BrokerStartError as exc:
        pytest.fail(f"the Kafka test broker could not start: {exc}", pytrace=False)
    yield broker
    broker.stop()


@pytest.fixture
def bootstrap_servers(kafka_broker) -> str:
    return kafka_broker.bootstrap_servers


@pytest.fixture
def topic_factory(kafka_broker):
    """``await topic_factory(partitions=1) -> name``: a fresh uuid-named topic on the test broker."""

    async def make(partitions: int = 1, prefix: str = "t") -> str:
        name = f"{prefix}-{uuid.uuid4().hex}"
        await _broker.create_topic(kafka_broker.bootstrap_servers, name, partitions)
        return name

    return make
