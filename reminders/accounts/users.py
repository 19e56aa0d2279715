"""Users: the people who sign in to the control panel, each in one account or above them all.

A user of an account has a role there (``models.Role``); a provider administrator
(``account_id`` None) has none and manages every account. A session acting for an account
(``scoping``) sees that account's users alone, so a provider administrator is never listed or
changed through an account. Emails are unique across the deployment, stored casefolded: signing
in comes before anyone knows the account. Passwords are kept as Argon2 hashes and never logged,
returned or repeated in an error.

Functions flush; their caller commits (and rolls back after a ``DomainError``).
"""

from __future__ import annotations

from pwdlib import PasswordHash
from pwdlib.exceptions import UnknownHashError
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select
from sqlmodel.sql.expression import SelectOfScalar

from reminders.accounts.scoping import EVERY_ACCOUNT, account_of
from reminders.db import utcnow
from reminders.errors import Conflict, InvalidField, NotFound
from reminders.models import Role, User
from reminders.schemas.users import MAX_PASSWORD, UserUpdate, normal_email, valid_password

# OWASP's Argon2id setting (19 MiB, 2 passes, 1 lane) rather than the library's 64 MiB and 4
# lanes: each hash holds its memory while it runs, and the API runs up to
# REMINDERS_API_CONCURRENCY requests at once, so ten sign-ins at once stay under 200 MB on a
# small server. A stored hash names its own parameters, so changing them later still verifies
# old hashes, and ``authenticate`` rehashes them.
_HASHER = PasswordHash((Argon2Hasher(time_cost=2, memory_cost=19 * 1024, parallelism=1),))
_unknown_email_hash: str | None = None


def _password(password: str) -> str:
    try:
        return valid_password(password)
    except ValueError as exc:
        raise InvalidField(str(exc), field="password") from None


def hash_password(password: str) -> str:
    """The Argon2 hash of ``password``, once it passes the rules (InvalidField naming
    ``password`` otherwise)."""
    return _HASHER.hash(_password(password))


def verify_password(user: User, password: str) -> bool:
    """Whether ``password`` is ``user``'s; a hash this library cannot read matches nothing."""
    try:
        return _HASHER.verify(password, user.password_hash)
    except UnknownHashError:
        return False


def _email(value: str) -> str:
    try:
        return normal_email(value)
    except ValueError as exc:
        raise InvalidField(str(exc), field="email") from None


def _role(value: str | None, account_id: int | None) -> Role:
    if account_id is None:
        if value not in (None, Role.admin):
            raise InvalidField(
                "a provider administrator is above every account and has no role in one",
                field="role",
            )
        return Role.admin  # what they may do covers an account admin's, and more
    if value is None:
        raise InvalidField(
            "a user of an account needs a role: admin, operator or viewer", field="role"
        )
    try:
        return Role(value)
    except ValueError:
        raise InvalidField(
            f"{value!r} is not one of admin, operator, viewer", field="role"
        ) from None


def find_by_email(session: Session, email: str) -> User | None:
    """The user with ``email`` (any case) in any account, or None."""
    try:
        folded = normal_email(email)
    except ValueError:
        return None
    return session.exec(
        select(User).where(User.email == folded).execution_options(**{EVERY_ACCOUNT: True})
    ).first()


def _check_email_free(session: Session, email: str, user_id: int | None) -> None:
    # Looked up across accounts: the address is unique in the whole deployment.
    found = find_by_email(session, email)
    if found is not None and found.id != user_id:
        raise Conflict(f"a user with the email {email!r} already exists", field="email")


def _flush(session: Session, email: str) -> None:
    try:
        session.flush()
    except IntegrityError:
        # Two requests racing for the same address; the caller rolls its transaction back.
        raise Conflict(f"a user with the email {email!r} already exists", field="email") from None


def create_user(
    session: Session,
    *,
    email: str,
    password: str,
    role: str | None,
    account_id: int | None,
    disabled: bool = False,
) -> User:
    """A user of ``account_id`` with ``role``, or a provider administrator (``account_id``
    None, no role); flushed, the caller commits."""
    if account_id is None and account_of(session) is not None:
        raise RuntimeError("a provider administrator is made above any account")
    folded = _email(email)
    parsed = _role(role, account_id)
    _password(password)
    _check_email_free(session, folded, None)  # before the hash, which takes a while
    user = User(
        account_id=account_id,
        email=folded,
        password_hash=hash_password(password),
        role=parsed,
        disabled=disabled,
    )
    session.add(user)
    _flush(session, folded)
    return user


