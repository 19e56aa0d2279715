"""deploy/: the image and the compose stack, built and run by a private Docker daemon.

One test, in steps, because every step needs the same daemon and images, and the test runner's
two processes must not start two daemons at once (they would share Docker's bridge):

1. The base image is made here (tests/containers/docker.py); the three images are built from
   deploy/Dockerfile, deploy/kannel/Dockerfile and, for the test only, tests/containers/services.
2. The image alone: ``reminders serve`` on the SQLite default with a volume; the time from
   ``docker run`` to /healthz answering and to Docker's own health check passing; a message
   written before a restart of the container is there after it.
3. The stack, deploy/compose.yaml with the ``demo`` profile: ``migrate``, two ``web`` and two
   ``worker`` containers, and Kannel from Debian's package with its fake SMSC, for real. What
   cannot be pulled here is PostgreSQL's and Redis's official images: an override file
   (written below) swaps in Debian's PostgreSQL 15 and Redis 7 packages on the same base,
   behind the same environment variables, data folder and commands, on the compose network.
   A message sent through one ``web`` is ``delivered`` by Kannel's delivery report, read through
   the other; 2,000 notices drain while one ``worker`` container is killed with SIGKILL, and
   none is lost or sent twice; a message Kannel holds while its operator's link is down
   survives a restart of its container; ``docker-compose down`` takes under 5 s.

The figures (image size, build time, time to healthy) are printed as one JSON line; the README's
"Deploying" section quotes them.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import socket
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from reminders.sender.kannel import KannelSender
from tests.containers.docker import Docker, private_daemon
from tests.kannel import parse_received

pytestmark = [pytest.mark.slow, pytest.mark.containers, pytest.mark.timeout(1500)]

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
IMAGES = {
    "reminders:latest": (ROOT, DEPLOY / "Dockerfile"),
    "reminders-kannel:latest": (DEPLOY / "kannel", DEPLOY / "kannel" / "Dockerfile"),
    "reminders-test/services:latest": (
        ROOT / "tests" / "containers" / "services",
        ROOT / "tests" / "containers" / "services" / "Dockerfile",
    ),
}
PROJECT = "reminderstest"
DRAIN = 2_000
KILL_AFTER = 400  # of the drain's SMS at the fake SMSC: the kill lands mid-drain
FINAL = {"sent", "delivered", "unknown"}


@pytest.fixture(scope="module")
def docker() -> Iterator[Docker]:
    # A short folder of its own: the daemon's sockets must fit a Unix socket path's 108 bytes.
    folder = Path(tempfile.mkdtemp(prefix="rdk-", dir="/tmp"))
    try:
        with private_daemon(folder) as daemon:
            daemon.import_base()
            yield daemon
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_the_image_alone_and_the_compose_stack(
    docker: Docker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    figures: dict[str, Any] = {"bench": "containers"}
    figures.update(build_images(docker))
    figures.update(image_alone_keeps_its_data(docker))
    figures.update(compose_stack(docker, tmp_path))
    # To the terminal, not captured: the whole suite's run shows the figures the README quotes
    # (it runs this test in a process of its own, not in an xdist worker).
    with capsys.disabled():
        print(f"\n{json.dumps(figures)}")


def build_images(docker: Docker) -> dict[str, Any]:
    def build(tag: str) -> float:
        context, dockerfile = IMAGES[tag]
        started = time.monotonic()
        docker.run("build", "-q", "-t", tag, "-f", str(dockerfile), str(context), timeout=900)
        return time.monotonic() - started

    with ThreadPoolExecutor(len(IMAGES)) as pool:
        seconds = dict(zip(IMAGES, pool.map(build, IMAGES), strict=True))
    size = int(docker.run("image", "inspect", "-f", "{{.Size}}", "reminders:latest").stdout)
    base = int(docker.run("image", "inspect", "-f", "{{.Size}}", "debian:bookworm-slim").stdout)
    # The image runs as its own user, in /data, with the health check and command asked for.
    config = json.loads(docker.run("image", "inspect", "reminders:latest").stdout)[0]["Config"]
    assert config["User"] == "reminders"
    assert config["WorkingDir"] == "/data"
    assert "/data" in config["Volumes"]
    assert config["Entrypoint"] == ["reminders"]
    assert config["Cmd"] == ["serve", "--host", "0.0.0.0"]
    assert "/healthz" in " ".join(config["Healthcheck"]["Test"])
    assert not [e for e in config["Env"] if e.startswith("REMINDERS_")], config["Env"]
    return {
        "image_mb": round(size / 1e6),
        "base_mb": round(base / 1e6),
        "build_s": round(seconds["reminders:latest"], 1),
    }


def image_alone_keeps_its_data(docker: Docker) -> dict[str, Any]:
    port = free_ports(1)[0]
    docker.run("volume", "create", "reminders-alone")
    started = time.monotonic()
    docker.run(
        "run", "-d", "--name", "alone", "-p", f"127.0.0.1:{port}:8000",
        "-v", "reminders-alone:/data", "reminders:latest",
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: answers(f"{base}/healthz"), 60, "the container's /healthz", docker, "alone")
    to_healthz = time.monotonic() - started
    wait_until(lambda: health(docker, "alone") == "healthy", 60, "Docker's health check")
    to_healthy = time.monotonic() - started

    assert docker.run("exec", "alone", "id", "-u").stdout.strip() != "0"
    found = re.search(r"\b(rmd_[A-Za-z0-9_-]+)", docker.logs("alone"))
    assert found, docker.logs("alone")
    headers = {"Authorization": f"Bearer {found.group(1)}"}
    a_year_ahead = (datetime.now(UTC) + timedelta(days=365)).isoformat()
    created = httpx.post(
        f"{base}/api/v1/messages",
        # A year ahead: kept, not sent, by the lone container's outbox sender.
        json={"to": {"phones": ["+359888000111"]}, "text": "Кепе", "send_at": a_year_ahead},
        headers=headers,
    )
    assert created.status_code == 201, created.text

    docker.run("restart", "alone")
    wait_until(lambda: answers(f"{base}/healthz"), 60, "/healthz after the restart")
    again = httpx.get(f"{base}/api/v1/messages/{created.json()['id']}", headers=headers)
    assert again.status_code == 200, again.text
    assert again.json()["text"] == "Кепе"
    assert docker.logs("alone").count("an admin key was created") == 1
    docker.run("rm", "-f", "alone")
    docker.run("volume", "rm", "reminders-alone")
    return {"to_healthz_s": round(to_healthz, 1), "to_healthy_s": round(to_healthy, 1)}


def compose_stack(docker: Docker, tmp_path: Path) -> dict[str, Any]:
    web_port = free_pair()
    env_file = tmp_path / "stack.env"
    env_file.write_text(
        f"REMINDERS_ENV_FILE={env_file}\n"
        f"POSTGRES_PASSWORD={secrets.token_urlsafe(16)}\n"
        f"KANNEL_PASSWORD={secrets.token_urlsafe(16)}\n"
        f"REMINDERS_WEBHOOK_SECRET={secrets.token_urlsafe(32)}\n"
        f"REMINDERS_WEB_PORTS={web_port}-{web_port + 1}\n"
        "REMINDERS_SEND_CONCURRENCY=4\n"
        # Bulk notices wait out quiet hours: none here, so that the test passes at any hour.
        "REMINDERS_QUIET_HOURS=off\n"
    )
    override = tmp_path / "services.override.yaml"
    stand_in = "reminders-test/services:latest"
    # JSON is YAML: the official images' stand-ins (see the module's docstring).
    override.write_text(
        json.dumps(
            {
                "services": {
                    "postgres": {
                        "image": stand_in,
                        "user": "postgres",
                        "entrypoint": ["postgres-entrypoint"],
                    },
                    "redis": {"image": stand_in},
                }
            }
        )
    )
    files = [DEPLOY / "compose.yaml", override]

    def compose(*args: str, check: bool = True) -> Any:
        return docker.compose(files, PROJECT, env_file, "--profile", "demo", *args, check=check)

    def sql(query: str) -> list[list[str]]:
        out = compose("exec", "-T", "postgres", "psql", "-U", "reminders", "-d", "reminders",
                      "-AtF", "\t", "-c", query).stdout  # fmt: skip
        return [line.split("\t") for line in out.splitlines() if line]

    try:
        compose("up", "-d", "--no-build")
        state = containers(docker)
        assert state.get(f"{PROJECT}_migrate_1", "").startswith("Exit 0"), (
            state, compose("ps", "-a").stdout, compose("logs", "--no-color", "migrate").stdout
        )  # fmt: skip
        for name in ("web_1", "web_2", "worker_1", "worker_2", "kannel_1", "fakesmsc_1"):
            assert state.get(f"{PROJECT}_{name}", "").startswith("Up"), state
        kannel = f"{PROJECT}_kannel_1"
        # Quick ACKs on the Kannel container's loopback (deploy/kannel/start), and its boxes
        # running as the user kannel with no capabilities, though the container starts as root.
        routes = docker.run("exec", kannel, "ip", "route", "show", "table", "local").stdout
        assert re.search(r"^local 127\.0\.0\.1 .*quickack 1", routes, re.M), routes
        boxes = {name: status for name, status in processes(docker, kannel).items()
                 if name in ("bearerbox", "smsbox")}  # fmt: skip
        assert set(boxes) == {"bearerbox", "smsbox"}, boxes
        for status in boxes.values():
            assert status["Uid"].split()[0] != "0" and int(status["CapEff"], 16) == 0, boxes
        webs = [f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{web_port + 1}"]
        for web in webs:
            wait_until(lambda web=web: answers(f"{web}/readyz"), 60, f"{web}/readyz")

        made = compose("exec", "-T", "--index=1", "web", "reminders", "apikey", "create",
                       "compose-test", "--scope", "write").stdout  # fmt: skip
        headers = {"Authorization": f"Bearer {made.strip().splitlines()[-1]}"}

        # One message through the first web, delivered (Kannel's report), seen from the second.
        sent = httpx.post(
            f"{webs[0]}/api/v1/messages",
            json={"to": {"phones": ["+359888123456"]}, "text": "Здравейте",
                  "priority": "transactional"},
            headers=headers,
        )  # fmt: skip
        assert sent.status_code == 201, sent.text
        notice = sent.json()["notices"][0]["id"]

        def delivered() -> bool:
            got = httpx.get(f"{webs[1]}/api/v1/notices/{notice}", headers=headers)
            return got.json()["status"] == "delivered"

        wait_until(delivered, 60, "the message to be delivered", docker, f"{PROJECT}_web_1")

        # 2,000 notices drain through both workers; one of them is killed mid-drain.
        phones = [f"+35988{7_000_000 + i}" for i in range(DRAIN)]
        drain = httpx.post(
            f"{webs[1]}/api/v1/messages",
            json={"to": {"phones": phones}, "text": "Утре няма ток от 9 до 12 ч."},
            headers=headers,
            timeout=60,
        )
        assert drain.status_code == 201, drain.text
        message = drain.json()["id"]
        fakesmsc = f"{PROJECT}_fakesmsc_1"

        def received() -> Counter[str]:
            lines = docker.logs(fakesmsc).splitlines()
            return Counter(sms.receiver for line in lines if (sms := parse_received(line)))

        wait_until(lambda: len(received()) >= KILL_AFTER, 120, "the drain to start")
        docker.run("kill", "-s", "KILL", f"{PROJECT}_worker_1")
        killed_at = len(received())

        def pending() -> int:
            rows = sql(
                f"SELECT count(*) FROM notices WHERE message_id = {message} "
                "AND status NOT IN ('sent', 'delivered', 'unknown', 'failed', 'cancelled')"
            )
            return int(rows[0][0])

        # The killed worker's claimed notices are settled by the other at its second look.
        wait_until(lambda: pending() == 0, 240, "every notice to reach a final state")
        rows = sql(f"SELECT phone, status FROM notices WHERE message_id = {message}")
        statuses = {phone: status for phone, status in rows}
        final = Counter(statuses.values())
        at_gateway = received()
        assert len(statuses) == DRAIN
        assert set(final) <= FINAL, final
        # Nothing twice: the operator received each number at most once.
        assert max(at_gateway.values()) == 1, at_gateway.most_common(3)
        # Nothing lost: each notice reached the gateway, or is `unknown` (handed over when the
        # worker died, or nearly: flagged for a person, never resent), and those are only what
        # the killed worker's bulk lane held.
        for phone, status in statuses.items():
            if status in ("sent", "delivered"):
                assert at_gateway[phone] == 1, (phone, status)
            else:
                assert status == "unknown"
        assert final["unknown"] <= 2 * KannelSender.batch_size, final
        assert sum(1 for p in phones if at_gateway[p]) + final["unknown"] >= DRAIN

        # While the operator's link is down, Kannel keeps what it accepted in its volume, and
        # a restart of its container loses none of it.
        compose("stop", "fakesmsc")
        held = "+359888555001"
        sent = httpx.post(
            f"{webs[0]}/api/v1/messages",
            json={"to": {"phones": [held]}, "text": "Held by Kannel", "priority": "transactional"},
            headers=headers,
        )  # fmt: skip
        assert sent.status_code == 201, sent.text

        def spooled() -> int:
            found = docker.run("exec", kannel, "find", "/var/spool/kannel/store", "-type", "f")
            return len(found.stdout.split())

        wait_until(lambda: spooled() == 1, 60, "Kannel to hold the message", docker, kannel)
        docker.run("restart", kannel)
        assert spooled() == 1, docker.logs(kannel)[-3000:]
        compose("start", "fakesmsc")
        wait_until(lambda: received()[held] == 1, 60, "the held message", docker, kannel)
        wait_until(lambda: spooled() == 0, 30, "Kannel's spool to empty", docker, kannel)

        restarted = containers(docker)[f"{PROJECT}_worker_1"]
        since, started = time.time(), time.monotonic()
        compose("down")
        down = time.monotonic() - started
        ends = stopped(docker, since)
        last_end = max(float(e.split()[0]) for e in ends if " die " in e)
        # SIGTERM reached each process, each stopped in order, and Docker cleaned up after
        # them: the whole `down`, not only the processes' ends.
        assert down < 5, f"`down` took {down:.1f} s: {ends}"
        return {
            "killed_at": killed_at,
            "killed_worker_then": restarted,
            "final": dict(final),
            "stopped_s": round(last_end, 1),
            "down_s": round(down, 1),
            "down_ends": ends,
        }
    finally:
        compose("down", "-v", "-t", "1", check=False)


def processes(docker: Docker, container: str) -> dict[str, dict[str, str]]:
    """The fields Name, Uid and CapEff of /proc/PID/status for each process in ``container``,
    by name (the image has no ps)."""
    script = 'for f in /proc/[0-9]*/status; do grep -E "^(Name|Uid|CapEff):" "$f"; echo; done'
    out = docker.run("exec", container, "bash", "-c", script).stdout
    found: dict[str, dict[str, str]] = {}
    for block in out.split("\n\n"):
        fields = dict(line.split(":\t", 1) for line in block.strip().splitlines())
        if "Name" in fields:
            found[fields["Name"]] = fields
    return found


def containers(docker: Docker) -> dict[str, str]:
    """Each container of the project and its state: "Up", "Exit 0", "Restarting"... (read
    from Docker, not from `docker-compose ps`, whose table wraps its cells on a busy run)."""
    out = docker.run(
        "ps", "-a", "--filter", f"label=com.docker.compose.project={PROJECT}",
        "--format", "{{.Names}}\t{{.State}}\t{{.Status}}",
    ).stdout  # fmt: skip
    states: dict[str, str] = {}
    for line in out.splitlines():
        name, state, status = line.split("\t")
        if state == "exited":
            code = re.search(r"Exited \((-?\d+)\)", status)
            states[name] = f"Exit {code.group(1) if code else '?'}"
        else:
            states[name] = {"running": "Up"}.get(state, state.capitalize())
    return states


def stopped(docker: Docker, since: float) -> list[str]:
    """What `down` did after ``since``, in seconds after it: each container's stop (and how it
    ended), its removal, the network's removal. For a slow `down`."""
    out = docker.run(
        "events", "--since", f"{since:.3f}", "--until", f"{time.time():.3f}",
        "--filter", "event=kill", "--filter", "event=die", "--filter", "event=destroy",
        "--format", "{{.TimeNano}} {{.Type}} {{.Action}} {{.Actor.Attributes.name}} "
        "{{.Actor.Attributes.exitCode}}",
    ).stdout  # fmt: skip
    events = []
    for line in out.splitlines():
        nanos, kind, action, name, *code = line.split()
        what = f"{kind} {name} {action}" + (f" {code[0]}" if code and action == "die" else "")
        events.append(f"+{int(nanos) / 1e9 - since:.2f} {what}")
    return events


def health(docker: Docker, container: str) -> str:
    return docker.run("inspect", "-f", "{{.State.Health.Status}}", container).stdout.strip()


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def wait_until(
    check: Callable[[], bool],
    timeout: float,
    what: str,
    docker: Docker | None = None,
    container: str | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            logs = docker.logs(container)[-4000:] if docker and container else ""
            raise AssertionError(f"waited {timeout:.0f} s for {what}\n{logs}")
        time.sleep(0.3)


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def free_pair() -> int:
    """A port whose next one is free too: the two web containers publish a range."""
    for _ in range(100):
        (port,) = free_ports(1)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two consecutive free ports")
