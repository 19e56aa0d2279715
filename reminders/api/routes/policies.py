"""Reminder policies, addressed by name."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from reminders import policies
from reminders.api.deps import ReadKey, SchedulerDep, SessionDep, SettingsDep, WriteKey
from reminders.models import Policy
from reminders.scheduler.anchors import replan_policy
from reminders.schemas.policies import PolicyCreate, PolicyOut, PolicyUpdate

router = APIRouter(prefix="/policies", tags=["policies"])
NamePath = Annotated[str, Path(min_length=1, max_length=64)]


def _out(policy: Policy) -> PolicyOut:
    return PolicyOut.model_validate(policy, from_attributes=True)


@router.get("")
def list_policies(session: SessionDep, _: ReadKey) -> list[PolicyOut]:
    return [_out(p) for p in policies.list_policies(session)]


@router.post("", status_code=201)
def create_policy(
    data: PolicyCreate, session: SessionDep, settings: SettingsDep, _: WriteKey
) -> PolicyOut:
    """Steps are checked when saved: offsets, times of day, and that each template compiles;
    so are the answer words (none twice, no opt-out keyword) and acknowledgements."""
    policy = policies.create_policy(session, data, settings)
    session.commit()
    return _out(policy)


@router.get("/{name}")
def get_policy(name: NamePath, session: SessionDep, _: ReadKey) -> PolicyOut:
    return _out(policies.get_policy(session, name))


@router.patch("/{name}")
def update_policy(
    name: NamePath,
    data: PolicyUpdate,
    session: SessionDep,
    settings: SettingsDep,
    scheduler: SchedulerDep,
    _: WriteKey,
) -> PolicyOut:
    """Saved, then applied at once to its anchors that still have reminders to come: moved
    steps move their notices, removed steps cancel theirs. ``planned`` says what changed."""
    policy = policies.update_policy(session, name, data, settings)
    session.commit()  # saved first; replan_policy commits its anchors a chunk at a time
    out = _out(policy)
    out.planned = replan_policy(session, scheduler, name, settings=settings)
    return out


@router.delete("/{name}", status_code=204)
def delete_policy(name: NamePath, session: SessionDep, _: WriteKey) -> Response:
    """Refused (409) while an anchor that is not cancelled uses the policy."""
    policies.delete_policy(session, name)
    session.commit()
    return Response(status_code=204)
