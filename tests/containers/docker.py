"""A private Docker daemon for the container tests, and the base image made on this machine.

No image registry is reachable from the machines the tests run on, so nothing is pulled:
- ``debian:bookworm-slim`` is made locally: ``debootstrap --variant=minbase bookworm`` from the
  mirror apt is configured with (kept as a tarball in the cache folder between runs), imported
  with ``docker import``; deploy/Dockerfile's unchanged ``FROM`` line then builds from it.
- HTTPS from inside a build (pip) goes through a proxy whose certificate authority only the host
  trusts: the host's CA bundle is added to that base image and ``SSL_CERT_FILE``/``PIP_CERT``
  point at it, so that deploy/Dockerfile itself needs nothing of the kind.
- The daemon is our own: its own data root, exec root, socket and pid file under a temporary
  folder, stopped by its pid at the end. It leaves Docker's ``docker0`` bridge and iptables
  chains behind, as any dockerd does; one runs at a time.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PACKAGES = {
    "dockerd": "docker.io",
    "docker-compose": "docker-compose",
    "debootstrap": "debootstrap",
}
# The client of Debian's docker.io, the daemon's own version; a newer one may come first on PATH.
DOCKER = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"
BASE_TAG = "debian:bookworm-slim"
HOST_CA_FILES = (Path("/etc/ssl/certs/ca-certificates.crt"),)
HOST_CA_FOLDER = Path("/usr/local/share/ca-certificates")
# In the base image only: a path no package's ca-certificates trigger rewrites.
IMAGE_CA_BUNDLE = "/usr/local/share/host-ca/bundle.pem"
START_TIMEOUT = 60.0


class DockerError(RuntimeError):
    """Docker could not be installed or started; the message says why."""


def cache_folder() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    folder = base / "reminders"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def ensure_installed() -> None:
    """Install Debian's docker.io, docker-compose and debootstrap where one is missing."""
    missing = sorted({pkg for tool, pkg in PACKAGES.items() if shutil.which(tool) is None})
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        install = f"apt-get install -y {' '.join(missing)}"
        raise DockerError(f"run `{install}` as root (or scripts/services)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", *missing], check=True, env=env, capture_output=True
    )


def apt_mirror() -> str:
    """The Debian mirror apt on this machine uses (deb822 or one-line sources)."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            words = line.split()
            if line.startswith("URIs:") and "security" not in line:
                return words[1]
            if words[:1] == ["deb"] and "security" not in line:
                return next(w for w in words[1:] if "://" in w)
    return "http://deb.debian.org/debian"


def base_rootfs() -> Path:
    """The minbase bookworm tarball, made once (about 45 s) and kept in the cache folder."""
    tarball = cache_folder() / "bookworm-minbase.tar"
    if tarball.exists():
        return tarball
    work = cache_folder() / "bookworm-minbase.tmp"
    shutil.rmtree(work, ignore_errors=True)
    result = subprocess.run(
        ["debootstrap", "--variant=minbase", "bookworm", str(work), apt_mirror()],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise DockerError(f"debootstrap failed: {result.stdout[-2000:]}{result.stderr[-2000:]}")
    # apt's package lists, downloaded packages and caches: 80 MB nobody needs in an image.
    for leftover in ("var/cache/apt/archives", "var/lib/apt/lists", "var/cache/apt"):
        for path in (work / leftover).glob("*"):
            if path.is_file():
                path.unlink()
    partial = tarball.with_suffix(".partial")
    subprocess.run(["tar", "-C", str(work), "-cf", str(partial), "."], check=True)
    partial.rename(tarball)
    shutil.rmtree(work, ignore_errors=True)
    return tarball


@dataclass
class Docker:
    """A running private dockerd and the environment its clients need."""

    folder: Path
    process: subprocess.Popen[bytes]

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": f"unix://{self.folder / 'docker.sock'}"}

    def run(
        self, *args: str, check: bool = True, timeout: float = 600, input: bytes | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``docker args...``; its output as text. A failure raises with what it printed."""
        return self._run([DOCKER, *args], check=check, timeout=timeout, input=input)

    def compose(
        self, files: Sequence[Path], project: str, env_file: Path, *args: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        command = ["docker-compose", "--no-ansi", "-p", project, "--env-file", str(env_file)]
        for path in files:
            command += ["-f", str(path)]
        return self._run([*command, *args], check=check, timeout=600)

    def _run(
        self, command: list[str], *, check: bool, timeout: float, input: bytes | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            command,
            env=self.env,
            input=input.decode() if input is not None else None,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise DockerError(
                f"{' '.join(command[:6])}... exited {result.returncode}:\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result

    def import_base(self) -> None:
        """``debian:bookworm-slim``: the cached rootfs, with the host's CA bundle added."""
        with base_rootfs().open("rb") as rootfs:
            subprocess.run(
                [DOCKER, "import", "--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:"
                 "/usr/sbin:/usr/bin:/sbin:/bin", "--change", 'CMD ["bash"]', "-",
                 "reminders-test/bookworm-minbase"],
                stdin=rootfs, env=self.env, check=True, capture_output=True, timeout=300,
            )  # fmt: skip
        context = self.folder / "base"
        context.mkdir(exist_ok=True)
        bundle = b"".join(path.read_bytes() for path in HOST_CA_FILES if path.exists())
        bundle += b"".join(path.read_bytes() for path in sorted(HOST_CA_FOLDER.glob("*.crt")))
        (context / "ca.pem").write_bytes(bundle)
        (context / "Dockerfile").write_text(
            "FROM reminders-test/bookworm-minbase\n"
            f"COPY ca.pem {IMAGE_CA_BUNDLE}\n"
            f"ENV SSL_CERT_FILE={IMAGE_CA_BUNDLE} PIP_CERT={IMAGE_CA_BUNDLE}\n"
        )
        self.run("build", "-q", "-t", BASE_TAG, str(context))

    def logs(self, container: str) -> str:
        result = self.run("logs", container, check=False)
        return result.stdout + result.stderr


@contextmanager
def private_daemon(folder: Path) -> Iterator[Docker]:
    """Start dockerd with everything of its own under ``folder``; stop it by its pid after."""
    ensure_installed()
    folder.mkdir(parents=True, exist_ok=True)
    log = (folder / "dockerd.log").open("wb")
    process = subprocess.Popen(
        ["dockerd", "--data-root", str(folder / "data"), "--exec-root", str(folder / "exec"),
         "-H", f"unix://{folder / 'docker.sock'}", "--pidfile", str(folder / "dockerd.pid")],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    docker = Docker(folder, process)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while docker.run("info", check=False, timeout=30).returncode != 0:
            if process.poll() is not None or time.monotonic() > deadline:
                tail = (folder / "dockerd.log").read_text(errors="replace")[-3000:]
                raise DockerError(f"dockerd did not start:\n{tail}")
            time.sleep(0.3)
        yield docker
    finally:
        _stop_daemon(docker)
        log.close()
        shutil.rmtree(folder / "data", ignore_errors=True)
        shutil.rmtree(folder / "exec", ignore_errors=True)


def _stop_daemon(docker: Docker) -> None:
    running = docker.run("ps", "-q", check=False, timeout=30).stdout.split()
    if running:
        docker.run("rm", "-f", *running, check=False, timeout=120)
    docker.process.send_signal(signal.SIGTERM)
    try:
        docker.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(docker.process.pid, signal.SIGKILL)
        docker.process.wait(timeout=10)
