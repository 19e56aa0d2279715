"""Bulk import of contacts from CSV: every good row is kept, every bad row is reported."""

from __future__ import annotations

import codecs
import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError
from rich.progress import Progress
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from reminders import groups
from reminders.accounts.scoping import scoped_session
from reminders.contacts.matching import ContactKeys, Known, Matcher, OnPhone
from reminders.contacts.writing import write_contacts
from reminders.db import utcnow
from reminders.errors import DomainError, InvalidField
from reminders.keylocks import lock_keys
from reminders.models import Group
from reminders.phones import normalize_mobile
from reminders.schemas.contacts import ContactCreate, ContactUpdate
from reminders.schemas.groups import GroupCreate

COLUMNS = ("name", "phone", "email", "timezone", "language", "external_id", "opted_out", "groups")
# The headers each column is known by, compared in lower case with runs of spaces squeezed: the
# API's own field names, and what a Bulgarian office's spreadsheet calls the same thing.
_HEADERS = {
    "name": ("име", "имена", "име и фамилия", "пълно име"),
    "phone": ("телефон", "тел.", "тел", "мобилен", "мобилен телефон", "телефонен номер", "gsm"),
    "email": ("имейл", "имейл адрес", "e-mail", "ел. поща", "електронна поща"),
    "timezone": ("часова зона",),
    "language": ("език",),
    "external_id": ("външен номер", "външен идентификатор", "външен id"),
    "opted_out": ("отказ", "отписан"),
    "groups": ("група", "групи"),
}
HEADER_NAMES = {
    alias: column for column in COLUMNS for alias in (column, *_HEADERS.get(column, ()))
}
DELIMITERS = (",", ";", "\t")
_TRUE = {"1", "true", "yes", "y", "да"}
_FALSE = {"", "0", "false", "no", "n", "не"}


def _said(delimiter: str) -> str:
    return "tab" if delimiter == "\t" else repr(delimiter)


def column_name(header: str) -> str:
    """The column a header cell names: one of ``COLUMNS``, else an attribute (lower case)."""
    key = " ".join(header.split()).lower()
    return HEADER_NAMES.get(key, key)


@dataclass(frozen=True)
class RefusedRow:
    line: int
    reason: str
    cells: list[str]


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    refused: list[RefusedRow] = field(default_factory=list)


@dataclass(frozen=True)
class Table:
    """A CSV file as read: its separator, its header as written and as columns, its rows."""

    delimiter: str
    header: list[str]
    columns: list[str]
    rows: list[tuple[int, list[str]]]  # (file line the row starts on, its cells)
    bom: bool = False  # Excel's "CSV UTF-8" starts with one, and needs it to read the file back


def _reason(exc: ValidationError) -> str:
    first = exc.errors()[0]
    name = ".".join(str(p) for p in first["loc"]) or "row"
    return f"{name}: {str(first['msg']).removeprefix('Value error, ')}"


def _row_to_values(row: dict[str, str]) -> tuple[dict[str, object], list[str]]:
    values: dict[str, object] = {}
    attributes: dict[str, str] = {}
    for name, raw in row.items():
        value = raw.strip()
        if name == "groups":
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


def _as_dict(table: Table, cells: list[str]) -> dict[str, str]:
    if len(cells) > len(table.columns):
        raise ValueError(
            f"row: more cells ({len(cells)}) than header columns ({len(table.columns)}); "
            f"put a value that holds a {_said(table.delimiter)} in double quotes"
        )
    return {column: value for column, value in zip(table.columns, cells, strict=False)}


def import_csv(
    engine: Engine,
    path: Path,
    *,
    account_id: int,
    region: str,
    groups: Sequence[str] = (),
    refused_path: Path | None = None,
    show_progress: bool = True,
) -> ImportReport:
    """Create or update one contact per row, each in its own transaction.

    A row is matched by its ``external_id``; a row without one by its phone number. A row that
    repeats an earlier row's ``external_id`` (or, without one, its phone) is refused.
    """
    report = ImportReport()
    try:
        table = read_table(path)
    except UnicodeDecodeError:
        raise DomainError('is not UTF-8 text; save it as "CSV UTF-8"', field=str(path)) from None
    except csv.Error as exc:
        raise DomainError(f"is not a readable CSV file: {exc}", field=str(path)) from None

    with scoped_session(engine, account_id, expire_on_commit=False) as session:
        # Groups are made before the rows, so that a refused row never takes a new group with it.
        group_cache: dict[str, int] = {}
        for _, cells in table.rows:
            for name in _group_names(dict(zip(table.columns, cells, strict=False))):
                try:
                    _group_id(session, name, group_cache)
                except ValidationError:
                    pass  # refused with its row below, with the reason
        fixed_groups = [_group_id(session, name, group_cache) for name in groups]
        session.commit()
        first_lines = _FirstLines(region)
        with Progress(transient=True, disable=not show_progress) as progress:
            task = progress.add_task("importing", total=len(table.rows))
            for line, cells in table.rows:
                try:
                    row = _as_dict(table, cells)
                    first_lines.check(line, row)
                    outcome = _import_row(session, row, region, fixed_groups, group_cache)
                    # The command commits, a row at a time: a refused row costs itself alone.
                    session.commit()
                except (ValidationError, DomainError, ValueError) as exc:
                    session.rollback()
                    if isinstance(exc, ValidationError):
                        reason = _reason(exc)
                    elif isinstance(exc, DomainError):
                        reason = f"{exc.field}: {exc.message}" if exc.field else exc.message
                    else:
                        reason = str(exc)
                    report.refused.append(RefusedRow(line, reason, cells))
                else:
                    if outcome == "created":
                        report.created += 1
                    else:
                        report.updated += 1
                progress.advance(task)
    if refused_path is not None and report.refused:
        _write_refused(refused_path, table, report.refused)
    return report


