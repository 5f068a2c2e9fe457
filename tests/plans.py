"""How a statement the code issued reads its tables, on either backend (for plan tests).

A plan that walks a whole log costs little on a test's small log, so these
tests read the plans, not a clock. PostgreSQL plans both ways it may run a
prepared statement: the custom plan (the first five runs of each, and any
run the planner keeps it for) and the generic one, made without the values
(``plan_cache_mode = force_generic_plan``). SQLite has one plan.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import psycopg
import sqlalchemy as sa
from psycopg import sql as pgsql


class Issued:
    """The SELECTs naming ``table`` issued on an engine while it is entered."""

    def __init__(self, engine: sa.Engine, table: str) -> None:
        self.engine = engine
        self.table = table
        self.statements: list[tuple[str, Any]] = []

    def _seen(self, conn: Any, cursor: Any, statement: str, params: Any, *rest: Any) -> None:
        if self.table in statement and statement.lstrip().upper().startswith("SELECT"):
            self.statements.append((statement, params))

    def __enter__(self) -> Issued:
        sa.event.listen(self.engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *exc: object) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._seen)


class Scan(NamedTuple):
    """One read of a table in a plan."""

    table: str
    """PostgreSQL: the partition; SQLite: the name or alias the statement gives it."""
    index: str
    """The index read (PostgreSQL: the partition's own, named by the server); "" for none."""
    keys: str
    """What the index is searched by (PostgreSQL's ``Index Cond``, SQLite's ``(log_id=? ...)``)."""


_SQLITE_SCAN = re.compile(
    r"^(?:SEARCH|SCAN) (\S+)(?: USING (?:COVERING |PRIMARY KEY |INTEGER PRIMARY KEY )?"
    r"(?:INDEX (\S+))?)?(?: \((.*)\))?"
)


def scans(engine: sa.Engine, statement: str, params: Any) -> list[Scan]:
    """Every table read of each plan of a statement as issued (see the module)."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params).all()
            found = [_SQLITE_SCAN.match(str(r[3])) for r in rows]
            return [Scan(m[1], m[2] or "", m[3] or "") for m in found if m is not None]
        raw = conn.connection.driver_connection
        assert isinstance(raw, psycopg.Connection)
        values: Mapping[str, Any] = params
        custom = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", values).scalar_one()
        names: list[str] = []

        def numbered(m: re.Match[str]) -> str:
            if m.group(1) not in names:
                names.append(m.group(1))
            return f"${names.index(m.group(1)) + 1}"

        text = re.sub(r"%\((\w+)\)s", numbered, statement)
        literals = ", ".join(pgsql.Literal(values[n]).as_string(raw) for n in names)
        name = f"plan_{uuid.uuid4().hex[:8]}"
        conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
        conn.exec_driver_sql(f"PREPARE {name} AS {text}")
        generic = conn.exec_driver_sql(
            f"EXPLAIN (FORMAT JSON) EXECUTE {name}({literals})"
        ).scalar_one()
        conn.exec_driver_sql(f"DEALLOCATE {name}")
        conn.exec_driver_sql("RESET plan_cache_mode")
        return [scan for plan in (custom, generic) for scan in _scans(plan[0]["Plan"])]


def _scans(node: dict[str, Any]) -> Iterator[Scan]:
    """A bitmap heap scan's index and keys are its child's (the bitmap index scan)."""
    children = node.get("Plans", [])
    if "Relation Name" in node:
        inner = children[0] if node["Node Type"] == "Bitmap Heap Scan" else node
        yield Scan(node["Relation Name"], inner.get("Index Name", ""), inner.get("Index Cond", ""))
        if inner is not node:
            children = children[1:]
    for child in children:
        yield from _scans(child)


def partitions_of(engine: sa.Engine, table: str, log_id: str) -> set[str]:
    """The partitions holding the log's rows of ``table`` (SQLite: the table itself)."""
    if engine.dialect.name == "sqlite":
        return {table}
    with engine.connect() as conn:
        found = conn.execute(
            sa.text(f"SELECT DISTINCT tableoid::regclass::text FROM {table} WHERE log_id = :log"),
            {"log": log_id},
        )
        return {str(n) for (n,) in found}


def index_names(engine: sa.Engine, index: str) -> set[str]:
    """``index`` and, on PostgreSQL, its partitions' indexes (named by the server)."""
    if engine.dialect.name == "sqlite":
        return {index}
    with engine.connect() as conn:
        found = conn.execute(
            sa.text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = to_regclass(:index)"
                " UNION SELECT relname FROM pg_class WHERE relname = :index"
            ),
            {"index": index},
        )
        return {str(n) for (n,) in found}
