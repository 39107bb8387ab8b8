"""The shop database environment: its tools, the safety around the agent's SQL, and the verifier.

The agent's SQL never reaches anything but the episode's own database:

* one statement per call, and only SELECT / WITH / INSERT / UPDATE / DELETE / REPLACE / VALUES;
* an authorizer denies ATTACH, DETACH, PRAGMA, schema changes (CREATE, DROP, ALTER), transactions and
  every function outside an allow-list (so no load_extension, randomblob, zeroblob, ...); extension
  loading is switched off where the build supports it, and at most 0 databases may be attached;
* a progress handler stops a statement after a fixed budget of VM steps (a runaway ``WITH RECURSIVE``
  comes back as an error in milliseconds; a wall-clock backstop covers slow steps), temporary storage
  stays in memory, and SQLite's limits cap value length, query length and LIKE patterns, so one
  statement can neither run long nor grow large;
* results are capped (20 rows shown, the rest counted) and every SQLite error becomes an informative
  error observation (e.g. the columns of the tables a query named, when a column does not exist).
"""

from __future__ import annotations

import difflib
import random
import re
import sqlite3
import time
from contextlib import closing
from typing import Any

from environments.answers import Fact, facts_score
from environments.base import ToolEnvironment, ToolError
from environments.database.families import FAMILIES
from environments.database.world import ENUM_COLUMNS, TABLES, Shop, _build, _cell, _snapshot, _world
from environments.families import TaskFamily
from environments.record import Task

# --- limits ----------------------------------------------------------------------------------------------

MAX_ROWS = 20  # rows shown per result
COUNT_CAP = 1000  # rows counted beyond those shown
MAX_QUERY_CHARS = 2000
STEP_CHUNK = 1000  # the progress handler runs every this many VM steps
STEP_BUDGET = 200_000  # VM steps one statement may take (a few milliseconds; the heaviest sensible query here takes ~15,000)
TIME_BUDGET = 0.1  # seconds, a backstop for steps that are slow (sorting, big values)
STATEMENTS = ("SELECT", "WITH", "INSERT", "UPDATE", "DELETE", "REPLACE", "VALUES")
FUNCTIONS = frozenset(
    "count sum total avg min max group_concat string_agg round abs sign ceil ceiling floor lower upper length "
    "substr substring trim ltrim rtrim replace instr coalesce ifnull nullif iif printf format date time datetime "
    "julianday strftime unixepoch like glob typeof quote char unicode hex".split()
)
_LIMITS = {
    "SQLITE_LIMIT_ATTACHED": 0,
    "SQLITE_LIMIT_LENGTH": 2000,
    "SQLITE_LIMIT_SQL_LENGTH": 4 * MAX_QUERY_CHARS,
    "SQLITE_LIMIT_LIKE_PATTERN_LENGTH": 100,
    "SQLITE_LIMIT_COMPOUND_SELECT": 20,
    "SQLITE_LIMIT_EXPR_DEPTH": 100,
    "SQLITE_LIMIT_VDBE_OP": 20000,
}
SCHEMA_FIXED = "the schema is fixed: CREATE, DROP and ALTER are not allowed; use SELECT, INSERT, UPDATE or DELETE on the existing tables"
REFUSALS = {  # first keyword of a refused statement -> why
    "ATTACH": "ATTACH is not allowed: the episode's in-memory database is the only database there is",
    "DETACH": "DETACH is not allowed: the episode's in-memory database is the only database there is",
    "PRAGMA": "PRAGMA is not allowed; use describe_table(table) to see a table's columns",
    "VACUUM": "VACUUM is not allowed; there is nothing to clean up",
    "BEGIN": "transactions are not needed: every statement is applied at once",
    "COMMIT": "transactions are not needed: every statement is applied at once",
    "ROLLBACK": "transactions are not needed (and there is no undo): every statement is applied at once",
    "SAVEPOINT": "transactions are not needed: every statement is applied at once",
    "RELEASE": "transactions are not needed: every statement is applied at once",
    "END": "transactions are not needed: every statement is applied at once",
    "CREATE": SCHEMA_FIXED,
    "DROP": SCHEMA_FIXED,
    "ALTER": SCHEMA_FIXED,
}
_ACTIONS = {getattr(sqlite3, name): name[7:] for name in (
    "SQLITE_ATTACH", "SQLITE_DETACH", "SQLITE_PRAGMA", "SQLITE_TRANSACTION", "SQLITE_SAVEPOINT", "SQLITE_ALTER_TABLE",
    "SQLITE_CREATE_TABLE", "SQLITE_CREATE_TEMP_TABLE", "SQLITE_CREATE_INDEX", "SQLITE_CREATE_VIEW", "SQLITE_CREATE_TRIGGER",
    "SQLITE_CREATE_VTABLE", "SQLITE_DROP_TABLE", "SQLITE_DROP_INDEX", "SQLITE_DROP_VIEW", "SQLITE_DROP_TRIGGER",
    "SQLITE_DROP_VTABLE", "SQLITE_ANALYZE", "SQLITE_REINDEX",
) if hasattr(sqlite3, name)}
_WRITES = {sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE}
_ALLOWED = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, getattr(sqlite3, "SQLITE_RECURSIVE", 33)}
_FIRST_WORD = re.compile(r"\s*(?:(?:--[^\n]*(?:\n|$)|/\*.*?(?:\*/|$))\s*)*([A-Za-z]*)", re.S)


