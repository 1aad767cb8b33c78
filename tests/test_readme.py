"""The README stays true: it names every setting the services read, and the commands it promises exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from notification_service.settings import Settings as NotifySettings
from session_registry.settings import Settings as RegistrySettings
from shared.settings import ServiceSettings, env_name
from token_service.settings import Settings as TokenSettings

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()


@pytest.mark.parametrize("settings_class", [TokenSettings, RegistrySettings, NotifySettings])
def test_every_setting_is_in_the_readme(settings_class: type[ServiceSettings]) -> None:
    names = [env_name(settings_class, field) for field in settings_class.model_fields]
    assert [name for name in names if name not in README] == []


def test_every_make_target_the_readme_names_exists() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = {t for line in re.findall(r"^([a-z][a-z -]*):", makefile, re.M) for t in line.split()}
    named = set(re.findall(r"\bmake ([a-z-]+)", README))
    assert named <= targets, named - targets
    assert {"up", "test"} <= named
