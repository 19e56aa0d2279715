"""Kannel's inner stall: ``sendsms`` with delivery reports, before and after quick ACKs on the
loopback link between bearerbox and smsbox.

With delivery reports requested, smsbox acknowledges each report bearerbox hands it, and then
often writes the next message to bearerbox before that acknowledgement has been ACKed at the
TCP level. Nagle's algorithm holds the message back until bearerbox's delayed ACK, 40 ms
later. smsbox sets no TCP_NODELAY on that link, and has no option for it; the route attribute
``quickack 1`` makes the kernel ACK at once instead. deploy/kannel/start sets it in the
Kannel container (README "Deploying").

The bench runs in a network namespace of its own (``unshare --net``, so it needs root), where
it may change the loopback route without touching the machine's. Kannel (tests/kannel.py, with
fakesmsc as the operator) is started twice: once as it comes, the baseline, and once with the
route changed. Each time a bare ``httpx.Client`` sends the same ``sendsms`` requests the
``kannel`` sender builds, delivery reports requested, with ``--concurrency`` in flight; the
reports go to a small local app that answers 200. Every message must reach fakesmsc.

    sudo .venv/bin/python -m bench.kannel_quickack [--n 3000] [--concurrency 4]
Prints one JSON line: msg/s with quick ACKs, as Kannel comes (baseline), their ratio.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import report
from bench.link_throughput import REPORTS, bare_rate, reporting_settings
from tests import kannel as harness

PRIVATE = "REMINDERS_BENCH_NETNS"  # set once the bench runs in its own network namespace
LOOPBACK = ["local", "127.0.0.1", "dev", "lo", "table", "local", "proto", "kernel"]
LOOPBACK += ["scope", "host", "src", "127.0.0.1"]


def own_namespace() -> None:
    """Run this bench again in a new network namespace, with its loopback up."""
    if os.environ.get(PRIVATE):
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        return
    if os.geteuid() != 0:
        raise SystemExit("kannel_quickack needs root: it makes a network namespace of its own")
    command = ["unshare", "--net", "--", sys.executable, "-m", "bench.kannel_quickack"]
    result = subprocess.run(command + sys.argv[1:], env={**os.environ, PRIVATE: "1"})
    raise SystemExit(result.returncode)


def rate(prefix: str, n: int, concurrency: int) -> float:
    """Messages per second a bare client hands to a fresh Kannel, delivery reports requested."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        harness.running(Path(tmp)) as kannel,
        harness.serving(REPORTS) as reports_url,
    ):
        return bare_rate(kannel, reporting_settings(kannel, reports_url), prefix, n, concurrency)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    own_namespace()
    stock = rate("+3598871", args.n, args.concurrency)
    # Kannel is started again after the change: a route is looked up as a connection opens.
    subprocess.run(["ip", "route", "change", *LOOPBACK, "quickack", "1"], check=True)
    quick = rate("+3598872", args.n, args.concurrency)
    print(
        f"{args.n} messages, {args.concurrency} in flight, delivery reports requested: "
        f"Kannel as it comes {stock:.0f}/s, with quick ACKs on loopback {quick:.0f}/s",
        file=sys.stderr,
        flush=True,
    )
    report("kannel_quickack", quick, "msg/s", stock, quick / stock)


if __name__ == "__main__":
    main()
