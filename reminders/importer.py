"""Bulk import of contacts from CSV: every good row is kept, every bad row is reported."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError
from rich.progress import Progress
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from reminders import contacts, groups
from reminders.errors import DomainError
from reminders.models import Group
from reminders.schemas import ContactCreate, ContactUpdate, GroupCreate

COLUMNS = ("name", "phone", "email", "timezone", "language", "external_id", "opted_out", "groups")
_TRUE = {"1", "true", "yes", "y", "да"}
_FALSE = {"", "0", "false", "no", "n", "не"}


@dataclass(frozen=True)
class RefusedRow:
    line: int
    reason: str
    row: dict[str, str]


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    refused: list[RefusedRow] = field(default_factory=list)


def _reason(exc: ValidationError) -> str:
    first = exc.errors()[0]
    name = ".".join(str(p) for p in first["loc"]) or "row"
    return f"{name}: {str(first['msg']).removeprefix('Value error, ')}"


def _row_to_values(row: dict[str, str]) -> tuple[dict[str, object], list[str]]:
    values: dict[str, object] = {}
    attributes: dict[str, str] = {}
    for key, raw in row.items():
        if key is None:
            raise ValueError("row: more cells than header columns")
        name = key.strip().lower()
        value = (raw or "").strip()
        if name in ("groups",):
            continue
        if name == "opted_out":
            lowered = value.lower()
            if lowered not in _TRUE | _FALSE:
                raise ValueError(f"opted_out: {value!r} is not yes or no")
            values[name] = lowered in _TRUE
        elif name in COLUMNS:
            if value:
                values[name] = value
        elif value:
            # Any other column is kept on the contact for templates: "doctor", "account", ...
            attributes[name] = value
    if attributes:
        values["attributes"] = attributes
    return values, _group_names(row)


def _group_names(row: dict[str, str]) -> list[str]:
    return [g.strip() for g in (row.get("groups") or "").split(";") if g.strip()]


def import_csv(
    engine: Engine,
    path: Path,
    *,
    region: str,
    groups: Sequence[str] = (),
    refused_path: Path | None = None,
    show_progress: bool = True,
) -> ImportReport:
    """Create or update (by ``external_id``) one contact per row, each in its own transaction."""
    report = ImportReport()
    try:
        header, rows = _read_rows(path)
    except UnicodeDecodeError:
        raise DomainError('is not UTF-8 text; save it as "CSV UTF-8"', field=str(path)) from None
    except csv.Error as exc:
        raise DomainError(f"is not a readable CSV file: {exc}", field=str(path)) from None

    with Session(engine, expire_on_commit=False) as session:
        # Groups are made before the rows, so that a refused row never takes a new group with it.
        group_cache: dict[str, int] = {}
        for _, row in rows:
            for name in _group_names(row):
                try:
                    _group_id(session, name, group_cache)
                except ValidationError:
                    pass  # refused with its row below, with the reason
        fixed_groups = [_group_id(session, name, group_cache) for name in groups]
        session.commit()
        with Progress(transient=True, disable=not show_progress) as progress:
            task = progress.add_task("importing", total=len(rows))
            for line, row in rows:
                try:
                    outcome = _import_row(session, row, region, fixed_groups, group_cache)
                    session.commit()
                except (ValidationError, DomainError, ValueError) as exc:
                    session.rollback()
                    if isinstance(exc, ValidationError):
                        reason = _reason(exc)
                    elif isinstance(exc, DomainError):
                        reason = f"{exc.field}: {exc.message}" if exc.field else exc.message
                    else:
                        reason = str(exc)
                    report.refused.append(RefusedRow(line, reason, row))
                else:
                    if outcome == "created":
                        report.created += 1
                    else:
                        report.updated += 1
                progress.advance(task)
    if refused_path is not None and report.refused:
        _write_refused(refused_path, header, report.refused)
    return report


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The lower-cased header and each row with the file line it starts on."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        sample = handle.read(4096)
        handle.seek(0)
        try:
            dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(
                sample, delimiters=",;\t"
            )
        except csv.Error:
            dialect = csv.excel
        reader = csv.DictReader(handle, dialect=dialect)
        header = [h.strip().lower() for h in reader.fieldnames or []]
        reader.fieldnames = header
        missing = [c for c in ("name", "phone") if c not in header]
        if missing:
            raise DomainError(
                f"the header row has no {' or '.join(missing)} column", field=str(path)
            )
        rows = []
        for row in reader:
            # line_num is the record's last line: blank lines and quoted line breaks count too.
            cells = [c for v in row.values() for c in (v if isinstance(v, list) else [v or ""])]
            rows.append((reader.line_num - sum(c.count("\n") for c in cells), row))
    return header, rows


def _import_row(
    session: Session,
    row: dict[str, str],
    region: str,
    fixed_groups: list[int],
    group_cache: dict[str, int],
) -> str:
    values, group_names = _row_to_values(row)
    external_id = values.get("external_id")
    existing = contacts.find_by_external_id(session, str(external_id)) if external_id else None
    if existing is not None and existing.id is not None:
        contact = contacts.update_contact(
            session, existing.id, ContactUpdate.model_validate(values), region=region
        )
        outcome = "updated"
    else:
        contact = contacts.create_contact(
            session, ContactCreate.model_validate(values), region=region
        )
        outcome = "created"
    assert contact.id is not None
    group_ids = fixed_groups + [_group_id(session, name, group_cache) for name in group_names]
    for group_id in dict.fromkeys(group_ids):
        groups.add_members(session, group_id, [contact.id])
    return outcome


def _group_id(session: Session, name: str, cache: dict[str, int]) -> int:
    """The id of the group called ``name``, created on first mention."""
    if name not in cache:
        found = session.exec(select(Group).where(Group.name == name)).first()
        group = found or groups.create_group(session, GroupCreate(name=name))
        assert group.id is not None
        cache[name] = group.id
    return cache[name]


def _write_refused(path: Path, header: list[str], refused: list[RefusedRow]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*header, "reason"])
        for item in refused:
            writer.writerow([*(item.row.get(h) or "" for h in header), item.reason])
