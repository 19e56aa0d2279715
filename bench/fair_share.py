"""Fair share: one account's backlog does not hold back another account's reminders.

Account A has ``--backlog`` bulk notices due at once; ``--later`` seconds after they fall due,
account B's ``--small`` reminders fall due. Both accounts have ``rate_share`` 1 and the service
sends at ``--rate`` messages a second through the outbox sender. The figure is how long after
falling due B's last reminder was handed over (``sent_at`` as recorded), and A's rate while B
was being served.

Baseline, in the same run: the same scene with the bulk lane served first come, first served
(one queue for every account, as before accounts took turns), where B waits for A's whole
backlog ahead of it: about backlog / rate seconds. Each side runs in its own process.

    .venv/bin/python -m bench.fair_share [--backlog 10000] [--small 200] [--rate 200]
        [--db sqlite|postgresql]
Prints one JSON line: B's last reminder's wait in seconds, fair and first come first served.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, text

from bench.common import database, in_own_process, report


def _notices(account_id: int, count: int, due: datetime, prefix: str) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [
        {
            "account_id": account_id,
            "key": f"{prefix}:{i}",
            "kind": "message",
            "status": "scheduled",
            "phone": f"+35988{account_id}{i:06d}",
            "text": "Утре няма ток от 9 до 12 ч.",
            "is_template": False,
            "send_at": due,
            "created_at": now,
            "updated_at": now,
        }
        for i in range(count)
    ]


def run(
    kind: str, backlog: int, small: int, rate: float, later: float, fair: bool
) -> dict[str, Any]:
    from reminders.models import Account, Notice
    from reminders.runtime import Runtime
    from reminders.scheduler.notice_scheduler import NoticeScheduler
    from reminders.sender.outbox import OutboxSender
    from reminders.sender.rate import LocalRate
    from reminders.settings import load_settings

    with database(kind) as engine:
        with engine.begin() as conn:
            conn.execute(insert(Account), [{"slug": "clinic-b", "name": "B", "sender_ids": [],
                                            "inbound_numbers": [], "rate_share": 1,
                                            "status": "active",
                                            "created_at": datetime.now(UTC),
                                            "updated_at": datetime.now(UTC)}])  # fmt: skip
            b_id = conn.execute(text("SELECT id FROM accounts WHERE slug = 'clinic-b'")).scalar()
            # Far enough ahead that writing the notices and their jobs ends before A falls due
            # (checked below): else B's wait would count the set-up too.
            due_a = datetime.now(UTC) + timedelta(seconds=5 + backlog / 5_000)
            due_b = due_a + timedelta(seconds=later)
            for start in range(0, backlog, 10_000):
                conn.execute(
                    insert(Notice),
                    _notices(1, min(10_000, backlog - start), due_a, f"a{start}"),
                )
            conn.execute(insert(Notice), _notices(int(b_id), small, due_b, "b"))
            rows = conn.execute(text("SELECT id, account_id, send_at FROM notices")).all()
        settings = load_settings(database_url=str(engine.url), quiet_hours="off", send_rate=rate)
        runtime = Runtime(
            settings, engine, OutboxSender(settings, engine), token="bench", rate=LocalRate(rate)
        )
        scheduler = NoticeScheduler(engine, runtime=runtime)
        if not fair:
            # One queue: first come, first served (the lanes take no turns between accounts).
            assert scheduler.sending is not None
            scheduler.sending._shares = None  # type: ignore[assignment]
        scheduler.schedule([(i, due_a if a == 1 else due_b) for i, a, _ in rows])
        if datetime.now(UTC) >= due_a:
            raise SystemExit("writing the notices and their jobs outlasted the lead before A")
        scheduler.start()
        deadline = time.monotonic() + later + 5 + (backlog + small) / rate * 1.5 + 60
        try:
            while time.monotonic() < deadline:
                with engine.connect() as conn:
                    left = conn.execute(
                        text(
                            "SELECT count(*) FROM notices WHERE account_id = :b"
                            " AND status IN ('scheduled', 'due', 'sending')"
                        ),
                        {"b": b_id},
                    ).scalar()
                if left == 0:
                    break
                time.sleep(0.2)
        finally:
            scheduler.shutdown()
        with engine.connect() as conn:
            last_b = conn.execute(
                text("SELECT max(sent_at) FROM notices WHERE account_id = :b"), {"b": b_id}
            ).scalar()
            first_b = conn.execute(
                text("SELECT min(sent_at) FROM notices WHERE account_id = :b"), {"b": b_id}
            ).scalar()
            a_during = conn.execute(
                text(
                    "SELECT count(*) FROM notices WHERE account_id = 1"
                    " AND sent_at >= :first AND sent_at <= :last"
                ),
                {"first": first_b, "last": last_b},
            ).scalar()
            b_sent = conn.execute(
                text("SELECT count(*) FROM notices WHERE account_id = :b AND status = 'sent'"),
                {"b": b_id},
            ).scalar()
        last = _aware(last_b)
        span = max((last - _aware(first_b)).total_seconds(), 1e-9)
        return {
            "b_last_wait": (last - due_b).total_seconds(),
            "b_sent": b_sent,
            "a_rate_while_b": a_during / span,
            "both_rate_while_b": (a_during + b_sent) / span,
        }


def _aware(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=10_000)
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--later", type=float, default=5.0, help="seconds B falls due after A")
    parser.add_argument("--db", default="sqlite", choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    scene = (args.db, args.backlog, args.small, args.rate, args.later)
    fair = in_own_process(run, *scene, True)
    print("accounts in turn:", fair)
    fifo = in_own_process(run, *scene, False)
    print("first come, first served:", fifo)
    assert fair["b_sent"] == args.small and fifo["b_sent"] == args.small, (fair, fifo)
    report(
        f"fair_share_{args.db}",
        fair["b_last_wait"],
        "s",
        fifo["b_last_wait"],
        fair["b_last_wait"] / fifo["b_last_wait"],
    )


if __name__ == "__main__":
    main()
