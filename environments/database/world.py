"""The shop's world: the schema, the pools the worlds are drawn from, one seeded world as rows and as an
SQLite database, and the queries on it that tasks share."""

from __future__ import annotations

import functools
import random
import sqlite3
from contextlib import closing
from datetime import date, timedelta
from typing import Any

from environments.base import entity_pool

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


def _q(text: str) -> str:
    """An SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _rows(conn: sqlite3.Connection, sql: str) -> list[tuple]:
    return conn.execute(sql).fetchall()


def _one(conn: sqlite3.Connection, sql: str) -> Any:
    row = conn.execute(sql).fetchone()
    return row[0] if row else None


class Shop:
    """What a task is drawn from: one world's rows, the entities a task may be about (the held-out ones for
    novel test tasks) as they occur in this world, and SQL on the world for drawing that needs it."""

    def __init__(self, seed: int, novel: bool):
        self.seed = seed
        self.rows = _world(seed)
        self.pool = _pools(novel)
        self.names = [r[1] for r in self.rows["customers"] if r[1] in self.pool["customers"]]
        self.products = [r[1] for r in self.rows["products"] if r[1] in self.pool["products"]]
        self.cities = [c for c in self.pool["cities"] if any(r[2] == c for r in self.rows["customers"])]
        self.categories = [k for k in self.pool["categories"] if sum(r[2] == k for r in self.rows["products"]) >= 2]

    def query(self, sql: str) -> list[tuple]:
        with closing(_build(self.seed)) as db:
            return _rows(db, sql)


# --- queries on the world, shared by drawing tasks, solving them and checking answers -------------------

AGGREGATES = {  # kind -> (phrase, SQL), for aggregates_many
    "city_customers": ("the number of customers in {x}", "SELECT COUNT(*) FROM customers WHERE city = {q}"),
    "status_orders": ("the number of {x} orders", "SELECT COUNT(*) FROM orders WHERE status = {q}"),
    "max_price": ("the highest price in the {x} category", "SELECT MAX(price) FROM products WHERE category = {q}"),
    "category_stock": ("the total stock of {x} products", "SELECT SUM(stock) FROM products WHERE category = {q}"),
    "tier_customers": ("the number of {x}-tier customers", "SELECT COUNT(*) FROM customers WHERE tier = {q}"),
}


def spend_sql(customer: str) -> str:
    return ("SELECT SUM(i.quantity * p.price) FROM customers c JOIN orders o ON o.customer_id = c.id "
            "JOIN order_items i ON i.order_id = o.id JOIN products p ON p.id = i.product_id "
            f"WHERE c.name = {_q(customer)} AND o.status != 'cancelled'")


def top_category_sql(status: str, limit: int) -> str:
    return ("SELECT p.category, SUM(i.quantity * p.price) AS revenue FROM orders o JOIN order_items i ON i.order_id = o.id "
            f"JOIN products p ON p.id = i.product_id WHERE o.status = {_q(status)} GROUP BY p.category ORDER BY revenue DESC LIMIT {limit}")


def top_customer_sql(city: str | None, limit: int) -> str:
    where = f"WHERE c.city = {_q(city)} " if city else ""
    return (f"SELECT c.id, c.name, COUNT(*) AS orders FROM customers c JOIN orders o ON o.customer_id = c.id {where}"
            f"GROUP BY c.id ORDER BY orders DESC LIMIT {limit}")


def cancelled_sql(customer: str) -> str:
    return f"SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.name = {_q(customer)} AND o.status = 'cancelled'"


def customers_sql(orders_where: str) -> str:
    """The customers with an order that matches."""
    return f"SELECT DISTINCT c.name FROM customers c JOIN orders o ON o.customer_id = c.id WHERE {orders_where}"


def city_orders_sql(city: str) -> str:
    return f"SELECT COUNT(*) FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.city = {_q(city)}"


def latest_order_sql(customer_id: int, columns: str) -> str:
    return f"SELECT {columns} FROM orders WHERE customer_id = {customer_id} ORDER BY order_date DESC LIMIT 1"


def priciest_sql(category: str, limit: int) -> str:
    return f"SELECT id, name, price FROM products WHERE category = {_q(category)} ORDER BY price DESC LIMIT {limit}"


def units_sql(product_id: int) -> str:
    return f"SELECT COALESCE(SUM(quantity), 0) FROM order_items WHERE product_id = {product_id}"
