"""The wheel holds the whole service: every package, the migrations and the panel's files.

The container image installs reminders from its wheel, not from a checkout; a package left out
of pyproject.toml's list, or a template in a new folder the package data does not name, would
work in every test that runs from the checkout and fail only in the image.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_of_the_source_tree_is_listed() -> None:
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "reminders").rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert listed - found == {"reminders.migrations"}


@pytest.fixture(scope="module")
def wheel_files(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
         "--disable-pip-version-check", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    (wheel,) = out.glob("reminders-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


@pytest.mark.slow
def test_the_wheel_carries_the_migrations_and_the_panel(wheel_files: set[str]) -> None:
    versions = sorted(p.name for p in (ROOT / "migrations" / "versions").glob("*.py"))
    assert versions
    for name in versions:
        assert f"reminders/migrations/versions/{name}" in wheel_files
    assert "reminders/migrations/env.py" in wheel_files
    assert "reminders/migrations/script.py.mako" in wheel_files
    panel = ROOT / "reminders" / "panel"
    for folder in ("templates", "static", "locale"):
        for path in (panel / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                assert f"{path.relative_to(ROOT).as_posix()}" in wheel_files
    # Nothing of the checkout's own outside the package.
    assert {name.split("/")[0] for name in wheel_files} == {
        "reminders",
        "reminders-0.1.0.dist-info",
    }
