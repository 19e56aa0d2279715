"""deploy/'s files name commands, options and settings that exist.

A unit file whose ExecStart names an option the CLI no longer has, or a compose file setting a
misspelt REMINDERS_ variable (ignored in silence), fails only on a user's machine; these
checks read the files and ask the CLI and the settings themselves. tests/test_containers.py
builds and runs the image and the stack for real.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from reminders.cli import app
from reminders.settings import Settings

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
UNITS = sorted(DEPLOY.glob("*.service"))
# Named links' settings are read by name (README "Several gateway links"), not as fields.
LINK_SETTING = re.compile(r"REMINDERS_LINKS?(_FILE)?$|REMINDERS_LINK_[A-Z0-9]+_[A-Z_]+$")


def parse_command(argv: list[str]) -> Any:
    """The CLI's context for ``argv``, options checked, without running the command.

    Typer carries its own copy of click, so the groups are told apart by what they do.
    """
    command: Any = typer.main.get_command(app)
    context = command.make_context("reminders", list(argv))
    args = list(argv)
    while hasattr(command, "resolve_command"):
        name, command, args = command.resolve_command(context, args)
        assert command is not None and name is not None, argv
        context = command.make_context(name, args, parent=context)
    return context


def known_setting(name: str) -> bool:
    field = name.removeprefix("REMINDERS_").lower()
    return field in Settings.model_fields or bool(LINK_SETTING.match(name))


@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_each_unit_starts_a_command_the_cli_has(unit: Path) -> None:
    lines = unit.read_text().splitlines()
    (exec_start,) = [line.split("=", 1)[1] for line in lines if line.startswith("ExecStart=")]
    binary, *argv = shlex.split(exec_start)
    assert binary == "/opt/reminders/.venv/bin/reminders"
    parse_command(argv)
    assert "User=reminders" in lines
    assert "EnvironmentFile=/etc/reminders/env" in lines


def test_there_are_units_for_serve_web_and_templated_workers() -> None:
    commands = {
        u.name: shlex.split(next(x for x in u.read_text().splitlines() if "ExecStart=" in x))[1]
        for u in UNITS
    }
    assert commands == {
        "reminders.service": "serve",
        "reminders-web.service": "web",
        "reminders-worker@.service": "worker",
    }


def test_a_misspelt_option_would_be_caught() -> None:
    with pytest.raises(Exception, match="No such option: --hots"):
        parse_command(["web", "--hots", "127.0.0.1"])
    with pytest.raises(Exception, match="No such command 'wroker'"):
        parse_command(["wroker"])


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def test_the_stack_has_its_services(stack: dict[str, Any]) -> None:
    services = stack["services"]
    assert set(services) == {
        "postgres", "redis", "kannel", "fakesmsc", "migrate", "web", "worker",
    }  # fmt: skip
    assert services["fakesmsc"]["profiles"] == ["demo"]
    for name in ("web", "worker"):
        assert services[name]["deploy"]["replicas"] == 2
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
    for name in ("migrate", "web", "worker", "kannel", "fakesmsc"):
        assert services[name]["init"] is True, name
    for name in ("migrate", "web", "worker"):
        parse_command(services[name]["command"])
    assert services["migrate"]["command"] == ["db", "upgrade"]


def test_the_stack_sets_only_settings_that_exist(stack: dict[str, Any]) -> None:
    environment = stack["x-reminders"]["environment"]
    unknown = [name for name in environment if not known_setting(name)]
    assert unknown == []


def test_env_example_names_only_settings_that_exist() -> None:
    text = (DEPLOY / "env.example").read_text()
    named = set(re.findall(r"^#?(REMINDERS_[A-Z0-9_]+)=", text, flags=re.MULTILINE))
    assert len(named) > 20
    compose_only = {"REMINDERS_WEB_PORTS", "REMINDERS_BIND"}  # read by compose.yaml itself
    unknown = sorted(n for n in named - compose_only if not known_setting(n))
    assert unknown == []
    assert compose_only <= named
    stack_text = (DEPLOY / "compose.yaml").read_text()
    for name in compose_only:
        assert "${" + name in stack_text
