"""A 3-node NATS cluster with JetStream, started from the pip-shipped nats-server on free loopback ports."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.servers import ServerProcess, find_binary, free_port


@dataclass
class NatsCluster:
    nodes: list[ServerProcess]
    args: list[list[str]]

    @property
    def url(self) -> str:
        return ",".join(node.url for node in self.nodes)

    def kill(self, index: int) -> None:
        """SIGKILL one node (no clean leadership hand-over)."""
        self.nodes[index].process.kill()
        self.nodes[index].process.wait()

    def restart(self, index: int) -> None:
        node = self.nodes[index]
        node.process = _spawn(self.args[index], node.log_path or Path(os.devnull))
        node.wait_ready()


def _spawn(args: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


@pytest.fixture(name="nats_cluster")
def _nats_cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    client_ports = [free_port() for _ in range(3)]
    route_ports = [free_port() for _ in range(3)]
    routes = ",".join(f"nats://127.0.0.1:{p}" for p in route_ports)
    nodes, all_args = [], []
    for i in range(3):
        data = tmp_path / f"n{i}"
        data.mkdir()
        args = [
            find_binary("nats-server"), "-a", "127.0.0.1", "-p", str(client_ports[i]), "-n", f"n{i}", "-js",
            "-sd", str(data), "--cluster_name", "cobrowse", "--cluster", f"nats://127.0.0.1:{route_ports[i]}",
            "--routes", routes,
        ]  # fmt: skip
        log_path = data / "nats.log"
        process = _spawn(args, log_path)
        nodes.append(ServerProcess("nats", client_ports[i], process, f"nats://127.0.0.1:{client_ports[i]}", log_path))
        all_args.append(args)
    for node in nodes:
        node.wait_ready()
    yield NatsCluster(nodes, all_args)
    for node in nodes:
        node.stop()