class _FirstLines:
    """Remembers the line each contact first appeared on, to refuse the rows that repeat it."""

    def __init__(self, region: str) -> None:
        self.region = region
        self.external_ids: dict[str, int] = {}
        self.phones: dict[str, int] = {}

    def check(self, line: int, row: dict[str, str]) -> None:
        external_id = (row.get("external_id") or "").strip()
        try:
            phone = normalize_mobile(row.get("phone") or "", self.region)
        except DomainError:
            phone = None  # the row is refused for it on its own
        if external_id:
            first = self.external_ids.setdefault(external_id, line)
            if first != line:
                raise InvalidField(
                    f"{external_id!r} is on line {first} already; one row per contact",
                    field="external_id",
                )
        elif phone is not None and phone in self.phones:
            raise InvalidField(
                f"the same number as line {self.phones[phone]}; one row per contact, "
                "or an external_id column to tell people who share a phone apart",
                field="phone",
            )
        if phone is not None:
            self.phones.setdefault(phone, line)


def read_table(path: Path) -> Table:
    """Read the CSV file: the separator is the one its header row is written with."""
    with path.open("rb") as raw:
        bom = raw.read(3) == codecs.BOM_UTF8
    with path.open(newline="", encoding="utf-8-sig") as handle:
        first = handle.readline()
        handle.seek(0)
        delimiter = _delimiter(first)
        reader = csv.reader(handle, delimiter=delimiter)
        header = [h.strip() for h in next(reader, [])]
        columns = [column_name(h) for h in header]
        _check_columns(path, delimiter, header, columns)
        rows = []
        for cells in reader:
            if not cells:
                continue  # a blank line
            # line_num is the record's last line: blank lines and quoted line breaks count too.
            rows.append((reader.line_num - sum(c.count("\n") for c in cells), cells))
    return Table(delimiter, header, columns, rows, bom)


def _delimiter(header_line: str) -> str:
    """The separator that makes the most sense of the header: the one that finds the name and
    phone columns, else the one that splits it into the most columns. (Guessing from the rows
    too, as csv.Sniffer does, goes wrong when a value holds an unquoted ';'.)"""

    def score(delimiter: str) -> tuple[int, int]:
        cells = next(csv.reader([header_line], delimiter=delimiter), [])
        found = {column_name(c) for c in cells} & {"name", "phone"}
        return len(found), len(cells)

    return max(DELIMITERS, key=score)


def _check_columns(path: Path, delimiter: str, header: list[str], columns: list[str]) -> None:
    missing = [c for c in ("name", "phone") if c not in columns]
    if missing:
        raise DomainError(
            f"the header row has no {' or '.join(missing)} column (read with {_said(delimiter)} "
            f"between columns: {', '.join(repr(h) for h in header[:8])})",
            field=str(path),
        )
    named: dict[str, list[str]] = {}
    for cell, column in zip(header, columns, strict=True):
        if column:
            named.setdefault(column, []).append(cell)
    for column, cells in named.items():
        if len(cells) > 1:
            raise DomainError(
                f"the header names the {column} column {len(cells)} times "
                f"({', '.join(repr(c) for c in cells)}); keep one",
                field=str(path),
            )


def _import_row(
    session: Session,
    row: dict[str, str],
    region: str,
    fixed_groups: list[int],
    group_cache: dict[str, int],
) -> str:
    """Create or update the row's contact by the rules of every contact (``contacts.matching``):
    found by external_id, else by the one contact with its phone, the row's fields change it."""
    values, group_names = _row_to_values(row)
    given = ContactUpdate.model_validate(values).model_dump(exclude_unset=True)
    keys = ContactKeys.of([given], region)
    lock_keys(session, keys.locks())
    matcher = Matcher(Known.fetch(session, keys), region, utcnow())
    found = matcher.find(given, on_phone=OnPhone.UPDATE)
    if found is not None:
        contact, changes = found
        outcome = "updated"
    else:
        # Validated as POST /contacts would: a new contact needs a name and a phone.
        new = ContactCreate.model_validate(values).model_dump()
        contact, changes = matcher.new(new), {}
        outcome = "created"
    matcher.accept(contact, changes)
    write_contacts(session, [contact])
    assert contact.contact_id is not None
    group_ids = fixed_groups + [_group_id(session, name, group_cache) for name in group_names]
    for group_id in dict.fromkeys(group_ids):
        groups.add_members(session, group_id, [contact.contact_id])
    return outcome


def _group_id(session: Session, name: str, cache: dict[str, int]) -> int:
    """The id of the group called ``name``, created on first mention."""
    if name not in cache:
        found = session.exec(select(Group).where(Group.name == name)).first()
        group = found or groups.create_group(session, GroupCreate(name=name))
        assert group.id is not None
        cache[name] = group.id
    return cache[name]


def _write_refused(path: Path, table: Table, refused: list[RefusedRow]) -> None:
    """The refused rows as they were, with the file's own separator and header, and a reason."""
    width = len(table.header)
    encoding = "utf-8-sig" if table.bom else "utf-8"
    with path.open("w", newline="", encoding=encoding) as handle:
        writer = csv.writer(handle, delimiter=table.delimiter)
        writer.writerow([*table.header, "reason"])
        for item in refused:
            cells = list(item.cells)
            if len(cells) > width:
                # A value held an unquoted separator: keep the surplus in the last column, so
                # the reason stays in its own and nothing the row said is lost.
                cells = [*cells[: width - 1], table.delimiter.join(cells[width - 1 :])]
            writer.writerow([*cells, *[""] * (width - len(cells)), item.reason])
