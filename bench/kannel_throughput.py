"""Kannel throughput: messages per second the service hands to a real Kannel.

Kannel (bearerbox, smsbox, fakesmsc as the operator) runs on 127.0.0.1 through the test
harness (tests/kannel.py). The service is measured twice:
- whole: notices in SQLite fired by ``fire_many`` as the scheduler fires them (claim, load,
  compose, send through ``KannelSender``, record the attempt and the outcome); this is the
  figure reported;
- the sender alone: ``KannelSender.send_many`` fed the same batches, no database around it.
No delivery reports: without a public URL the sender asks for none. With them, Kannel's own
DLR bookkeeping would set the pace (about 50/s sequentially here), not the sender.

Baseline, in the same run and against the same Kannel: a bare sequential loop of plain GETs
through ``http.client``, one connection each (Kannel closes every one), with the same query the
sender builds. Both runs must see every message at fakesmsc; the run fails otherwise.

On two cores shared with Kannel the gap is httpx.Client's own work per request (about 300 µs):
not the connection, since Kannel closes every one, and not concurrency, since parallel requests
to smsbox were slower here than one after the other.

    .venv/bin/python -m bench.kannel_throughput [--n 5000] [--text ascii|cyrillic]
Prints the rates and one JSON line: the whole service's messages/s, bare messages/s,
ratio = service/bare.
"""

from __future__ import annotations

import argparse
import http.client
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from sqlalchemy import create_engine

from bench.common import database, report
from reminders.accounts.scoping import scoped_session
from reminders.messages import create_message
from reminders.pending_jobs import commit_and_schedule
from reminders.scheduler.firing import fire_many
from reminders.schemas.messages import MessageCreate
from reminders.sender.base import Accepted, OutgoingSms
from reminders.sender.kannel import KannelSender
from reminders.sender.kannel_dlr import new_attempt
from reminders.settings import Settings, load_settings
from tests import kannel as harness

TEXTS = {
    "ascii": "Reminder: your appointment with Dr Petrov is tomorrow at 10:30. Reply STOP to end.",
    "cyrillic": "Напомняне: часът ви при д-р Петров е утре в 10:30 ч.",
}
SENDER_ID = "MyShop"
WARM_UP = 50


def messages(prefix: str, n: int, text: str) -> list[OutgoingSms]:
    """``n`` messages to numbers that start with ``prefix``: each run counts only its own."""
    return [
        OutgoingSms(notice_id=i + 1, to=f"{prefix}{i:06d}", text=text, sender_id=SENDER_ID)
        for i in range(n)
    ]


def bare_loop(url: str, queries: Sequence[str]) -> None:
    """The baseline: one plain GET after the other, each on its own connection."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    for query in queries:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        conn.request("GET", f"{parts.path}?{query}")
        response = conn.getresponse()
        body = response.read()
        conn.close()
        if response.status != 202:
            raise SystemExit(f"Kannel answered {response.status}: {body[:200]!r}")


def service_loop(sender: KannelSender, batch: Sequence[OutgoingSms]) -> None:
    """The service: ``send_many`` a batch at a time, as firing does."""
    size = sender.batch_size
    for start in range(0, len(batch), size):
        for result in sender.send_many(batch[start : start + size]):
            if not isinstance(result, Accepted):
                raise SystemExit(f"the sender failed: {result}")


def whole_service(
    kannel: harness.Kannel, settings: Settings, prefix: str, n: int, text: str
) -> float:
    """Messages per second from due notices to Kannel's acceptance, recorded in SQLite."""
    # Valid Bulgarian mobiles this time (the API refuses others): 9 digits after +359.
    phones = [f"{prefix}{i:05d}" for i in range(n)]
    data = MessageCreate.model_validate(
        {"to": {"phones": phones}, "text": text, "sender_id": SENDER_ID}
    )
    with database("sqlite") as engine:
        with scoped_session(engine, 1, expire_on_commit=False) as session:
            _, notices = create_message(session, None, data, region="BG")
            commit_and_schedule(session)
        ids = [notice.id for notice in notices if notice.id is not None]
        sender = KannelSender(settings, engine)

        def fire() -> None:
            outcomes = fire_many(engine, sender, ids, settings=settings)
            failed = [s for s in outcomes.values() if s != "sent"]
            if len(outcomes) != n or failed:
                raise SystemExit(f"whole service: {len(outcomes)} fired, not sent: {failed[:3]}")

        try:
            return timed(kannel, prefix, n, fire, "whole service")
        finally:
            sender.close()


def arrived(kannel: harness.Kannel, prefix: str) -> int:
    return sum(1 for sms in kannel.received() if sms.receiver.startswith(prefix))


def timed(kannel: harness.Kannel, prefix: str, n: int, run: Callable[[], None], what: str) -> float:
    """Run ``run``; return messages per second, once fakesmsc has all ``n`` of ``prefix``."""
    started = time.perf_counter()
    run()
    elapsed = time.perf_counter() - started
    deadline = time.monotonic() + 60
    while (count := arrived(kannel, prefix)) < n:
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: {count} of {n} messages reached fakesmsc")
        time.sleep(0.1)
    if count != n:
        raise SystemExit(f"{what}: fakesmsc got {count} messages, {n} were sent")
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--text", default="ascii", choices=sorted(TEXTS))
    args = parser.parse_args()
    text = TEXTS[args.text]
    with tempfile.TemporaryDirectory() as tmp, harness.running(Path(tmp)) as kannel:
        settings = load_settings(
            kannel_url=kannel.sendsms_url,
            kannel_username=harness.USERNAME,
            kannel_password=harness.PASSWORD,
            kannel_max_parts=kannel.max_messages,
        )
        engine = create_engine("sqlite://")  # kept by the sender, never used to send
        sender = KannelSender(settings, engine)
        try:
            # The same query for both: the sender's own parameters, URL-encoded once here.
            bare = messages("+3598881", args.n, text)
            queries = [urlencode(sender.params(sms, new_attempt())) for sms in bare]
            service = messages("+3598882", args.n, text)
            warm_up = messages("+3598880", WARM_UP, text)  # counted by neither run
            bare_loop(
                kannel.sendsms_url,
                [urlencode(sender.params(sms, new_attempt())) for sms in warm_up],
            )
            service_loop(sender, warm_up)
            baseline = timed(
                kannel,
                "+3598881",
                args.n,
                lambda: bare_loop(kannel.sendsms_url, queries),
                "bare loop",
            )
            alone = timed(
                kannel, "+3598882", args.n, lambda: service_loop(sender, service), "sender"
            )
            value = whole_service(kannel, settings, "+3598883", args.n, text)
        finally:
            sender.close()
            engine.dispose()
    print(
        f"{args.n} messages ({args.text}): bare http.client {baseline:.0f}/s, "
        f"KannelSender.send_many alone {alone:.0f}/s, the whole service {value:.0f}/s",
        file=sys.stderr,
        flush=True,
    )
    report(f"kannel_throughput_{args.text}", value, "messages/s", baseline, value / baseline)


if __name__ == "__main__":
    main()