class DatabaseEnv(ToolEnvironment):
    name = "database"
    description = "A shop's SQLite database (customers, products, orders, order items): look-ups, joins, aggregates and safe updates."
    task_families = FAMILIES

    # --- the world ----------------------------------------------------------------------------------------

    def _setup(self, task: Task) -> None:
        old = getattr(self, "_conn", None)
        if old is not None:
            old.close()
        conn = _build(task.params["world_seed"])
        conn.execute("PRAGMA temp_store = MEMORY")  # sorting and temporary tables never touch the disk
        if hasattr(conn, "enable_load_extension"):
            conn.enable_load_extension(False)
        for name, value in _LIMITS.items():
            if hasattr(sqlite3, name):
                conn.setlimit(getattr(sqlite3, name), value)
        conn.set_authorizer(self._authorize)
        conn.set_progress_handler(self._progress, STEP_CHUNK)
        self._conn = conn
        self._denied: str | None = None
        self._steps, self._deadline = 0, 0.0

    def _authorize(self, action: int, arg1: str | None, arg2: str | None, database: str | None, trigger: str | None) -> int:
        """SQLite's authorizer: reading, the allowed functions and writing rows of the four tables only."""
        if action in _ALLOWED:
            return sqlite3.SQLITE_OK
        if action in _WRITES:
            if arg1 in TABLES and database == "main":
                return sqlite3.SQLITE_OK
            if (arg1 or "").startswith("sqlite_"):  # also how SQLite registers table-valued functions (pragma_*, json_each)
                reason = "the sqlite_ system tables and table-valued functions (pragma_table_info, json_each, ...) are not available; use describe_table(table) to see a table's columns"
            else:
                reason = f"writing to {arg1!r} is not allowed; only the tables {', '.join(TABLES)} can be changed"
        elif action == sqlite3.SQLITE_FUNCTION:
            if (arg2 or "").lower() in FUNCTIONS:
                return sqlite3.SQLITE_OK
            reason = f"the function {arg2}() is not allowed; allowed functions include count, sum, avg, min, max, round, lower, upper, substr, coalesce, date, strftime"
        else:
            kind = _ACTIONS.get(action, "")
            first = kind.split("_")[0]
            reason = REFUSALS.get(first, SCHEMA_FIXED if first in ("CREATE", "DROP", "ALTER") else f"this kind of statement ({kind or action}) is not allowed")
        if self._denied is None:
            self._denied = reason
        return sqlite3.SQLITE_DENY

    def _progress(self) -> int:
        """SQLite's progress handler: a non-zero return stops the running statement."""
        self._steps += 1
        return int(self._steps * STEP_CHUNK > STEP_BUDGET or time.perf_counter() > self._deadline)

    def _execute(self, sql: str) -> sqlite3.Cursor:
        """Run one statement with the safety hooks armed afresh."""
        self._denied, self._steps, self._deadline = None, 0, time.perf_counter() + TIME_BUDGET
        return self._conn.execute(sql)

    def _explain(self, exc: BaseException, sql: str) -> ToolError:
        """An SQLite error as a message that says how to fix the statement."""
        message = str(exc)[:300]
        if self._denied:
            return ToolError(self._denied)
        if "interrupted" in message:
            return ToolError(f"the statement was stopped: it ran past the budget of one statement ({STEP_BUDGET:,} steps); add a WHERE clause or a LIMIT, or make sure a recursive query ends")
        if "one statement at a time" in message:
            return ToolError("run_sql runs exactly one statement per call; send each statement in its own call, without ';' between statements")
        if message.startswith("no such column"):
            named = [t for t in TABLES if re.search(rf"\b{t}\b", sql, re.I)] or list(TABLES)
            return ToolError(f"{message}; " + "; ".join(f"columns of {t} are: {', '.join(TABLES[t])}" for t in named))
        if message.startswith("no such table"):
            missing = message.split(":", 1)[-1].strip().split(".")[-1]
            close = difflib.get_close_matches(missing.lower(), list(TABLES), n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            return ToolError(f"{message}{hint}; the tables are: {', '.join(TABLES)}")
        if message.startswith("no such function"):
            return ToolError(f"{message}; allowed functions include count, sum, avg, min, max, round, lower, upper, substr, coalesce, date, strftime")
        if message.startswith("ambiguous column"):
            return ToolError(f"{message}; prefix the column with its table, e.g. orders.id")
        if "syntax error" in message or "incomplete input" in message or "unrecognized token" in message:
            near = re.match(r'near "([^"]*)"', message)
            close = difflib.get_close_matches(near.group(1).lower(), list(TABLES), n=1, cutoff=0.7) if near else []
            hint = f" (the table is called {close[0]!r})" if close and close[0] != near.group(1).lower() else ""
            return ToolError(f"{message}{hint}; write one SQLite statement, e.g. SELECT name FROM customers WHERE city = 'Lyon'")
        if "too big" in message or "too many" in message or "too large" in message:
            return ToolError(f"{message}; the database limits the size of values and statements: keep them small")
        if "misuse of aggregate" in message:
            return ToolError(f"{message}; aggregates belong in SELECT or HAVING, with GROUP BY for the other columns")
        if isinstance(exc, (UnicodeError, ValueError, OverflowError)) and not isinstance(exc, sqlite3.Error):
            return ToolError(f"the query could not be run: {type(exc).__name__}: {message[:150]}; use plain text")
        return ToolError(f"SQLite error: {message}")

    # --- tools -------------------------------------------------------------------------------------------

    def list_tables(self) -> dict:
        """List the tables of the shop database with their number of rows."""
        return {"tables": {t: self._count(t) for t in TABLES}}

    def describe_table(self, table: str) -> dict:
        """Describe a table of the shop database: its columns with their types, its number of rows, and the values of its category-like column.

        Args:
            table: The table name: customers, products, orders or order_items.
        """
        name = table.strip().lower()
        if name not in TABLES:
            close = difflib.get_close_matches(name[:40], list(TABLES), n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ToolError(f"unknown table {_shown(table)}{hint}; the tables are: {', '.join(TABLES)}")
        result: dict[str, Any] = {"table": name, "rows": self._count(name), "columns": dict(TABLES[name])}
        if name in ENUM_COLUMNS:
            column = ENUM_COLUMNS[name]
            result["values"] = {column: [row[0] for row in self._execute(f"SELECT DISTINCT {column} FROM {name} ORDER BY {column} LIMIT 12")]}
        return result

    def run_sql(self, query: str) -> dict:
        """Run one SQLite statement on the shop database. A SELECT returns its column names and up to 20 rows (and how many more there are); INSERT, UPDATE and DELETE change the data and return how many rows changed. The schema cannot be changed.

        Args:
            query: Exactly one SQL statement, e.g. SELECT name, city FROM customers WHERE tier = 'gold'
        """
        sql = query.strip()
        while sql.endswith(";"):
            sql = sql[:-1].rstrip()
        if not sql:
            raise ToolError("the query is empty; write one SQL statement, e.g. SELECT COUNT(*) FROM orders")
        if len(sql) > MAX_QUERY_CHARS:
            raise ToolError(f"the query is {len(sql)} characters long; the limit is {MAX_QUERY_CHARS}")
        first = _FIRST_WORD.match(sql)
        keyword = first.group(1).upper() if first else ""
        if keyword not in STATEMENTS:
            raise ToolError(REFUSALS.get(keyword, f"run_sql runs one SELECT, INSERT, UPDATE or DELETE statement; {_shown(keyword or sql, 30)} cannot start one"))
        cursor = None
        try:
            cursor = self._execute(sql)
            if cursor.description is None:
                return {"changed": max(cursor.rowcount, 0)}
            columns = [_cell(d[0]) for d in cursor.description]
            rows = cursor.fetchmany(MAX_ROWS + 1)
            result: dict[str, Any] = {"columns": columns, "rows": [[_cell(v) for v in row] for row in rows[:MAX_ROWS]]}
            if len(rows) > MAX_ROWS:
                more = 1 + len(cursor.fetchmany(COUNT_CAP))
                result["more"] = f"{more if more <= COUNT_CAP else f'over {COUNT_CAP}'} more rows not shown; narrow the query with WHERE, LIMIT or an aggregate"
            return result
        except Exception as exc:  # every sqlite failure becomes an error the agent can act on
            raise self._explain(exc, sql) from None
        finally:
            if cursor is not None:
                cursor.close()

    def _count(self, table: str) -> int:
        return self._execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]

    # --- tasks and their verification --------------------------------------------------------------------

    @classmethod
    def _draw_world(cls, rng: random.Random, novel: bool) -> tuple[dict[str, Any], Shop]:
        seed = rng.randrange(2**31)
        return {"world_seed": seed}, Shop(seed, novel)

    def _state(self) -> dict[str, dict[Any, tuple]]:
        self._conn.set_progress_handler(None, 0)  # the verifier's own reads are not the agent's budget
        try:
            return _snapshot(self._conn)
        finally:
            self._conn.set_progress_handler(self._progress, STEP_CHUNK)

    def _score(self, family: TaskFamily, answer: str | None, expected_state: dict | None) -> float:
        """Data changes are checked row by row against the database the expert left; a question is checked on
        the facts its answer states, and must leave the data as it was."""
        p = self.task.params
        initial = {t: {row[0]: row for row in rows} for t, rows in _world(p["world_seed"]).items()}
        facts: list[Fact] = []
        if expected_state is None:
            with closing(_build(p["world_seed"])) as db:
                facts = family.expected(db, p)
            expected_state = initial
        return _state_score(initial, expected_state, self._state(), facts, answer)


def _state_score(initial: dict, expected: dict, actual: dict, facts: list[Fact], answer: str | None) -> float:
    """Rows the task should change must end as intended (partial credit), every other row must stay as it
    was (each changed one costs a quarter), and for questions the answer must state the facts."""
    targets = correct = collateral = 0
    for table in TABLES:
        for key in set(initial[table]) | set(expected[table]) | set(actual[table]):
            before, want, got = initial[table].get(key), expected[table].get(key), actual[table].get(key)
            if not _same_row(want, before):
                targets += 1
                correct += _same_row(got, want)
            elif not _same_row(got, before):
                collateral += 1
    keep = max(0.0, 1.0 - 0.25 * collateral)
    if facts:
        return facts_score(answer, facts) * keep
    return (correct / targets if targets else 0.0) * keep


def _same_row(a: tuple | None, b: tuple | None) -> bool:
    if a is None or b is None:
        return a is b
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if isinstance(x, (int, float)) and isinstance(y, (int, float)) and not isinstance(x, bool):
            if abs(x - y) > 0.01:
                return False
        elif x != y:
            return False
    return True


def _shown(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")