def list_users(session: Session) -> list[User]:
    """The users the session sees: its account's, or everyone for an unscoped one."""
    return list(session.exec(select(User).order_by(col(User.id))))


def get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    scope = account_of(session)
    # The session's filter already hides other accounts' users (provider administrators
    # included); said again here because this is the door every change goes through.
    if user is None or (scope is not None and user.account_id != scope):
        raise NotFound(f"no user with id {user_id}", field="id")
    return user


def update_user(session: Session, user_id: int, data: UserUpdate) -> User:
    """Change the fields named in ``data``; refused (409) when it would leave the user's
    account without an enabled admin. Flushed, the caller commits."""
    user = get_user(session, user_id)
    changes = data.model_dump(exclude_unset=True)
    for name, value in changes.items():
        if value is None:
            raise InvalidField("may not be null", field=name)
    if "email" in changes:
        changes["email"] = _email(changes["email"])
        _check_email_free(session, changes["email"], user_id)
    if "role" in changes:
        changes["role"] = _role(changes["role"], user.account_id)
    if "password" in changes:
        changes["password_hash"] = hash_password(changes.pop("password"))
    demoted = changes.get("role", Role.admin) != Role.admin
    removes_an_admin = demoted or changes.get("disabled") is True
    before = _lock_admins(session, user.account_id) if removes_an_admin else 0
    for name, value in changes.items():
        setattr(user, name, value)
    user.updated_at = utcnow()
    session.add(user)
    _flush(session, user.email)
    if removes_an_admin:
        _keep_an_admin(session, user, before, "disable or demote")
    return user


def delete_user(session: Session, user_id: int) -> None:
    """Delete a user, unless they are the last enabled admin of their account (409);
    flushed, the caller commits."""
    user = get_user(session, user_id)
    before = _lock_admins(session, user.account_id)
    session.delete(user)
    session.flush()
    _keep_an_admin(session, user, before, "delete")


def _enabled_admins(account_id: int | None) -> SelectOfScalar[int | None]:
    owner = col(User.account_id).is_(None) if account_id is None else User.account_id == account_id
    return select(col(User.id)).where(owner, User.role == Role.admin, col(User.disabled).is_(False))


def _lock_admins(session: Session, account_id: int | None) -> int:
    """Lock the enabled admins of ``account_id`` and count them.

    Two requests each disabling one of the last two admins must not both pass. On PostgreSQL
    the second waits here for the first to commit and then no longer finds that admin; SQLite
    runs one writer at a time, and ``_keep_an_admin`` counts after this request's own write.
    """
    query = _enabled_admins(account_id).order_by(col(User.id)).with_for_update()
    return len(session.exec(query).all())


def _keep_an_admin(session: Session, user: User, before: int, doing: str) -> None:
    """Refuse a change that left an account with no enabled admin when it had one."""
    subquery = _enabled_admins(user.account_id).subquery()
    after = session.exec(select(func.count()).select_from(subquery)).one()
    if before and not after:
        whose = "the provider's" if user.account_id is None else "the account's"
        raise Conflict(
            f"user {user.id} is {whose} last enabled admin; make another user an admin "
            f"before you {doing} this one",
            field="id",
        )


def authenticate(session: Session, email: str, password: str) -> User | None:
    """The enabled user ``email`` and ``password`` sign in as, or None; flushed, the caller
    commits (their ``last_login_at``, and a hash made again with newer parameters).

    Whether the account is suspended is for the caller to say.
    """
    global _unknown_email_hash
    user = find_by_email(session, email) if len(password) <= MAX_PASSWORD else None
    if user is None:
        # The same work as a wrong password, so the time taken does not tell which emails exist.
        if _unknown_email_hash is None:
            _unknown_email_hash = _HASHER.hash("not anyone's password")
        _HASHER.verify(password[:MAX_PASSWORD], _unknown_email_hash)
        return None
    try:
        valid, new_hash = _HASHER.verify_and_update(password, user.password_hash)
    except UnknownHashError:
        return None
    if not valid or user.disabled:
        return None
    if new_hash is not None:
        user.password_hash = new_hash
    user.last_login_at = utcnow()
    session.add(user)
    session.flush()
    return user
