"""The real ``reminders`` command as a subprocess: its environment, a free port, and one
``reminders serve`` with its output in files. Shared by the end-to-end and browser tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import httpx

from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parents[1]
REMINDERS = ROOT / ".venv" / "bin" / "reminders"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMINDERS_")}
    env["REMINDERS_DATABASE_URL"] = database_url
    # Messages sent "now" must go now whatever the hour the suite runs at.
    env["REMINDERS_QUIET_HOURS"] = "off"
    return env


def run_cli(
    database_url: str,
    *args: str,
    cwd: Path,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
) -> str:
    """``reminders ARGS`` run to its end; its standard output (a failure shows its stderr)."""
    done = subprocess.run(
        [str(REMINDERS), *args],
        cwd=cwd,
        env={**cli_env(database_url), **(env or {})},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"reminders {' '.join(args)}: {done.stderr}"
    return done.stdout


class Server:
    """One ``reminders serve`` subprocess with its output in files."""

    def __init__(
        self,
        database_url: str,
        port: int,
        workdir: Path,
        name: str,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.stdout_path = workdir / f"{name}.stdout"
        self.stderr_path = workdir / f"{name}.stderr"
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [str(REMINDERS), "serve", "--port", str(port)],
                cwd=workdir,
                env={**cli_env(database_url), **(env or {})},
                stdout=out,
                stderr=err,
            )

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8")

    def healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(
                f"serve exited with {self.proc.returncode} before it was up:\n{self.stderr}"
            )
        try:
            return httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def wait_healthy(self, timeout: float = 20) -> None:
        what = f"serve on port {self.port} to answer /healthz"
        wait_for(self.healthy, timeout=timeout, what=what)

    def terminate(self) -> int:
        """SIGTERM, as a process manager stops it; the exit code it ended with."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=15)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
