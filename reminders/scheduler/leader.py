"""One active scheduler among many processes, chosen by a Redis lock.

Every process runs its APScheduler paused and can still add jobs. The holder of the lock
(redis-py's ``Lock``: a key with a TTL that holds the process's token, renewed every few seconds
only while it still holds that token) resumes its scheduler; a process that fails to renew
pauses at once. If the holder dies, its key expires and another process takes over within
``ttl + poll`` seconds, then reconciles the notices with the job store.

Taking over (reconciling the notices with the job store: seconds with a million pending) runs
on a thread of its own: the leadership thread goes on renewing the lock and the alive key
meanwhile, so a slow takeover never lets the lock lapse into a second leader. Each election is
a term; what the takeover does last (start firing) it does only if its term still holds.

A leader whose scheduler cannot run (its job store has failed for too long, see
``scheduler/health.py``) gives the lock up, so a standby takes over, and does not campaign again
until its store answers. A process that cannot reach Redis pauses at once: it cannot know that
nobody else took over.

Each process also keeps a short-lived "alive" key. A new leader uses them to tell a notice left in
``sending`` by a dead process (its outcome is unknown) from one a live process is still sending.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable

import redis
from redis.exceptions import LockNotOwnedError

log = logging.getLogger(__name__)


def process_token() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Leadership:
    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str,
        token: str,
        on_elected: Callable[[], None],
        on_deposed: Callable[[], None],
        cannot_lead: Callable[[], str | None] = lambda: None,
        ttl: float = 10.0,
        renew_every: float = 3.0,
        poll_every: float = 1.0,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.key = f"{prefix}scheduler:leader"
        self.alive_prefix = f"{prefix}alive:"
        self.token = token
        self.ttl_ms = int(ttl * 1000)
        # Not thread-local: the leadership thread takes the lock, and ``stop`` (another thread)
        # frees it. The key holds the token, so anyone can tell which process leads.
        self._lock = client.lock(self.key, timeout=ttl, thread_local=False)
        self.renew_every = renew_every
        self.poll_every = poll_every
        self._on_elected = on_elected
        self._on_deposed = on_deposed
        self._cannot_lead = cannot_lead
        self._abstaining = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leadership", daemon=True)
        self.is_leader = False
        self.term = 0  # elections won by this process; the current one while leading
        self._takeover_failed = threading.Event()

    def holds(self, term: int) -> bool:
        """Whether this process still leads in ``term`` (not deposed since, nor re-elected)."""
        return self.is_leader and self.term == term

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop campaigning; a leader gives the lock up so another takes over at once."""
        self._stop.set()
        self._thread.join(timeout=10)
        if self.is_leader:
            self._depose()
        self._release()
        try:
            self.client.delete(self.alive_prefix + self.token)
        except redis.RedisError:
            pass  # it expires on its own

    @property
    def alive_ttl(self) -> float:
        """Seconds an alive key outlives its process's last write."""
        return self.ttl_ms / 1000

    def live_tokens(self) -> set[str]:
        """Tokens of the processes whose alive key has not expired."""
        found: set[str] = set()
        for key in self.client.scan_iter(match=self.alive_prefix + "*", count=500):
            name = key.decode() if isinstance(key, bytes) else str(key)
            found.add(name.removeprefix(self.alive_prefix))
        return found

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._step()
            except redis.RedisError as exc:
                if self.is_leader:
                    # Without Redis we cannot know that nobody else took over: stop firing.
                    log.warning("Redis unreachable (%s); pausing this scheduler", exc)
                    self._depose()
            except Exception:
                log.exception("leadership step failed")
                if self.is_leader:
                    self._step_down()
            self._stop.wait(self.renew_every if self.is_leader else self.poll_every)

    def _step(self) -> None:
        self.client.set(self.alive_prefix + self.token, "1", px=self.ttl_ms)
        unable = self._cannot_lead()
        if self.is_leader and self._takeover_failed.is_set():
            self._takeover_failed.clear()
            log.warning("taking over the scheduler failed; giving the lock up")
            self._step_down()
            return
        if self.is_leader:
            if unable is not None:
                log.warning("this scheduler cannot run (%s); giving up the scheduler lock", unable)
                self._abstaining = True
                self._step_down()
            else:
                try:
                    self._lock.reacquire()  # only while the key still holds our token
                except LockNotOwnedError:
                    log.warning("lost the scheduler lock; pausing this scheduler")
                    self._depose()
            return
        if unable is not None:
            if not self._abstaining:
                log.warning("not standing for the scheduler lock: %s", unable)
                self._abstaining = True
            return
        if self._abstaining:
            log.info("this scheduler can run again; standing for the scheduler lock")
            self._abstaining = False
        if self._lock.acquire(blocking=False, token=self.token):
            log.info("took the scheduler lock; this process now runs the scheduler")
            self.term += 1
            self._takeover_failed.clear()
            self.is_leader = True
            # Off this thread, which must go on renewing the lock while the takeover works.
            threading.Thread(
                target=self._take_over, args=(self.term,), name="takeover", daemon=True
            ).start()

    def _take_over(self, term: int) -> None:
        try:
            self._on_elected()
        except Exception:
            log.exception("taking over the scheduler failed")
            if self.holds(term):
                self._takeover_failed.set()  # the leadership thread steps down

    def _step_down(self) -> None:
        """Stop firing, then free the lock so that another process takes over at once."""
        self._depose()
        self._release()

    def _release(self) -> None:
        """Delete the lock's key if it still holds our token."""
        try:
            self._lock.release()
        except redis.RedisError:
            # Not ours (never taken, expired, or taken over: ``LockError``), or Redis is away:
            # either way it is not ours to delete, or it expires on its own.
            pass

    def _depose(self) -> None:
        self.is_leader = False
        try:
            self._on_deposed()
        except Exception:
            log.exception("pausing the scheduler failed")
