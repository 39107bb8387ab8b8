"""A small shop database in SQLite: look data up, aggregate it with joins, and change it safely.

Every episode gets its own in-memory SQLite database (customers, products, orders, order_items) filled
from the task's world seed. The agent lists and describes tables and runs one SQL statement per call.
Read-only tasks are checked against the values in the untouched world; tasks that change data are
checked on the final database, row by row, against the state the reference statements produce, and
every row changed that the task did not ask for costs credit.

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
import functools
import random
import re
import sqlite3
import time
from collections.abc import Callable, Generator
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from environments.base import Answer, OracleStep, TaskDraft, ToolEnvironment, ToolError, entity_pool, mentions, normalise
from environments.record import Task

# --- the schema and the pools the worlds are drawn from --------------------------------------------------

TABLES: dict[str, dict[str, str]] = {  # table -> column -> type (and what it refers to)
    "customers": {"id": "INTEGER", "name": "TEXT", "city": "TEXT", "tier": "TEXT"},
    "products": {"id": "INTEGER", "name": "TEXT", "category": "TEXT", "price": "REAL", "stock": "INTEGER"},
    "orders": {"id": "INTEGER", "customer_id": "INTEGER -> customers.id", "order_date": "TEXT YYYY-MM-DD", "status": "TEXT"},
    "order_items": {"id": "INTEGER", "order_id": "INTEGER -> orders.id", "product_id": "INTEGER -> products.id", "quantity": "INTEGER"},
}
ENUM_COLUMNS = {"customers": "tier", "products": "category", "orders": "status"}  # describe_table lists their values

CUSTOMERS = [
    "Ada Moreau", "Ben Okafor", "Chloe Varga", "Dev Raman", "Elif Demir", "Finn Larsen", "Gwen Price", "Hiro Tanaka",
    "Ines Duarte", "Jonas Weber", "Kara Nilsen", "Liam Byrne", "Maya Cohen", "Nils Berg", "Olga Petrova", "Paulo Reis",
    "Quinn Harper", "Rosa Marin", "Sami Haddad", "Tara Singh", "Umar Farouk", "Vera Novak", "Wes Carter", "Xenia Popa",
    "Yusuf Kaya", "Zoe Laurent", "Aron Fischer", "Bea Lindqvist", "Cyrus Amini", "Dina Rossi", "Emre Aydin", "Fay Gallagher",
    "Gus Moreno", "Hana Sato", "Ivo Horvat", "Jade Wong", "Kurt Baumann", "Lina Ortiz", "Milo Kowalski", "Nora Eriksen",
]
CITIES = ["Lyon", "Porto", "Leeds", "Graz", "Turin", "Gdansk", "Malmo", "Ghent", "Bergen", "Cork", "Brno", "Split"]
TIERS = ["basic", "silver", "gold"]
STATUSES = ["pending", "shipped", "delivered", "cancelled"]
PRODUCTS = {  # name -> category; no name is a whole-word part of another, so answers are unambiguous
    "USB Cable": "Electronics", "Wireless Mouse": "Electronics", "Keyboard": "Electronics", "Headphones": "Electronics",
    "Webcam": "Electronics", "Monitor": "Electronics", "Phone Charger": "Electronics",
    "Kettle": "Kitchen", "Toaster": "Kitchen", "Frying Pan": "Kitchen", "Chef Knife": "Kitchen", "Blender": "Kitchen",
    "Coffee Grinder": "Kitchen",
    "Garden Hose": "Garden", "Shovel": "Garden", "Pruning Shears": "Garden", "Flower Pot": "Garden", "Watering Can": "Garden",
    "Cookbook": "Books", "Road Atlas": "Books", "Mystery Novel": "Books", "Dictionary": "Books", "Poetry Collection": "Books",
    "Jigsaw Puzzle": "Toys", "Kite": "Toys", "Yo-yo": "Toys", "Board Game": "Toys", "Teddy Bear": "Toys",
    "Stapler": "Office", "Notebook": "Office", "Desk Lamp": "Office", "Fountain Pen": "Office", "Paper Clips": "Office",
}
CATEGORIES = sorted(set(PRODUCTS.values()))

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


# --- the world -------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=512)
def _world(seed: int) -> dict[str, tuple[tuple[Any, ...], ...]]:
    """The rows of every table, drawn from the world seed (the same seed, the same shop)."""
    rng = random.Random(seed)
    names = rng.sample(CUSTOMERS, rng.randint(18, 26))
    customers = tuple((i + 1, name, rng.choice(CITIES), rng.choices(TIERS, weights=[5, 3, 2])[0]) for i, name in enumerate(names))
    products_drawn = rng.sample(sorted(PRODUCTS), rng.randint(20, 28))
    products = tuple((i + 1, name, PRODUCTS[name], rng.randint(300, 12000) / 100, rng.randint(0, 80)) for i, name in enumerate(products_drawn))
    days = sorted(rng.sample(range(365), rng.randint(30, 44)))
    weights = [rng.uniform(0.2, 3.0) for _ in customers]
    orders, items = [], []
    for i, day in enumerate(days):
        order_id = i + 1
        customer = rng.choices(range(1, len(customers) + 1), weights=weights)[0]
        status = rng.choices(STATUSES, weights=[2, 2, 5, 1.5])[0]
        orders.append((order_id, customer, (date(2025, 1, 1) + timedelta(days=day)).isoformat(), status))
        for product in rng.sample(range(1, len(products) + 1), rng.choices([1, 2], weights=[3, 2])[0]):
            items.append((len(items) + 1, order_id, product, rng.randint(1, 4)))
    return {"customers": customers, "products": products, "orders": tuple(orders), "order_items": tuple(items)}


def _build(seed: int) -> sqlite3.Connection:
    """A fresh in-memory database holding the world of ``seed`` (no safety hooks yet)."""
    conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    for table, columns in TABLES.items():
        spec = ", ".join(f"{c} {t.split()[0]}{' PRIMARY KEY' if c == 'id' else ''}" for c, t in columns.items())
        conn.execute(f"CREATE TABLE {table} ({spec})")
        rows = _world(seed)[table]
        conn.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(columns))})", rows)
    return conn


def _snapshot(conn: sqlite3.Connection) -> dict[str, dict[Any, tuple]]:
    """Every row of every table, keyed by table and id."""
    state = {}
    for table in TABLES:
        try:
            state[table] = {row[0]: row for row in conn.execute(f"SELECT * FROM {table}")}
        except sqlite3.Error:
            state[table] = {}
    return state


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


@functools.cache
def _pools(novel: bool) -> dict[str, list[str]]:
    """The entities tasks may be about: held-out ones for novel test tasks, the others otherwise."""
    return {
        "customers": entity_pool(CUSTOMERS, novel),
        "products": entity_pool(sorted(PRODUCTS), novel),
        "cities": entity_pool(CITIES, novel),
        "categories": entity_pool(CATEGORIES, novel),
    }


def _cell(value: Any) -> Any:
    """A value as the agent sees it: money rounded to cents, long text cut."""
    if isinstance(value, float):
        return round(value, 2)
    if isinstance(value, str) and len(value) > 60:
        return value[:60] + "..."
    if isinstance(value, bytes):
        return f"<blob of {len(value)} bytes>"
    return value


def _alternatives(value: Any) -> list[str]:
    """Ways a correct answer may write a value (a float rounded either way at a tie)."""
    if isinstance(value, float):
        half_up = Decimal(repr(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        return sorted({str(round(value, 2)), str(half_up)})
    return [str(value)]


def _q(text: str) -> str:
    """An SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _shown(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _rows(conn: sqlite3.Connection, sql: str) -> list[tuple]:
    return conn.execute(sql).fetchall()


def _one(conn: sqlite3.Connection, sql: str) -> Any:
    row = conn.execute(sql).fetchone()
    return row[0] if row else None


def _mult(percent: int) -> str:
    return f"{1 + percent / 100:g}"


# --- aggregates for the parallel family: kind -> (phrase, SQL) -----------------------------------------

AGGREGATES = {
    "city_customers": ("the number of customers in {x}", "SELECT COUNT(*) FROM customers WHERE city = {q}"),
    "status_orders": ("the number of {x} orders", "SELECT COUNT(*) FROM orders WHERE status = {q}"),
    "max_price": ("the highest price in the {x} category", "SELECT MAX(price) FROM products WHERE category = {q}"),
    "category_stock": ("the total stock of {x} products", "SELECT SUM(stock) FROM products WHERE category = {q}"),
    "tier_customers": ("the number of {x}-tier customers", "SELECT COUNT(*) FROM customers WHERE tier = {q}"),
}


class DatabaseEnv(ToolEnvironment):
    name = "database"
    description = "A shop's SQLite database (customers, products, orders, order items): look-ups, joins, aggregates and safe updates."
    families = {
        "single": ["count_status", "customer_city", "product_stock", "table_sizes", "ship_order", "set_stock", "add_customer"],
        "multi_step": ["category_avg_price", "city_order_count", "customer_spend", "top_category_revenue", "raise_prices", "cancel_pending"],
        "parallel": ["describe_many", "aggregates_many", "stock_many"],
        "nested": ["order_customer", "top_customer_latest", "priciest_units", "delete_cancelled"],
        "recovery": [
            "customer_city (503 first)", "ship_order (503 first)", "customer_spend (503 first)", "aggregates_many (503 first)",
            "top_customer_latest (503 first)", "delete_cancelled (503 first)",
        ],
    }

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

    # --- tasks -------------------------------------------------------------------------------------------

    @classmethod
    def _make_task(cls, rng: random.Random, difficulty: str, novel: bool) -> TaskDraft:
        family = rng.choice(cls.families[difficulty]).split(" ")[0]
        for _ in range(50):  # worlds where the task has no sensible answer are drawn again
            world_seed = rng.randrange(2**31)
            draft = cls._draft(rng, family, world_seed, novel)
            if draft is not None:
                if difficulty == "recovery":
                    draft.params["fail_first"] = ["run_sql"]
                return draft
        raise RuntimeError(f"database: no world fits a {family} task")

    @classmethod
    def _draft(cls, rng: random.Random, family: str, world_seed: int, novel: bool) -> TaskDraft | None:
        built: list[sqlite3.Connection] = []

        def query(sql: str) -> list[tuple]:  # the world as a database, built only for tasks that ask it something
            if not built:
                built.append(_build(world_seed))
            return _rows(built[0], sql)

        try:
            return cls._draft_in(query, rng, family, world_seed, novel)
        finally:
            for db in built:
                db.close()

    @classmethod
    def _draft_in(cls, query: Callable[[str], list[tuple]], rng: random.Random, family: str, world_seed: int, novel: bool) -> TaskDraft | None:
        world = _world(world_seed)
        params: dict[str, Any] = {"world_seed": world_seed, "family": family}
        pool = _pools(novel)
        names = [r[1] for r in world["customers"] if r[1] in pool["customers"]]
        products = [r[1] for r in world["products"] if r[1] in pool["products"]]
        cities = [c for c in pool["cities"] if any(r[2] == c for r in world["customers"])]
        categories = [k for k in pool["categories"] if sum(r[2] == k for r in world["products"]) >= 2]
        pick = rng.choice

        def draft(prompts: list[str], tools: list[str], entities: list[Any], **values: Any) -> TaskDraft:
            params.update(values)
            prompt = pick(prompts).format(**values)
            return TaskDraft(family, prompt, params, tools, [str(e) for e in entities])

        if family == "count_status":
            s = pick(STATUSES)
            return draft(["How many orders have the status '{s}'?", "Count the orders that are currently {s}.", "What number of orders in the shop database are {s}?"], ["run_sql"], [s], s=s)
        if family == "customer_city":
            if not names:
                return None
            c = pick(names)
            return draft(["Which city is the customer {c} from?", "Look up where our customer {c} lives: which city?", "In which city is {c}, one of our customers, based?"], ["run_sql"], [c], c=c)
        if family == "product_stock":
            if not products:
                return None
            p = pick(products)
            return draft(["How many units of {p} are in stock?", "What is the current stock of the product {p}?", "Check the stock level of {p} for me."], ["run_sql"], [p], p=p)
        if family == "table_sizes":
            return draft(["Which tables does the shop database have, and how many rows are in each?", "List the database's tables with their row counts.", "Give me an overview of the tables in the shop database and how big each one is.", "How many rows does each table of the database hold?", "Show me the tables of the database and their row counts.", "Name the tables in the database with their number of records."], ["list_tables"], list(TABLES))
        if family == "ship_order":
            pending = [r[0] for r in world["orders"] if r[3] == "pending"]
            if not pending:
                return None
            n = pick(pending)
            return draft(["Mark order {n} as shipped.", "Order {n} has left the warehouse: set its status to shipped.", "Please update order {n} so that its status is 'shipped'."], ["run_sql"], [n, "shipped"], n=n)
        if family == "set_stock":
            if not products:
                return None
            p = pick(products)
            current = next(r[4] for r in world["products"] if r[1] == p)
            k = pick([k for k in range(0, 120, 3) if k != current])
            return draft(["Set the stock of {p} to {k} units.", "We counted {k} units of {p} in the warehouse; update its stock.", "Update the stock level of {p} to {k}."], ["run_sql"], [p, k], p=p, k=k)
        if family == "add_customer":
            present = {r[1] for r in world["customers"]}
            new = [n for n in pool["customers"] if n not in present]
            if not new:
                return None
            c, city, t = pick(new), pick(pool["cities"]), pick(TIERS)
            return draft(["Add a new customer named {c} from {city} on the {t} tier.", "Register {c} ({city}) as a new {t}-tier customer.", "Create a customer record for {c}, who lives in {city}; tier: {t}."], ["run_sql"], [c, city], c=c, city=city, t=t)
        if family == "category_avg_price":
            if not categories:
                return None
            k = pick(categories)
            return draft(["What is the average price of the products in the {k} category?", "On average, how much does a {k} product cost?", "Tell me the mean price of our {k} products."], ["describe_table", "run_sql"], [k, "products"], k=k)
        if family == "city_order_count":
            if not cities:
                return None
            city = pick(cities)
            return draft(["How many orders have been placed by customers from {city}?", "Count all orders of the customers who live in {city}.", "What is the number of orders from customers based in {city}?"], ["describe_table", "run_sql"], [city, "customers", "orders"], city=city)
        if family == "customer_spend":
            spenders = [r[0] for r in query("SELECT DISTINCT c.name FROM customers c JOIN orders o ON o.customer_id = c.id WHERE o.status != 'cancelled'") if r[0] in names]
            if not spenders:
                return None
            c = pick(spenders)
            return draft(["How much has {c} spent in total, counting every order that was not cancelled (quantity times price)?", "What is the total value of {c}'s orders, cancelled ones excluded?", "Add up what {c} has bought: the sum of quantity x price over all their orders that are not cancelled."], ["describe_table", "run_sql"], [c, *TABLES], c=c)
        if family == "top_category_revenue":
            s = pick(["delivered", "shipped"])
            top = query(_top_category_sql(s, 2))
            if not top or (len(top) > 1 and abs(top[0][1] - top[1][1]) < 0.01):
                return None
            return draft(["Which product category has brought in the most revenue from {s} orders, and how much?", "Among {s} orders, which category earned the most money (quantity x price)? Give the amount too.", "Looking only at {s} orders: what is the top category by revenue, and what revenue is that?"], ["describe_table", "run_sql"], [s, "orders", "order_items", "products"], s=s)
        if family == "raise_prices":
            if not categories:
                return None
            k, p = pick(categories), pick([5, 10, 15, 20, 25])
            return draft(["Raise the price of every {k} product by {p}% (rounded to cents).", "Increase all prices in the {k} category by {p} percent, rounding to 2 decimals.", "Our {k} supplier got more expensive: put {p}% on each {k} price, rounded to the cent."], ["describe_table", "run_sql"], [k, "products"], k=k, p=p)
        if family == "cancel_pending":
            owners = [r[0] for r in query("SELECT DISTINCT c.name FROM customers c JOIN orders o ON o.customer_id = c.id WHERE o.status = 'pending'") if r[0] in names]
            if not owners:
                return None
            c = pick(owners)
            return draft(["Cancel all pending orders of {c}.", "{c} asked us to cancel every order of theirs that is still pending. Please do it.", "Set the status of each pending order placed by {c} to cancelled."], ["describe_table", "run_sql"], [c, "customers", "orders"], c=c)
        if family == "describe_many":
            tables = rng.sample(list(TABLES), rng.choice([2, 3]))
            listed = ", ".join(tables[:-1]) + " and " + tables[-1]
            return draft(["What columns do the tables {t} have, and how many rows does each hold?", "Describe the tables {t} for me: their columns and row counts.", "I need the columns and the number of rows of {t}."], ["describe_table"], tables, t=listed, tables=tables)
        if family == "aggregates_many":
            kinds = rng.sample(sorted(AGGREGATES), rng.choice([2, 3]))
            domains = {"city_customers": cities, "status_orders": STATUSES, "max_price": categories, "category_stock": categories, "tier_customers": TIERS}
            if any(not domains[k] for k in kinds):
                return None
            chosen = [[k, pick(domains[k])] for k in kinds]
            phrases = [AGGREGATES[k][0].format(x=x) for k, x in chosen]
            listed = ", ".join(phrases[:-1]) + " and " + phrases[-1]
            return draft(["Some quick numbers, please: {a}.", "I need {a}.", "From the shop database, tell me {a}."], ["run_sql"], [x for _, x in chosen], a=listed, aggregates=chosen)
        if family == "stock_many":
            if len(products) < 2:
                return None
            chosen = rng.sample(products, min(len(products), rng.choice([2, 3])))
            current = {r[1]: r[4] for r in world["products"]}
            levels = [rng.choice([k for k in range(0, 120, 2) if k != current[name]]) for name in chosen]
            pairs = [f"{p} to {k}" for p, k in zip(chosen, levels)]
            listed = ", ".join(pairs[:-1]) + " and " + pairs[-1]
            return draft(["Set the stock of {a}.", "Inventory count done: update the stock of {a}.", "Please change the stock levels: {a}."], ["run_sql"], chosen, a=listed, stock=[[p, k] for p, k in zip(chosen, levels)])
        if family == "order_customer":
            n = pick([r[0] for r in world["orders"]])
            customer = next(r[1] for r in world["orders"] if r[0] == n)
            name = world["customers"][customer - 1][1]
            return draft(["Who placed order {n}, and how many orders has that customer placed in total?", "Find the customer behind order {n} and tell me their total number of orders.", "Order {n}: whose is it, and how many orders does that person have altogether?"], ["run_sql"], [n, name, customer], n=n)
        if family == "top_customer_latest":
            city = pick(cities) if cities and rng.random() < 0.5 else None
            top = query(_top_customer_sql(city, 2))
            if not top or (len(top) > 1 and top[0][2] == top[1][2]):
                return None
            where = f" from {city}" if city else ""
            return draft(["Which customer{w} has placed the most orders? Tell me the date and status of that customer's most recent order.", "Find our customer{w} with the most orders, then look up their latest order: when was it placed and what is its status?", "Who is the customer{w} with the largest number of orders, and what is the date and status of their newest order?"], ["run_sql"], [top[0][1], top[0][0], *([city] if city else [])], w=where, city=city)
        if family == "priciest_units":
            if not categories:
                return None
            k = pick(categories)
            top = query(f"SELECT id, name, price FROM products WHERE category = {_q(k)} ORDER BY price DESC LIMIT 2")
            if len(top) > 1 and top[0][2] == top[1][2]:
                return None
            return draft(["What is the most expensive product in the {k} category, and how many units of it have been ordered in total?", "Find the priciest {k} product, then count how many units of it all orders contain.", "Which {k} product costs the most, and how many units of it were ordered overall?"], ["run_sql"], [k, top[0][1], top[0][0]], k=k)
        if family == "delete_cancelled":
            owners = [r[0] for r in query("SELECT DISTINCT c.name FROM customers c JOIN orders o ON o.customer_id = c.id WHERE o.status = 'cancelled'") if r[0] in names]
            if not owners:
                return None
            c = pick(owners)
            ids = [r[0] for r in query(_cancelled_sql(c))]
            return draft(["Delete the cancelled orders of {c}, together with their order items.", "Remove every cancelled order of the customer {c} from the database, including its order items.", "Clean up: {c}'s cancelled orders and their items should be deleted."], ["run_sql"], [c, *ids], c=c)
        raise ValueError(f"database: no task family {family!r}")

    # --- the oracle --------------------------------------------------------------------------------------

    def _solve(self, task: Task) -> Generator[OracleStep, list[Any], Answer]:
        p, family = task.params, task.params["family"]

        def describe(*tables: str) -> OracleStep:
            return OracleStep(f"I need the columns of {' and '.join(tables) if len(tables) < 3 else ', '.join(tables[:-1]) + ' and ' + tables[-1]} before writing the query.", [("describe_table", {"table": t}) for t in tables])

        def sql(think: str, query: str) -> OracleStep:
            return OracleStep(think, [("run_sql", {"query": query})])

        if family == "count_status":
            [r] = yield sql("One COUNT over the orders table answers this.", f"SELECT COUNT(*) FROM orders WHERE status = {_q(p['s'])}")
            return Answer(f"There are {r['rows'][0][0]} orders with the status {p['s']}.")
        if family == "customer_city":
            [r] = yield sql("I will look the customer up in the customers table.", f"SELECT city FROM customers WHERE name = {_q(p['c'])}")
            return Answer(f"{p['c']} is from {r['rows'][0][0]}.")
        if family == "product_stock":
            [r] = yield sql("The stock is a column of products.", f"SELECT stock FROM products WHERE name = {_q(p['p'])}")
            return Answer(f"{p['p']} has {r['rows'][0][0]} units in stock.")
        if family == "table_sizes":
            [r] = yield OracleStep("list_tables gives every table with its row count.", [("list_tables", {})])
            return Answer("The tables are " + ", ".join(f"{t} ({n} rows)" for t, n in r["tables"].items()) + ".")
        if family == "ship_order":
            [r] = yield sql("One UPDATE of that order's status.", f"UPDATE orders SET status = 'shipped' WHERE id = {p['n']}")
            return Answer(f"Order {p['n']} is now marked as shipped ({r['changed']} row changed).")
        if family == "set_stock":
            yield sql("One UPDATE of the product's stock.", f"UPDATE products SET stock = {p['k']} WHERE name = {_q(p['p'])}")
            return Answer(f"The stock of {p['p']} is now {p['k']} units.")
        if family == "add_customer":
            yield sql("One INSERT; the id is assigned automatically.", f"INSERT INTO customers (name, city, tier) VALUES ({_q(p['c'])}, {_q(p['city'])}, {_q(p['t'])})")
            return Answer(f"{p['c']} from {p['city']} is now a {p['t']}-tier customer.")
        if family == "category_avg_price":
            yield describe("products")
            [r] = yield sql("products has category and price; AVG gives the mean.", f"SELECT AVG(price) FROM products WHERE category = {_q(p['k'])}")
            return Answer(f"The average price of a {p['k']} product is {r['rows'][0][0]}.")
        if family == "city_order_count":
            yield describe("customers", "orders")
            [r] = yield sql("orders.customer_id refers to customers.id; I join and filter on the city.", f"SELECT COUNT(*) FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.city = {_q(p['city'])}")
            return Answer(f"Customers from {p['city']} have placed {r['rows'][0][0]} orders.")
        if family == "customer_spend":
            yield describe(*TABLES)
            [r] = yield sql("I join customers, orders, order_items and products and sum quantity x price, leaving out cancelled orders.", _spend_sql(p["c"]))
            return Answer(f"{p['c']} has spent {r['rows'][0][0]} on orders that were not cancelled.")
        if family == "top_category_revenue":
            yield describe("orders", "order_items", "products")
            [r] = yield sql(f"I sum quantity x price per category over {p['s']} orders and take the largest.", _top_category_sql(p["s"], 1))
            category, revenue = r["rows"][0]
            return Answer(f"{category} brought in the most revenue from {p['s']} orders: {revenue}.")
        if family == "raise_prices":
            yield describe("products")
            [r] = yield sql(f"One UPDATE multiplies the {p['k']} prices by {_mult(p['p'])} and rounds to cents.", _raise_sql(p["k"], p["p"]))
            return Answer(f"Raised the price of {r['changed']} {p['k']} products by {p['p']}%.")
        if family == "cancel_pending":
            yield describe("customers", "orders")
            [r] = yield sql("One UPDATE of the pending orders whose customer_id is that customer's id.", _cancel_sql(p["c"]))
            return Answer(f"Cancelled {r['changed']} pending orders of {p['c']}.")
        if family == "describe_many":
            results = yield OracleStep("The tables are independent; I describe them all at once.", [("describe_table", {"table": t}) for t in p["tables"]])
            return Answer("; ".join(f"{r['table']} has {r['rows']} rows and the columns {', '.join(r['columns'])}" for r in results) + ".")
        if family == "aggregates_many":
            calls = [("run_sql", {"query": AGGREGATES[k][1].format(q=_q(x))}) for k, x in p["aggregates"]]
            results = yield OracleStep("These numbers are independent; one query each, all at once.", calls)
            said = "; ".join(f"{AGGREGATES[k][0].format(x=x)} is {r['rows'][0][0]}" for (k, x), r in zip(p["aggregates"], results))
            return Answer(said[0].upper() + said[1:] + ".")
        if family == "stock_many":
            calls = [("run_sql", {"query": f"UPDATE products SET stock = {k} WHERE name = {_q(name)}"}) for name, k in p["stock"]]
            yield OracleStep("Independent updates, one per product, all at once.", calls)
            return Answer("Updated the stock: " + ", ".join(f"{name} now has {k} units" for name, k in p["stock"]) + ".")
        if family == "order_customer":
            [r] = yield sql("First: whose order is it?", f"SELECT o.customer_id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.id = {p['n']}")
            customer_id, name = r["rows"][0]
            [n] = yield sql(f"Order {p['n']} belongs to customer {customer_id}; now count their orders.", f"SELECT COUNT(*) FROM orders WHERE customer_id = {customer_id}")
            return Answer(f"Order {p['n']} was placed by {name} (customer {customer_id}), who has placed {n['rows'][0][0]} orders in total.")
        if family == "top_customer_latest":
            [r] = yield sql("First: the customer with the most orders.", _top_customer_sql(p.get("city"), 1))
            customer_id, name, count = r["rows"][0]
            [latest] = yield sql(f"{name} (id {customer_id}) has {count} orders; now their most recent one.", f"SELECT id, order_date, status FROM orders WHERE customer_id = {customer_id} ORDER BY order_date DESC LIMIT 1")
            order_id, day, status = latest["rows"][0]
            return Answer(f"{name} has placed the most orders ({count}). Their most recent order, order {order_id}, was placed on {day} and is {status}.")
        if family == "priciest_units":
            [r] = yield sql(f"First: the most expensive {p['k']} product.", f"SELECT id, name, price FROM products WHERE category = {_q(p['k'])} ORDER BY price DESC LIMIT 1")
            product_id, name, price = r["rows"][0]
            [u] = yield sql(f"{name} is product {product_id}; now the units ordered.", f"SELECT COALESCE(SUM(quantity), 0) FROM order_items WHERE product_id = {product_id}")
            return Answer(f"The most expensive {p['k']} product is {name} at {price}; {u['rows'][0][0]} units of it have been ordered in total.")
        if family == "delete_cancelled":
            [r] = yield sql("First: the ids of the customer's cancelled orders.", _cancelled_sql(p["c"]))
            ids = ", ".join(str(row[0]) for row in r["rows"])
            orders = f"order {ids}" if len(r["rows"]) == 1 else f"orders {ids}"
            results = yield OracleStep(f"Cancelled: {orders}. I delete the order items and the {orders.split()[0]} with those ids.", [
                ("run_sql", {"query": f"DELETE FROM order_items WHERE order_id IN ({ids})"}),
                ("run_sql", {"query": f"DELETE FROM orders WHERE id IN ({ids})"}),
            ])
            items = results[0]["changed"]
            return Answer(f"Deleted {p['c']}'s cancelled {orders} and {items} order item{'s' if items != 1 else ''}.")
        raise ValueError(f"database: no oracle for family {family!r}")

    # --- the verifier ------------------------------------------------------------------------------------

    def _reference(self, db: sqlite3.Connection) -> list[tuple[list[str], list[str]]]:
        """On a fresh copy of the world: the facts a correct answer states (each with the rival values that
        must not be stated with it), or, for tasks that change data, apply the intended change and return []."""
        p, family = self.task.params, self.task.params["family"]
        world = _world(p["world_seed"])
        customers = [r[1] for r in world["customers"]]
        products = [r[1] for r in world["products"]]

        def fact(value: Any, rivals: list[Any] = ()) -> tuple[list[str], list[str]]:
            return _alternatives(_cell(value)), [str(r) for r in rivals]

        if family == "count_status":
            return [fact(_one(db, f"SELECT COUNT(*) FROM orders WHERE status = {_q(p['s'])}"))]
        if family == "customer_city":
            return [fact(_one(db, f"SELECT city FROM customers WHERE name = {_q(p['c'])}"), CITIES)]
        if family == "product_stock":
            return [fact(_one(db, f"SELECT stock FROM products WHERE name = {_q(p['p'])}"))]
        if family == "table_sizes":
            return [fact(len(world[t])) for t in TABLES]
        if family == "category_avg_price":
            return [fact(_one(db, f"SELECT AVG(price) FROM products WHERE category = {_q(p['k'])}"))]
        if family == "city_order_count":
            return [fact(_one(db, f"SELECT COUNT(*) FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.city = {_q(p['city'])}"))]
        if family == "customer_spend":
            return [fact(_one(db, _spend_sql(p["c"])))]
        if family == "top_category_revenue":
            category, revenue = _rows(db, _top_category_sql(p["s"], 1))[0]
            return [fact(category, CATEGORIES), fact(revenue)]
        if family == "describe_many":
            return [fact(c) for t in p["tables"] for c in TABLES[t] if c != "id"] + [fact(len(world[t])) for t in p["tables"]]
        if family == "aggregates_many":
            return [fact(_one(db, AGGREGATES[k][1].format(q=_q(x)))) for k, x in p["aggregates"]]
        if family == "order_customer":
            customer = _one(db, f"SELECT customer_id FROM orders WHERE id = {p['n']}")
            return [fact(customers[customer - 1], customers), fact(_one(db, f"SELECT COUNT(*) FROM orders WHERE customer_id = {customer}"))]
        if family == "top_customer_latest":
            customer_id, name, _ = _rows(db, _top_customer_sql(p.get("city"), 1))[0]
            day, status = _rows(db, f"SELECT order_date, status FROM orders WHERE customer_id = {customer_id} ORDER BY order_date DESC LIMIT 1")[0]
            return [fact(name, customers), fact(day, [r[2] for r in world["orders"]]), fact(status, STATUSES)]
        if family == "priciest_units":
            product_id, name = _rows(db, f"SELECT id, name FROM products WHERE category = {_q(p['k'])} ORDER BY price DESC LIMIT 1")[0]
            return [fact(name, products), fact(_one(db, f"SELECT COALESCE(SUM(quantity), 0) FROM order_items WHERE product_id = {product_id}"))]
        # Tasks that change data: apply the intended change to the fresh copy.
        if family == "ship_order":
            db.execute(f"UPDATE orders SET status = 'shipped' WHERE id = {p['n']}")
        elif family == "set_stock":
            db.execute(f"UPDATE products SET stock = {p['k']} WHERE name = {_q(p['p'])}")
        elif family == "add_customer":
            db.execute(f"INSERT INTO customers (name, city, tier) VALUES ({_q(p['c'])}, {_q(p['city'])}, {_q(p['t'])})")
        elif family == "raise_prices":
            db.execute(_raise_sql(p["k"], p["p"]))
        elif family == "cancel_pending":
            db.execute(_cancel_sql(p["c"]))
        elif family == "stock_many":
            for name, k in p["stock"]:
                db.execute(f"UPDATE products SET stock = {k} WHERE name = {_q(name)}")
        elif family == "delete_cancelled":
            db.execute(f"DELETE FROM order_items WHERE order_id IN ({_cancelled_sql(p['c'], 'o.id')})")
            db.execute(f"DELETE FROM orders WHERE id IN ({_cancelled_sql(p['c'], 'o.id')})")
        else:
            raise ValueError(f"database: no verifier for family {family!r}")
        return []

    def _verify(self, answer: str | None) -> float:
        seed = self.task.params["world_seed"]
        reference = _build(seed)
        try:
            facts = self._reference(reference)
            expected = _snapshot(reference)
        finally:
            reference.close()
        self._conn.set_progress_handler(None, 0)  # the verifier's own reads are not the agent's budget
        try:
            actual = _snapshot(self._conn)
        finally:
            self._conn.set_progress_handler(self._progress, STEP_CHUNK)
        initial = {t: {row[0]: row for row in rows} for t, rows in _world(seed).items()}
        return _state_score(initial, expected, actual, facts, answer)


def _state_score(initial: dict, expected: dict, actual: dict, facts: list[tuple[list[str], list[str]]], answer: str | None) -> float:
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
        return _facts_score(answer, facts) * keep
    return (correct / targets if targets else 0.0) * keep


def _facts_score(answer: str | None, facts: list[tuple[list[str], list[str]]]) -> float:
    """The share of facts the answer states; a fact stated together with a rival value does not count, and
    an answer listing many more numbers than it was asked for scores 0 (no credit for enumerating)."""
    if not answer or not facts:
        return 0.0
    numbers = sum(word[0].isdigit() for word in normalise(answer).split())
    if numbers > 4 * len(facts) + 6:
        return 0.0
    stated = 0
    for alternatives, rivals in facts:
        if any(mentions(answer, a) for a in alternatives):
            stated += not any(mentions(answer, r) for r in rivals if normalise(r) not in {normalise(a) for a in alternatives})
    return stated / len(facts)


# --- reference SQL shared by the task maker, the oracle and the verifier --------------------------------

def _spend_sql(customer: str) -> str:
    return ("SELECT SUM(i.quantity * p.price) FROM customers c JOIN orders o ON o.customer_id = c.id "
            "JOIN order_items i ON i.order_id = o.id JOIN products p ON p.id = i.product_id "
            f"WHERE c.name = {_q(customer)} AND o.status != 'cancelled'")


def _top_category_sql(status: str, limit: int) -> str:
    return ("SELECT p.category, SUM(i.quantity * p.price) AS revenue FROM orders o JOIN order_items i ON i.order_id = o.id "
            f"JOIN products p ON p.id = i.product_id WHERE o.status = {_q(status)} GROUP BY p.category ORDER BY revenue DESC LIMIT {limit}")


def _top_customer_sql(city: str | None, limit: int) -> str:
    where = f"WHERE c.city = {_q(city)} " if city else ""
    return (f"SELECT c.id, c.name, COUNT(*) AS orders FROM customers c JOIN orders o ON o.customer_id = c.id {where}"
            f"GROUP BY c.id ORDER BY orders DESC LIMIT {limit}")


def _raise_sql(category: str, percent: int) -> str:
    return f"UPDATE products SET price = ROUND(price * {_mult(percent)}, 2) WHERE category = {_q(category)}"


def _cancel_sql(customer: str) -> str:
    return f"UPDATE orders SET status = 'cancelled' WHERE status = 'pending' AND customer_id = (SELECT id FROM customers WHERE name = {_q(customer)})"


def _cancelled_sql(customer: str, columns: str = "o.id") -> str:
    return f"SELECT {columns} FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.name = {_q(customer)} AND o.status = 'cancelled'"
