"""`make up`: starts everything, prints the URLs, and on Ctrl-C leaves no process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.servers import ServerProcess, free_port
from tests.conftest import TEST_SDK_KEY, TEST_SDK_SECRET


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.add(child)
            stack.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("use_existing", "dotenv_credentials"),
    [(False, False), (True, False), (True, True)],
    ids=["own-servers", "existing-servers", "credentials-in-dotenv"],
)
def test_up_runs_everything_and_ctrl_c_stops_it_all(
    tmp_path: Path,
    redis_server: ServerProcess,
    nats_server: ServerProcess,
    use_existing: bool,
    dotenv_credentials: bool,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZOOM_", "REDIS_URL", "NATS_URL"))}
    env |= {"TOKEN_PORT": str(free_port()), "REGISTRY_PORT": str(free_port()), "NOTIFY_PORT": str(free_port())}
    if use_existing:
        env |= {"REDIS_URL": redis_server.url, "NATS_URL": nats_server.url}
    else:
        env |= {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}  # nothing answers there: start our own
    if dotenv_credentials:
        (tmp_path / ".env").write_text(f"ZOOM_SDK_KEY={TEST_SDK_KEY}\nZOOM_SDK_SECRET={TEST_SDK_SECRET}\n")
    launcher = subprocess.Popen(
        [sys.executable, "-m", "devstack.up", "--run-dir", str(tmp_path / "run")],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    assert launcher.stdout is not None
    lines: list[str] = []
    for line in launcher.stdout:
        lines.append(line)
        if "Press Ctrl-C" in line:
            break
    output = "".join(lines)
    assert launcher.poll() is None, output
    assert ("DEVELOPMENT CREDENTIALS" in output) is not dotenv_credentials
    assert TEST_SDK_SECRET not in output
    assert f"127.0.0.1:{env['TOKEN_PORT']}/demo" in output
    assert "/agent" in output and "/dashboard" in output
    assert ("yours at REDIS_URL" in output) is use_existing
    started = _descendants(launcher.pid)
    assert len(started) >= (3 if use_existing else 5)

    launcher.send_signal(signal.SIGINT)
    rest, _ = launcher.communicate(timeout=30)
    assert launcher.returncode == 0, rest
    assert "no process left running" in rest
    assert [pid for pid in started if _alive(pid)] == []
