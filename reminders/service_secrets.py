"""Secrets the service makes for itself, kept in the database so that every process shares them.

Two ``web`` processes behind one proxy must sign the control panel's cookies with one key, or a
person would be signed out whenever the proxy changed process. An operator may give the key
(``REMINDERS_SECRET_KEY``); without it the first process to need one makes it and the others
read it. Made at random, never logged.
"""

from __future__ import annotations

import secrets

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from reminders.models import ServiceSecret

PANEL_SESSIONS = "panel-sessions v1"


def shared_secret(engine: Engine, name: str) -> str:
    """The secret called ``name``: read, or made and stored by the first process that asks."""
    with Session(engine) as session:
        found = session.get(ServiceSecret, name)
        if found is not None:
            return found.value
        session.add(ServiceSecret(name=name, value=secrets.token_urlsafe(48)))
        try:
            session.commit()
        except IntegrityError:
            session.rollback()  # another process made it first: theirs is the one
    with Session(engine) as session:
        made = session.get(ServiceSecret, name)
        assert made is not None
        return made.value
