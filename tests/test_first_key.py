"""The first admin key is made once, however many processes start on a new database at once.

The compose stack starts two web containers together on an empty database; each used to find
no key and make one, and each printed its own "first admin key".
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.engine import Engine
from sqlmodel import Session

from reminders import apikeys
from reminders.process import ensure_first_key

STARTING = 6


def test_processes_starting_together_make_one_first_key(engine: Engine) -> None:
    barrier = threading.Barrier(STARTING)

    def start(_: int) -> str | None:
        barrier.wait()
        return ensure_first_key(engine)

    with ThreadPoolExecutor(STARTING) as pool:
        secrets = [secret for secret in pool.map(start, range(STARTING)) if secret]

    assert len(secrets) == 1
    with Session(engine) as session:
        assert apikeys.count_live_keys(session) == 1
    # A later start finds it and makes none.
    assert ensure_first_key(engine) is None
