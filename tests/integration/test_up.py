"""`make up`: starts everything, prints the URLs, tells `cobrowse-accounts` and `make demo` where it is, refuses
busy ports before printing anything, and on Ctrl-C leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from devstack import simulator
from devstack.runinfo import read_urls
from devstack.servers import ServerProcess, free_port
from tests.conftest import TEST_SDK_KEY, TEST_SDK_SECRET

CLI = str(Path(sys.executable).parent / "cobrowse-accounts")


def _clean_env() -> dict[str, str]:
    """This process's environment without the settings a test decides itself."""
    own = ("ZOOM_", "REDIS_URL", "NATS_URL", "TOKEN_PORT", "REGISTRY_PORT", "NOTIFY_PORT", "PUBLIC_")
    return {k: v for k, v in os.environ.items() if not k.startswith(own)}


def _authenticated(registry_url: str, api_key: str) -> bool:
    """Whether the registry takes ``api_key`` (a 404 for an unknown session means it did)."""
    request = urllib.request.Request(f"{registry_url}/sessions/none", headers={"Authorization": f"Bearer {api_key}"})
    try:
        urllib.request.urlopen(request, timeout=5)
    except urllib.error.HTTPError as exc:
        return exc.code == 404
    return True


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
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = _clean_env()
    env |= {"TOKEN_PORT": str(free_port()), "REGISTRY_PORT": str(free_port()), "NOTIFY_PORT": str(free_port())}
    if use_existing:
        env |= {"REDIS_URL": redis_server.url, "NATS_URL": nats_server.url}
    else:
        env |= {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}  # nothing answers there: start our own
    if dotenv_credentials:
        (tmp_path / ".env").write_text(f"ZOOM_SDK_KEY={TEST_SDK_KEY}\nZOOM_SDK_SECRET={TEST_SDK_SECRET}\n")
    launcher = subprocess.Popen(
        [sys.executable, "-m", "devstack.up"],
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

    # The Redis and NATS in use are printed and written where the account CLI and the simulator look.
    run_dir = tmp_path / ".run"
    urls = read_urls(run_dir)
    assert f"Redis : {urls['REDIS_URL']}" in output and f"NATS  : {urls['NATS_URL']}" in output
    assert urls["TOKEN_URL"] == f"http://127.0.0.1:{env['TOKEN_PORT']}"
    if use_existing:
        assert (urls["REDIS_URL"], urls["NATS_URL"]) == (redis_server.url, nats_server.url)
    # README's account commands, as written: no REDIS_URL in the environment, run from the project directory.
    listed = subprocess.run([CLI, "list"], cwd=tmp_path, env=_clean_env(), capture_output=True, text=True, timeout=30)
    assert listed.returncode == 0, listed.stderr
    assert "Alex" in listed.stdout and "Sim agent 1" in listed.stdout

    # `make demo` finds the same token service and signs in with its own agents, never a printed key.
    for name in ("TOKEN_PORT", "PUBLIC_TOKEN_URL", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    config = simulator.parse_args([])
    assert config.token_url == urls["TOKEN_URL"]
    keys = json.loads((run_dir / "dev-accounts.json").read_text())
    assert set(config.agent_keys) == {keys["simulator agent 1"], keys["simulator agent 2"]}
    assert not any(key in output for key in config.agent_keys)
    assert all(_authenticated(urls["REGISTRY_URL"], key) for key in config.agent_keys)

    launcher.send_signal(signal.SIGINT)
    rest, _ = launcher.communicate(timeout=30)
    assert launcher.returncode == 0, rest
    assert "no process left running" in rest
    assert [pid for pid in started if _alive(pid)] == []
    assert read_urls(run_dir) == {}, "a stopped stack leaves no URLs pointing at it"


def test_up_on_a_busy_port_fails_at_once_before_any_banner(tmp_path: Path) -> None:
    env = _clean_env() | {"REGISTRY_PORT": str(free_port()), "NOTIFY_PORT": str(free_port())}
    with socket.socket() as busy:  # what a first `make up` holds
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        env["TOKEN_PORT"] = str(busy.getsockname()[1])
        done = subprocess.run(
            [sys.executable, "-m", "devstack.up"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=20
        )
    assert done.returncode == 2
    assert f"port {env['TOKEN_PORT']} (TOKEN_PORT, the token service) is already in use" in done.stderr
    assert "make up` already running" in done.stderr
    assert done.stdout == ""  # no banner, no keys, nothing started
    assert not (tmp_path / ".run" / "redis").exists()


def test_demo_without_a_running_stack_uses_token_port_from_dotenv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("TOKEN_PORT", "PUBLIC_TOKEN_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("TOKEN_PORT=9181\n")
    config = simulator.parse_args(["--agent-key", "cbk_x"])
    assert config.token_url == "http://127.0.0.1:9181"
    monkeypatch.setenv("PUBLIC_TOKEN_URL", "http://desk.example:9000")
    assert simulator.parse_args(["--agent-key", "cbk_x"]).token_url == "http://desk.example:9000"
