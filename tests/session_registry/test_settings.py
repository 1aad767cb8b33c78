"""Start-up settings: a bad or missing secret stops the process by name, never printing its value."""

from __future__ import annotations

from pathlib import Path

import pytest

from session_registry.settings import Settings
from shared.settings import load_settings


@pytest.fixture(autouse=True)
def _no_env_file(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # a developer's .env must not decide these tests


def test_a_bad_secret_exits_naming_the_setting_not_the_value(monkeypatch, capsys) -> None:
    monkeypatch.setenv("SESSION_TOKEN_SECRET", "tiny-secret")
    with pytest.raises(SystemExit) as exit_info:
        load_settings(Settings, "session-registry")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "SESSION_TOKEN_SECRET" in err and "tiny-secret" not in err


def test_a_missing_secret_is_named(monkeypatch, capsys) -> None:
    monkeypatch.delenv("SESSION_TOKEN_SECRET", raising=False)
    with pytest.raises(SystemExit):
        load_settings(Settings, "session-registry")
    assert "SESSION_TOKEN_SECRET is required" in capsys.readouterr().err


def test_an_empty_webhook_secret_switches_webhooks_off(monkeypatch) -> None:
    monkeypatch.setenv("SESSION_TOKEN_SECRET", "s" * 32)
    monkeypatch.setenv("ZOOM_WEBHOOK_SECRET_TOKEN", "")
    assert load_settings(Settings, "session-registry").zoom_webhook_secret_token is None


def test_zoom_api_settings_default_and_never_print_the_secret(monkeypatch) -> None:
    monkeypatch.setenv("SESSION_TOKEN_SECRET", "s" * 32)
    monkeypatch.setenv("ZOOM_API_KEY", "key-1")
    monkeypatch.setenv("ZOOM_API_SECRET", "zoom-api-secret-value")
    settings = load_settings(Settings, "session-registry")
    assert settings.zoom_api_url == "https://api.zoom.us/v2" and settings.zoom_api_configured
    assert "zoom-api-secret-value" not in repr(settings) and "zoom-api-secret-value" not in str(settings)
    monkeypatch.setenv("ZOOM_API_SECRET", "")  # as docker-compose passes an unset one: no lookups
    assert not load_settings(Settings, "session-registry").zoom_api_configured
