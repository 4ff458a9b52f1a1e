"""Hand-written SQL on a session's connection, for the one hot path (alert ingestion).

Ingestion runs a dozen statements per batch. Through SQLAlchemy's compiled path each one
costs a statement cache lookup, an execution context and a Python bind processor per value
and row; under load that was most of the writer thread's time, and even
``exec_driver_sql`` spent about 75 µs a statement in execution-context and result set-up.
``RawSql`` runs hand-written SQL on a DBAPI cursor of the session's own connection, inside
the transaction the session began (BEGIN IMMEDIATE on SQLite), and does the two conversions
the column types would have done: timestamps (SQLite stores SQLAlchemy's
``YYYY-MM-DD HH:MM:SS.ffffff`` text; PostgreSQL takes the datetime) and JSON documents.
Statements use ``:name`` parameters; on PostgreSQL they are rewritten to ``%(name)s``.
Errors are the driver's own (``sqlite3.Error``, ``psycopg.Error``), not SQLAlchemy's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.orm import Session

_PARAM = re.compile(r"(?<![:\w]):(\w+)")
_PG_SQL: dict[str, str] = {}


def _dumps(obj: Any) -> str:
    try:
        return orjson.dumps(obj, default=str).decode()  # labels, annotations: str to str
    except orjson.JSONEncodeError:  # an int past 64 bits, a lone surrogate: the slow way
        return json.dumps(obj, separators=(",", ":"), default=str)


class RawSql:
    """Driver-level statements in the session's current transaction, on either backend."""

    def __init__(self, session: Session) -> None:
        conn = session.connection()  # begins the session's transaction if it has not yet
        self.pg = conn.dialect.name == "postgresql"
        self._cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        self._ts_from: datetime | None = None
        self._ts_text = ""
        if self.pg:
            from psycopg.types.json import Jsonb

            self._jsonb = Jsonb

    def _sql(self, sql: str) -> str:
        if not self.pg:
            return sql
        out = _PG_SQL.get(sql)
        if out is None:
            out = _PG_SQL[sql] = _PARAM.sub(r"%(\1)s", sql.replace("%", "%%"))
        return out

    def pipeline(self) -> AbstractContextManager[Any]:
        """Statements inside go to PostgreSQL without waiting for each other's replies (one
        round trip for all of them, at the end or at the first read of a result); errors
        surface there too. SQLite: nothing changes."""
        if not self.pg:
            return nullcontext()
        return self._cur.connection.pipeline()  # type: ignore[no-any-return]

    def deferred(
        self, sql: str, params: dict[str, Any] | None = None
    ) -> Callable[[], list[tuple[Any, ...]]]:
        """Send a query now, read its rows later (inside ``pipeline``: after the others)."""
        if not self.pg:
            got = self.rows(sql, params)
            return lambda: got
        cur = self._cur.connection.cursor()
        cur.execute(self._sql(sql), params or {})
        return lambda: [tuple(r) for r in cur.fetchall()]

    def run(self, sql: str, params: dict[str, Any] | None = None) -> None:
        """One statement."""
        self._cur.execute(self._sql(sql), params or {})

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """One query's rows, as the driver returns the values."""
        self._cur.execute(self._sql(sql), params or {})
        return [tuple(r) for r in self._cur.fetchall()]

    def many(self, sql: str, rows: Sequence[dict[str, Any]]) -> None:
        """One statement executed for every row (the driver's executemany)."""
        if rows:
            self._cur.executemany(self._sql(sql), list(rows))

    def in_(self, column: str, name: str, values: Iterable[Any], params: dict[str, Any]) -> str:
        """``column IN (...)`` over ``values``, adding the parameters to ``params``."""
        vals = list(values)
        if self.pg:
            params[name] = vals
            return f"{column} = ANY(:{name})"
        names = [f"{name}_{i}" for i in range(len(vals))]
        params.update(zip(names, vals, strict=True))
        return f"{column} IN ({', '.join(':' + n for n in names)})" if vals else "1 = 0"

    def ts(self, value: datetime | None) -> Any:
        """A timestamp parameter as the UTCDateTime column stores it."""
        if value is None or self.pg:
            return value
        if value is self._ts_from:  # a batch stamps many columns with the same ``now``
            return self._ts_text
        v = value.astimezone(UTC) if value.tzinfo else value
        text = (
            f"{v.year:04d}-{v.month:02d}-{v.day:02d} "
            f"{v.hour:02d}:{v.minute:02d}:{v.second:02d}.{v.microsecond:06d}"
        )
        self._ts_from, self._ts_text = value, text
        return text

    def doc(self, value: Any) -> Any:
        """A JSON document parameter (JSON text on SQLite, JSONB on PostgreSQL)."""
        if value is None:
            return None
        return self._jsonb(value, dumps=_dumps) if self.pg else _dumps(value)
