"""The shop's task families: for each, how a task is drawn from a world, how the expert solves it, and (for
questions) the facts a correct answer states. Tasks that change data have no hand-written expected state:
they are verified against the database the expert's statements leave (see ``ToolEnvironment._verify``)."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from environments.answers import Fact
from environments.base import Answer, OracleStep
from environments.database.phrasings import PHRASINGS
from environments.database.world import (
    AGGREGATES, CATEGORIES, CITIES, STATUSES, TABLES, TIERS, Shop, _cell, _one, _q, _rows, _world, cancelled_sql, city_orders_sql,
    customers_sql, latest_order_sql, priciest_sql, spend_sql, top_category_sql, top_customer_sql, units_sql,
)
from environments.families import Drawn, Oracle, TaskFamily


def _mult(percent: int) -> str:
    return f"{1 + percent / 100:g}"


def _listed(items: list[str]) -> str:
    return ", ".join(items[:-1]) + " and " + items[-1]


def fact(value: Any, rivals: list[Any] = ()) -> Fact:
    """A value as the answer may write it (a float rounded either way at a tie), with its rivals."""
    value = _cell(value)
    spellings = [str(value)]
    if isinstance(value, float):
        half_up = Decimal(repr(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        spellings = sorted({str(round(value, 2)), str(half_up)})
    return Fact(tuple(spellings), tuple(str(r) for r in rivals))


def describe(*tables: str) -> OracleStep:
    return OracleStep(f"I need the columns of {' and '.join(tables) if len(tables) < 3 else _listed(list(tables))} before writing the query.", [("describe_table", {"table": t}) for t in tables])


def sql(think: str, query: str) -> OracleStep:
    return OracleStep(think, [("run_sql", {"query": query})])


# --- single: one call -----------------------------------------------------------------------------------

def draw_count_status(rng: random.Random, shop: Shop) -> Drawn:
    s = rng.choice(STATUSES)
    return {"s": s}, [s]


def solve_count_status(env: Any, p: dict) -> Oracle:
    [r] = yield sql("One COUNT over the orders table answers this.", f"SELECT COUNT(*) FROM orders WHERE status = {_q(p['s'])}")
    return Answer(f"There are {r['rows'][0][0]} orders with the status {p['s']}.")


def expect_count_status(db: sqlite3.Connection, p: dict) -> list[Fact]:
    return [fact(_one(db, f"SELECT COUNT(*) FROM orders WHERE status = {_q(p['s'])}"))]


def draw_customer_city(rng: random.Random, shop: Shop) -> Drawn | None:
    if not shop.names:
        return None
    c = rng.choice(shop.names)
    return {"c": c}, [c]


def solve_customer_city(env: Any, p: dict) -> Oracle:
    [r] = yield sql("I will look the customer up in the customers table.", f"SELECT city FROM customers WHERE name = {_q(p['c'])}")
    return Answer(f"{p['c']} is from {r['rows'][0][0]}.")


def expect_customer_city(db: sqlite3.Connection, p: dict) -> list[Fact]:
    return [fact(_one(db, f"SELECT city FROM customers WHERE name = {_q(p['c'])}"), CITIES)]


def draw_product_stock(rng: random.Random, shop: Shop) -> Drawn | None:
    if not shop.products:
        return None
    p = rng.choice(shop.products)
    return {"p": p}, [p]


def solve_product_stock(env: Any, p: dict) -> Oracle:
    [r] = yield sql("The stock is a column of products.", f"SELECT stock FROM products WHERE name = {_q(p['p'])}")
    return Answer(f"{p['p']} has {r['rows'][0][0]} units in stock.")


def expect_product_stock(db: sqlite3.Connection, p: dict) -> list[Fact]:
    return [fact(_one(db, f"SELECT stock FROM products WHERE name = {_q(p['p'])}"))]


def draw_table_sizes(rng: random.Random, shop: Shop) -> Drawn:
    return {}, list(TABLES)


def solve_table_sizes(env: Any, p: dict) -> Oracle:
    [r] = yield OracleStep("list_tables gives every table with its row count.", [("list_tables", {})])
    return Answer("The tables are " + ", ".join(f"{t} ({n} rows)" for t, n in r["tables"].items()) + ".")


def expect_table_sizes(db: sqlite3.Connection, p: dict) -> list[Fact]:
    return [fact(len(_world(p["world_seed"])[t])) for t in TABLES]


def draw_ship_order(rng: random.Random, shop: Shop) -> Drawn | None:
    pending = [r[0] for r in shop.rows["orders"] if r[3] == "pending"]
    if not pending:
        return None
    n = rng.choice(pending)
    return {"n": n}, [n, "shipped"]


def solve_ship_order(env: Any, p: dict) -> Oracle:
    [r] = yield sql("One UPDATE of that order's status.", f"UPDATE orders SET status = 'shipped' WHERE id = {p['n']}")
    return Answer(f"Order {p['n']} is now marked as shipped ({r['changed']} row changed).")


def draw_set_stock(rng: random.Random, shop: Shop) -> Drawn | None:
    if not shop.products:
        return None
    p = rng.choice(shop.products)
    current = next(r[4] for r in shop.rows["products"] if r[1] == p)
    k = rng.choice([k for k in range(0, 120, 3) if k != current])
    return {"p": p, "k": k}, [p, k]


def solve_set_stock(env: Any, p: dict) -> Oracle:
    yield sql("One UPDATE of the product's stock.", f"UPDATE products SET stock = {p['k']} WHERE name = {_q(p['p'])}")
    return Answer(f"The stock of {p['p']} is now {p['k']} units.")


def draw_add_customer(rng: random.Random, shop: Shop) -> Drawn | None:
    present = {r[1] for r in shop.rows["customers"]}
    new = [n for n in shop.pool["customers"] if n not in present]
    if not new:
        return None
    c, city, t = rng.choice(new), rng.choice(shop.pool["cities"]), rng.choice(TIERS)
    return {"c": c, "city": city, "t": t}, [c, city]


def solve_add_customer(env: Any, p: dict) -> Oracle:
    yield sql("One INSERT; the id is assigned automatically.", f"INSERT INTO customers (name, city, tier) VALUES ({_q(p['c'])}, {_q(p['city'])}, {_q(p['t'])})")
    return Answer(f"{p['c']} from {p['city']} is now a {p['t']}-tier customer.")


# --- multi_step: read the schema, then one query -------------------------------------------------------

def draw_category_avg_price(rng: random.Random, shop: Shop) -> Drawn | None:
    if not shop.categories:
        return None
    k = rng.choice(shop.categories)
    return {"k": k}, [k, "products"]


def solve_category_avg_price(env: Any, p: dict) -> Oracle:
    yield describe("products")
    [r] = yield sql("products has category and price; AVG gives the mean.", f"SELECT AVG(price) FROM products WHERE category = {_q(p['k'])}")
    return Answer(f"The average price of a {p['k']} product is {r['rows'][0][0]}.")


def expect_category_avg_price(db: sqlite3.Connection, p: dict) -> list[Fact]:
    return [fact(_one(db, f"SELECT AVG(price) FROM products WHERE category = {_q(p['k'])}"))]


def draw_city_order_count(rng: random.Random, shop: Shop) -> Drawn | None:
    if not shop.cities:
        return None
    city = rng.choice(shop.cities)
    return {"city": city}, [city, "customers", "orders"]


def solve_city_order_count(env: Any, p: dict) -> Oracle:
    yield describe("customers", "orders")
    [r] = yield sql("orders.customer_id refers to customers.id; I join and filter on the city.", city_orders_sql(p["city"]))
    return Answer(f"Customers from {p['city']} have placed {r['rows'][0][0]} orders.")


def expect_city_order_count(db: sqlite3.Connection, p: dict) -> list[Fact]:
    return [fact(_one(db, city_orders_sql(p["city"])))]


def draw_customer_spend(rng: random.Random, shop: Shop) -> Drawn | None:
    spenders = [r[0] for r in shop.query(customers_sql("o.status != 'cancelled'")) if r[0] in shop.names]
    if not spenders:
        return None
    c = rng.choice(spenders)
    return {"c": c}, [c, *TABLES]


def solve_customer_spend(env: Any, p: dict) -> Oracle:
    yield describe(*TABLES)
    [r] = yield sql("I join customers, orders, order_items and products and sum quantity x price, leaving out cancelled orders.", spend_sql(p["c"]))
    return Answer(f"{p['c']} has spent {r['rows'][0][0]} on orders that were not cancelled.")


def expect_customer_spend(db: sqlite3.Connection, p: dict) -> list[Fact]:
    return [fact(_one(db, spend_sql(p["c"])))]


def draw_top_category_revenue(rng: random.Random, shop: Shop) -> Drawn | None:
    s = rng.choice(["delivered", "shipped"])
    top = shop.query(top_category_sql(s, 2))
    if not top or (len(top) > 1 and abs(top[0][1] - top[1][1]) < 0.01):
        return None
    return {"s": s}, [s, "orders", "order_items", "products"]


def solve_top_category_revenue(env: Any, p: dict) -> Oracle:
    yield describe("orders", "order_items", "products")
    [r] = yield sql(f"I sum quantity x price per category over {p['s']} orders and take the largest.", top_category_sql(p["s"], 1))
    category, revenue = r["rows"][0]
    return Answer(f"{category} brought in the most revenue from {p['s']} orders: {revenue}.")


def expect_top_category_revenue(db: sqlite3.Connection, p: dict) -> list[Fact]:
    category, revenue = _rows(db, top_category_sql(p["s"], 1))[0]
    return [fact(category, CATEGORIES), fact(revenue)]


def draw_raise_prices(rng: random.Random, shop: Shop) -> Drawn | None:
    if not shop.categories:
        return None
    k, p = rng.choice(shop.categories), rng.choice([5, 10, 15, 20, 25])
    return {"k": k, "p": p}, [k, "products"]


def solve_raise_prices(env: Any, p: dict) -> Oracle:
    yield describe("products")
    [r] = yield sql(f"One UPDATE multiplies the {p['k']} prices by {_mult(p['p'])} and rounds to cents.",
                    f"UPDATE products SET price = ROUND(price * {_mult(p['p'])}, 2) WHERE category = {_q(p['k'])}")
    return Answer(f"Raised the price of {r['changed']} {p['k']} products by {p['p']}%.")


def draw_cancel_pending(rng: random.Random, shop: Shop) -> Drawn | None:
    owners = [r[0] for r in shop.query(customers_sql("o.status = 'pending'")) if r[0] in shop.names]
    if not owners:
        return None
    c = rng.choice(owners)
    return {"c": c}, [c, "customers", "orders"]


def solve_cancel_pending(env: Any, p: dict) -> Oracle:
    yield describe("customers", "orders")
    [r] = yield sql("One UPDATE of the pending orders whose customer_id is that customer's id.",
                    f"UPDATE orders SET status = 'cancelled' WHERE status = 'pending' AND customer_id = (SELECT id FROM customers WHERE name = {_q(p['c'])})")
    return Answer(f"Cancelled {r['changed']} pending orders of {p['c']}.")


# --- parallel: independent calls in one turn -----------------------------------------------------------

def draw_describe_many(rng: random.Random, shop: Shop) -> Drawn:
    tables = rng.sample(list(TABLES), rng.choice([2, 3]))
    return {"t": _listed(tables), "tables": tables}, tables


def solve_describe_many(env: Any, p: dict) -> Oracle:
    results = yield OracleStep("The tables are independent; I describe them all at once.", [("describe_table", {"table": t}) for t in p["tables"]])
    return Answer("; ".join(f"{r['table']} has {r['rows']} rows and the columns {', '.join(r['columns'])}" for r in results) + ".")


def expect_describe_many(db: sqlite3.Connection, p: dict) -> list[Fact]:
    world = _world(p["world_seed"])
    return [fact(c) for t in p["tables"] for c in TABLES[t] if c != "id"] + [fact(len(world[t])) for t in p["tables"]]


def draw_aggregates_many(rng: random.Random, shop: Shop) -> Drawn | None:
    kinds = rng.sample(sorted(AGGREGATES), rng.choice([2, 3]))
    domains = {"city_customers": shop.cities, "status_orders": STATUSES, "max_price": shop.categories, "category_stock": shop.categories, "tier_customers": TIERS}
    if any(not domains[k] for k in kinds):
        return None
    chosen = [[k, rng.choice(domains[k])] for k in kinds]
    return {"a": _listed([AGGREGATES[k][0].format(x=x) for k, x in chosen]), "aggregates": chosen}, [x for _, x in chosen]


def solve_aggregates_many(env: Any, p: dict) -> Oracle:
    calls = [("run_sql", {"query": AGGREGATES[k][1].format(q=_q(x))}) for k, x in p["aggregates"]]
    results = yield OracleStep("These numbers are independent; one query each, all at once.", calls)
    said = "; ".join(f"{AGGREGATES[k][0].format(x=x)} is {r['rows'][0][0]}" for (k, x), r in zip(p["aggregates"], results))
    return Answer(said[0].upper() + said[1:] + ".")


def expect_aggregates_many(db: sqlite3.Connection, p: dict) -> list[Fact]:
    return [fact(_one(db, AGGREGATES[k][1].format(q=_q(x)))) for k, x in p["aggregates"]]


def draw_stock_many(rng: random.Random, shop: Shop) -> Drawn | None:
    if len(shop.products) < 2:
        return None
    chosen = rng.sample(shop.products, min(len(shop.products), rng.choice([2, 3])))
    current = {r[1]: r[4] for r in shop.rows["products"]}
    levels = [rng.choice([k for k in range(0, 120, 2) if k != current[name]]) for name in chosen]
    return {"a": _listed([f"{p} to {k}" for p, k in zip(chosen, levels)]), "stock": [[p, k] for p, k in zip(chosen, levels)]}, chosen


def solve_stock_many(env: Any, p: dict) -> Oracle:
    calls = [("run_sql", {"query": f"UPDATE products SET stock = {k} WHERE name = {_q(name)}"}) for name, k in p["stock"]]
    yield OracleStep("Independent updates, one per product, all at once.", calls)
    return Answer("Updated the stock: " + ", ".join(f"{name} now has {k} units" for name, k in p["stock"]) + ".")


# --- nested: a later call needs what an earlier one returned ---------------------------------------------

def draw_order_customer(rng: random.Random, shop: Shop) -> Drawn:
    n = rng.choice([r[0] for r in shop.rows["orders"]])
    customer = next(r[1] for r in shop.rows["orders"] if r[0] == n)
    return {"n": n}, [n, shop.rows["customers"][customer - 1][1], customer]


def solve_order_customer(env: Any, p: dict) -> Oracle:
    [r] = yield sql("First: whose order is it?", f"SELECT o.customer_id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.id = {p['n']}")
    customer_id, name = r["rows"][0]
    [n] = yield sql(f"Order {p['n']} belongs to customer {customer_id}; now count their orders.", f"SELECT COUNT(*) FROM orders WHERE customer_id = {customer_id}")
    return Answer(f"Order {p['n']} was placed by {name} (customer {customer_id}), who has placed {n['rows'][0][0]} orders in total.")


def expect_order_customer(db: sqlite3.Connection, p: dict) -> list[Fact]:
    customers = [r[1] for r in _world(p["world_seed"])["customers"]]
    customer = _one(db, f"SELECT customer_id FROM orders WHERE id = {p['n']}")
    return [fact(customers[customer - 1], customers), fact(_one(db, f"SELECT COUNT(*) FROM orders WHERE customer_id = {customer}"))]


def draw_top_customer_latest(rng: random.Random, shop: Shop) -> Drawn | None:
    city = rng.choice(shop.cities) if shop.cities and rng.random() < 0.5 else None
    top = shop.query(top_customer_sql(city, 2))
    if not top or (len(top) > 1 and top[0][2] == top[1][2]):
        return None
    return {"w": f" from {city}" if city else "", "city": city}, [top[0][1], top[0][0], *([city] if city else [])]


def solve_top_customer_latest(env: Any, p: dict) -> Oracle:
    [r] = yield sql("First: the customer with the most orders.", top_customer_sql(p.get("city"), 1))
    customer_id, name, count = r["rows"][0]
    [latest] = yield sql(f"{name} (id {customer_id}) has {count} orders; now their most recent one.", latest_order_sql(customer_id, "id, order_date, status"))
    order_id, day, status = latest["rows"][0]
    return Answer(f"{name} has placed the most orders ({count}). Their most recent order, order {order_id}, was placed on {day} and is {status}.")


def expect_top_customer_latest(db: sqlite3.Connection, p: dict) -> list[Fact]:
    world = _world(p["world_seed"])
    customer_id, name, _ = _rows(db, top_customer_sql(p.get("city"), 1))[0]
    day, status = _rows(db, latest_order_sql(customer_id, "order_date, status"))[0]
    return [fact(name, [r[1] for r in world["customers"]]), fact(day, [r[2] for r in world["orders"]]), fact(status, STATUSES)]


def draw_priciest_units(rng: random.Random, shop: Shop) -> Drawn | None:
    if not shop.categories:
        return None
    k = rng.choice(shop.categories)
    top = shop.query(priciest_sql(k, 2))
    if len(top) > 1 and top[0][2] == top[1][2]:
        return None
    return {"k": k}, [k, top[0][1], top[0][0]]


def solve_priciest_units(env: Any, p: dict) -> Oracle:
    [r] = yield sql(f"First: the most expensive {p['k']} product.", priciest_sql(p["k"], 1))
    product_id, name, price = r["rows"][0]
    [u] = yield sql(f"{name} is product {product_id}; now the units ordered.", units_sql(product_id))
    return Answer(f"The most expensive {p['k']} product is {name} at {price}; {u['rows'][0][0]} units of it have been ordered in total.")


def expect_priciest_units(db: sqlite3.Connection, p: dict) -> list[Fact]:
    product_id, name, _ = _rows(db, priciest_sql(p["k"], 1))[0]
    return [fact(name, [r[1] for r in _world(p["world_seed"])["products"]]), fact(_one(db, units_sql(product_id)))]


def draw_delete_cancelled(rng: random.Random, shop: Shop) -> Drawn | None:
    owners = [r[0] for r in shop.query(customers_sql("o.status = 'cancelled'")) if r[0] in shop.names]
    if not owners:
        return None
    c = rng.choice(owners)
    return {"c": c}, [c, *(r[0] for r in shop.query(cancelled_sql(c)))]


def solve_delete_cancelled(env: Any, p: dict) -> Oracle:
    [r] = yield sql("First: the ids of the customer's cancelled orders.", cancelled_sql(p["c"]))
    ids = ", ".join(str(row[0]) for row in r["rows"])
    orders = f"order {ids}" if len(r["rows"]) == 1 else f"orders {ids}"
    results = yield OracleStep(f"Cancelled: {orders}. I delete the order items and the {orders.split()[0]} with those ids.", [
        ("run_sql", {"query": f"DELETE FROM order_items WHERE order_id IN ({ids})"}),
        ("run_sql", {"query": f"DELETE FROM orders WHERE id IN ({ids})"}),
    ])
    items = results[0]["changed"]
    return Answer(f"Deleted {p['c']}'s cancelled {orders} and {items} order item{'s' if items != 1 else ''}.")


# --- the registry: the order is the draw order within each difficulty -----------------------------------

def _family(name: str, difficulties: tuple[str, ...], tools: tuple[str, ...], draw: Callable[..., Drawn | None], solve: Callable[..., Oracle],
            expected: Callable[..., list[Fact]] | None = None) -> TaskFamily:
    """A question states ``expected`` facts; a task without them changes data (and every one retries run_sql)."""
    return TaskFamily(name, difficulties, PHRASINGS[name], tools, draw, solve, expected, writes=expected is None, fail_first="run_sql")


SQL, SCHEMA_SQL = ("run_sql",), ("describe_table", "run_sql")
FAMILIES = (
    _family("count_status", ("single",), SQL, draw_count_status, solve_count_status, expect_count_status),
    _family("customer_city", ("single", "recovery"), SQL, draw_customer_city, solve_customer_city, expect_customer_city),
    _family("product_stock", ("single",), SQL, draw_product_stock, solve_product_stock, expect_product_stock),
    _family("table_sizes", ("single",), ("list_tables",), draw_table_sizes, solve_table_sizes, expect_table_sizes),
    _family("ship_order", ("single", "recovery"), SQL, draw_ship_order, solve_ship_order),
    _family("set_stock", ("single",), SQL, draw_set_stock, solve_set_stock),
    _family("add_customer", ("single",), SQL, draw_add_customer, solve_add_customer),
    _family("category_avg_price", ("multi_step",), SCHEMA_SQL, draw_category_avg_price, solve_category_avg_price, expect_category_avg_price),
    _family("city_order_count", ("multi_step",), SCHEMA_SQL, draw_city_order_count, solve_city_order_count, expect_city_order_count),
    _family("customer_spend", ("multi_step", "recovery"), SCHEMA_SQL, draw_customer_spend, solve_customer_spend, expect_customer_spend),
    _family("top_category_revenue", ("multi_step",), SCHEMA_SQL, draw_top_category_revenue, solve_top_category_revenue, expect_top_category_revenue),
    _family("raise_prices", ("multi_step",), SCHEMA_SQL, draw_raise_prices, solve_raise_prices),
    _family("cancel_pending", ("multi_step",), SCHEMA_SQL, draw_cancel_pending, solve_cancel_pending),
    _family("describe_many", ("parallel",), ("describe_table",), draw_describe_many, solve_describe_many, expect_describe_many),
    _family("aggregates_many", ("parallel", "recovery"), SQL, draw_aggregates_many, solve_aggregates_many, expect_aggregates_many),
    _family("stock_many", ("parallel",), SQL, draw_stock_many, solve_stock_many),
    _family("order_customer", ("nested",), SQL, draw_order_customer, solve_order_customer, expect_order_customer),
    _family("top_customer_latest", ("nested", "recovery"), SQL, draw_top_customer_latest, solve_top_customer_latest, expect_top_customer_latest),
    _family("priciest_units", ("nested",), SQL, draw_priciest_units, solve_priciest_units, expect_priciest_units),
    _family("delete_cancelled", ("nested", "recovery"), SQL, draw_delete_cancelled, solve_delete_cancelled),
)
