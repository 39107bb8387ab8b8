"""The database environment: SQL tools on a per-episode in-memory SQLite shop, its safety, and its verifier."""

from __future__ import annotations

import json
import os
import sqlite3
import time

import pytest

from environments.episode import Episode
from environments.database import DatabaseEnv
from environments.database.env import MAX_ROWS
from environments.database.world import PRODUCTS, TABLES, _world
from environments.record import Task
from hermes_train.rewards import atropos_reward

WORLD = 4242


def make_task(family: str, difficulty: str = "single", relevant_tools=("run_sql",), entities=(), **params) -> Task:
    return Task(
        env="database", split="train", difficulty=difficulty, seed=0, family=family, prompt=f"a hand-built {family} task",
        params={"world_seed": WORLD, "family": family, **params}, relevant_tools=list(relevant_tools), relevant_entities=[str(e) for e in entities],
    )


def env_for(task: Task) -> DatabaseEnv:
    env = DatabaseEnv()
    env.reset(task)
    return env


def finish(env: DatabaseEnv, answer: str | None) -> float:
    env.record.final_answer, env.record.finished = answer, answer is not None
    env._finish()
    return env.record.task_completion


def call_text(name: str, arguments: dict) -> str:
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


def rows_of(env: DatabaseEnv, query: str) -> list:
    result = env.run_sql(query)
    assert "error" not in result, result
    return result["rows"]


# --- the world and the tools ----------------------------------------------------------------------------

def test_world_is_seeded_small_and_fresh_per_episode():
    assert _world(WORLD) == _world(WORLD) and _world(WORLD) != _world(WORLD + 1)
    for table, rows in _world(WORLD).items():
        assert 10 <= len(rows) <= 100, table
    names = list(PRODUCTS)
    assert not any(a != b and f" {a.lower()} " in f" {b.lower()} " for a in names for b in names), "no product name inside another"

    env = env_for(make_task("count_status", s="pending"))
    assert env.run_sql("DELETE FROM orders") == {"changed": len(_world(WORLD)["orders"])}
    env.reset(make_task("count_status", s="pending"))  # a new episode starts from the untouched world
    assert rows_of(env, "SELECT COUNT(*) FROM orders") == [[len(_world(WORLD)["orders"])]]


def test_each_environment_has_its_own_database():
    task = make_task("count_status", s="pending")
    first, second = env_for(task), env_for(task)
    first.run_sql("DELETE FROM order_items")
    assert first.list_tables()["tables"]["order_items"] == 0
    assert second.list_tables()["tables"]["order_items"] == len(_world(WORLD)["order_items"])
    assert _world(WORLD)["order_items"]  # the cached world itself is immutable tuples, untouched


def test_list_and_describe_tables():
    env = env_for(make_task("table_sizes"))
    world = _world(WORLD)
    assert env.list_tables() == {"tables": {t: len(world[t]) for t in TABLES}}
    described = env.describe_table("orders")
    assert described["rows"] == len(world["orders"])
    assert list(described["columns"]) == ["id", "customer_id", "order_date", "status"]
    assert described["columns"]["customer_id"] == "INTEGER -> customers.id"
    assert described["values"]["status"] == sorted({r[3] for r in world["orders"]})
    assert env.describe_table(" Products ")["table"] == "products"  # lenient about case and spaces
    assert "values" not in env.describe_table("order_items")


def test_run_sql_results_are_capped_and_changes_are_counted():
    env = env_for(make_task("count_status", s="pending"))
    world = _world(WORLD)
    result = env.run_sql("SELECT id, status FROM orders ORDER BY id;")  # a trailing ';' is fine
    assert result["columns"] == ["id", "status"]
    assert result["rows"] == [[r[0], r[3]] for r in world["orders"][:MAX_ROWS]]
    assert result["more"].startswith(f"{len(world['orders']) - MAX_ROWS} more rows not shown")
    pending = sum(r[3] == "pending" for r in world["orders"])
    assert env.run_sql("UPDATE orders SET status = 'shipped' WHERE status = 'pending'") == {"changed": pending}
    assert rows_of(env, "SELECT COUNT(*) FROM orders WHERE status = 'pending'") == [[0]]
    assert rows_of(env, "SELECT round(1.0 / 3, 6)") == [[0.33]]  # values are shown rounded to cents
    assert env.run_sql("INSERT INTO customers (name, city, tier) VALUES ('New Person', 'Lyon', 'gold') RETURNING id")["rows"] == [[len(world["customers"]) + 1]]


def test_errors_say_how_to_fix_the_call():
    env = env_for(make_task("count_status", s="pending"))
    error = env.run_sql("SELECT totl FROM orders")["error"]
    assert "no such column: totl" in error and "columns of orders are: id, customer_id, order_date, status" in error
    error = env.run_sql("SELECT o.id, p.nme FROM orders o JOIN order_items i ON i.order_id = o.id JOIN products p ON p.id = i.product_id")["error"]
    assert "columns of products are: id, name, category, price, stock" in error and "columns of orders" in error
    assert "did you mean 'customers'" in env.run_sql("SELECT * FROM customer")["error"]
    assert "did you mean 'orders'" in env.describe_table("ordres")["error"]
    assert "the table is called 'orders'" in env.run_sql("SELECT * FROM order")["error"]
    assert "ambiguous column name: id" in env.run_sql("SELECT id FROM orders o JOIN order_items i ON i.order_id = o.id")["error"]
    assert "exactly one statement per call" in env.run_sql("SELECT 1; SELECT 2")["error"]
    assert "exactly one statement per call" in env.run_sql("UPDATE orders SET status = 'x'; DELETE FROM orders")["error"]
    assert "empty" in env.run_sql("  ;  ")["error"]
    assert "limit is 2000" in env.run_sql("SELECT " + "1 + " * 1000 + "1")["error"]
    assert "syntax error" in env.run_sql("SELECT FROM WHERE")["error"]
    assert "cannot start one" in env.run_sql("SELEC 1")["error"]
    assert all(c.status == "error" for c in env.record.calls)
    # The failed UPDATE of the multi-statement call changed nothing.
    assert rows_of(env, "SELECT COUNT(*) FROM orders WHERE status = 'x'") == [[0]]


# --- safety ---------------------------------------------------------------------------------------------

def test_attach_is_refused_and_no_file_appears(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "x.db"
    before = sorted(os.listdir("/tmp"))
    env = env_for(make_task("count_status", s="pending"))
    for query in [f"ATTACH DATABASE '{target}' AS x", "ATTACH DATABASE '/tmp/x.db' AS x", "attach 'x.db' as x", "/* c */ ATTACH 'x.db' AS x",
                  f"VACUUM INTO '{target}'", "DETACH x"]:
        assert "not allowed" in env.run_sql(query)["error"], query
    # Behind run_sql's statement filter, each layer holds on its own: the authorizer...
    for query in [f"ATTACH DATABASE '{target}' AS x", f"VACUUM INTO '{target}'"]:
        with pytest.raises(sqlite3.DatabaseError):
            env._execute(query)
        assert env._denied.startswith("ATTACH is not allowed")
    # ... and, without it, SQLite's limit of zero attached databases.
    env._conn.set_authorizer(None)
    for query in [f"ATTACH DATABASE '{target}' AS x", f"VACUUM INTO '{target}'"]:
        with pytest.raises(sqlite3.OperationalError, match="too many attached databases"):
            env._execute(query)
    assert not target.exists() and os.listdir(tmp_path) == [] and sorted(os.listdir("/tmp")) == before


def test_pragmas_schema_changes_transactions_and_risky_functions_are_refused():
    env = env_for(make_task("count_status", s="pending"))
    refused = {
        "PRAGMA writable_schema = 1": "PRAGMA is not allowed",
        "PRAGMA table_info(orders)": "PRAGMA is not allowed",
        "SELECT * FROM pragma_table_info('orders')": "table-valued functions",
        "DROP TABLE orders": "schema is fixed",
        "CREATE TEMP TABLE t (x)": "schema is fixed",
        "ALTER TABLE orders ADD COLUMN x": "schema is fixed",
        "CREATE TRIGGER t AFTER INSERT ON orders BEGIN DELETE FROM customers; END": "schema is fixed",
        "BEGIN": "transactions are not needed",
        "SELECT load_extension('/tmp/evil')": "load_extension() is not allowed",
        "SELECT randomblob(100000000)": "randomblob() is not allowed",
        "SELECT zeroblob(100000000)": "zeroblob() is not allowed",
        "SELECT random()": "random() is not allowed",
        "SELECT name FROM customers WHERE fts3_tokenizer('x') IS NULL": "not allowed",
        "'; DROP TABLE orders; --": "cannot start one",
    }
    for query, message in refused.items():
        error = env.run_sql(query).get("error", "")
        assert message in error or "no such function" in error, (query, error)
    # The authorizer refuses the same things when reached directly.
    for query in ["PRAGMA writable_schema = 1", "DROP TABLE orders", "CREATE TABLE t (x)", "SELECT randomblob(5)", "INSERT INTO sqlite_master VALUES (1, 2, 3, 4, 5)"]:
        with pytest.raises(sqlite3.DatabaseError):
            env._execute(query)
    if hasattr(env._conn, "enable_load_extension"):
        with pytest.raises(sqlite3.OperationalError):
            env._conn.load_extension("/nonexistent")
    assert env.list_tables()["tables"] == {t: len(rows) for t, rows in _world(WORLD).items()}  # nothing was changed


def test_runaway_queries_stop_quickly_and_the_next_query_still_runs():
    env = env_for(make_task("count_status", s="pending"))
    env.run_sql("SELECT 1")  # the first call of a process builds the tool schemas; time the rest
    for query in [
        "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT COUNT(*) FROM r",
        "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x FROM r) SELECT x FROM r ORDER BY x",
        "SELECT COUNT(*) FROM order_items a, order_items b, order_items c, order_items d",
        "UPDATE products SET stock = (WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT MAX(x) FROM r)",
        "SELECT a.id FROM order_items a, order_items b, order_items c ORDER BY printf('%.*c', 1990, a.id) || b.id",  # slow steps
        "WITH RECURSIVE r(n, x) AS (SELECT 1, printf('%.*c', 1990, 'x') UNION ALL SELECT n + 1, x FROM r) SELECT x FROM r ORDER BY x",
    ]:
        start = time.perf_counter()
        error = env.run_sql(query)["error"]
        assert time.perf_counter() - start < 0.15, query  # the budget plus the time to unwind
        assert "the statement was stopped" in error
    assert rows_of(env, "SELECT COUNT(*) FROM products WHERE stock > 1000") == [[0]]  # the stopped UPDATE changed nothing
    assert rows_of(env, "SELECT COUNT(*) FROM orders") == [[len(_world(WORLD)["orders"])]]
    # Values are capped in size, so a query cannot build huge strings.
    result = env.run_sql("SELECT printf('%.*c', 100000000, 'x')")
    assert "error" in result or result["rows"] == [[None]]
    assert "error" in env.run_sql("SELECT replace(hex(printf('%.*c', 1500, 'x')), '7', '777777')")


def test_hostile_strings_are_errors_not_crashes():
    env = env_for(make_task("count_status", s="pending"))
    for hostile in ["\x00\x01", "SELECT '\udcff'", "A" * 200_000, "SELECT 1 /*", "-- only a comment", "WITH", "SELECT " + "(" * 500 + "1" + ")" * 500]:
        observation = env.run_sql(hostile)
        assert set(observation) == {"error"}, (hostile[:30], observation)
    assert len(json.dumps(env.describe_table("x" * 100_000))) < 300
    assert all(c.status == "error" for c in env.record.calls)


# --- the verifier ---------------------------------------------------------------------------------------

def test_answers_get_partial_credit_and_wrong_or_enumerating_answers_get_none():
    task = make_task("aggregates_many", "parallel", aggregates=[["status_orders", "pending"], ["tier_customers", "gold"]])
    world = _world(WORLD)
    pending = sum(r[3] == "pending" for r in world["orders"])
    gold = sum(r[3] == "gold" for r in world["customers"])
    assert pending != gold
    assert finish(env_for(task), f"{pending} pending orders and {gold} gold customers.") == 1.0
    assert finish(env_for(task), f"{pending} pending orders; I could not count the gold customers.") == 0.5
    assert finish(env_for(task), "About 1000 of each.") == 0.0
    assert finish(env_for(task), None) == 0.0
    assert finish(env_for(task), " ".join(str(n) for n in range(40))) == 0.0  # enumerating numbers

    customer = world["customers"][0]
    task = make_task("customer_city", c=customer[1])
    assert finish(env_for(task), f"{customer[1]} lives in {customer[2]}.") == 1.0
    others = [c for c in ("Lyon", "Porto", "Leeds", "Graz") if c != customer[2]]
    assert finish(env_for(task), f"{customer[2]}, {others[0]} or {others[1]}") == 0.0  # naming rival cities


def test_read_only_tasks_penalise_changing_the_data():
    env = env_for(make_task("count_status", s="pending"))
    pending = sum(r[3] == "pending" for r in _world(WORLD)["orders"])
    env.run_sql("UPDATE customers SET tier = 'gold' WHERE id IN (1, 2)")
    assert finish(env, f"There are {pending} pending orders.") == 0.5  # two rows changed, a quarter each


def test_state_changes_are_verified_on_the_final_database():
    world = _world(WORLD)
    category = max({r[2] for r in world["products"]}, key=lambda k: sum(r[2] == k for r in world["products"]))
    in_category = [r for r in world["products"] if r[2] == category]
    task = make_task("raise_prices", "multi_step", k=category, p=10)

    env = env_for(task)
    env.run_sql(f"UPDATE products SET price = ROUND(price * 1.1, 2) WHERE category = '{category}'")
    assert finish(env, "done") == 1.0
    env = env_for(task)
    env.run_sql(f"UPDATE products SET price = price * 1.1 WHERE category = '{category}'")  # unrounded is within a cent
    assert finish(env, "done") == 1.0
    env = env_for(task)
    env.run_sql(f"UPDATE products SET price = ROUND(price * 1.1, 2) WHERE id = {in_category[0][0]}")
    assert finish(env, "done") == pytest.approx(1 / len(in_category))  # partial credit
    env = env_for(task)
    env.run_sql(f"UPDATE products SET price = ROUND(price * 1.1, 2) WHERE category = '{category}'")
    env.run_sql(f"UPDATE products SET stock = stock + 1 WHERE category != '{category}' AND id IN (SELECT id FROM products WHERE category != '{category}' LIMIT 2)")
    assert finish(env, "done") == 0.5  # two collateral rows
    env = env_for(task)
    env.run_sql("UPDATE products SET price = ROUND(price * 1.1, 2)")  # every category: far too much collateral
    assert finish(env, "done") == 0.0
    env = env_for(task)
    env.run_sql(f"UPDATE products SET price = ROUND(price * 1.2, 2) WHERE category = '{category}'")  # the wrong change
    assert finish(env, "done") == 0.0
    assert finish(env_for(task), "I raised the prices.") == 0.0  # claiming is not doing


def test_delete_with_items_and_insert_are_checked_row_by_row():
    world = _world(WORLD)
    owners = {}
    for order in world["orders"]:
        if order[3] == "cancelled":
            owners.setdefault(world["customers"][order[1] - 1][1], []).append(order[0])
    name, ids = max(owners.items(), key=lambda kv: len(kv[1]))
    items = [r[0] for r in world["order_items"] if r[1] in ids]
    task = make_task("delete_cancelled", "nested", c=name)
    id_list = ", ".join(map(str, ids))

    env = env_for(task)
    env.run_sql(f"DELETE FROM order_items WHERE order_id IN ({id_list})")
    env.run_sql(f"DELETE FROM orders WHERE id IN ({id_list})")
    assert finish(env, "done") == 1.0
    env = env_for(task)
    env.run_sql(f"DELETE FROM orders WHERE id IN ({id_list})")  # the items are left behind
    assert finish(env, "done") == pytest.approx(len(ids) / (len(ids) + len(items)))
    env = env_for(task)
    env.run_sql("DELETE FROM orders WHERE status = 'cancelled'")  # everyone's cancelled orders
    others = sum(len(v) for k, v in owners.items() if k != name)
    assert finish(env, "done") == pytest.approx(len(ids) / (len(ids) + len(items)) * max(0.0, 1 - 0.25 * others))

    task = make_task("add_customer", c="Brand Newman", city="Cork", t="gold")
    env = env_for(task)
    env.run_sql("INSERT INTO customers (name, city, tier) VALUES ('Brand Newman', 'Cork', 'gold')")
    assert finish(env, "added") == 1.0
    env = env_for(task)
    env.run_sql("INSERT INTO customers (name, city, tier) VALUES ('Brand Newman', 'Cork', 'silver')")
    assert finish(env, "added") == 0.0


# --- whole episodes -------------------------------------------------------------------------------------

def test_a_hand_played_nested_episode_with_a_recovered_error():
    world = _world(WORLD)
    order_id, customer_id = world["orders"][5][0], world["orders"][5][1]
    name = world["customers"][customer_id - 1][1]
    total = sum(r[1] == customer_id for r in world["orders"])
    task = make_task("order_customer", "nested", entities=[order_id, name, customer_id], n=order_id)
    env = DatabaseEnv()
    episode = Episode(env, task)
    turns = [
        "<think>\nWhose order is it?\n</think>\n" + call_text("run_sql", {"query": f"SELECT customer FROM orders WHERE id = {order_id}"}),
        "<think>\nThe column is customer_id.\n</think>\n" + call_text("run_sql", {"query": f"SELECT o.customer_id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.id = {order_id}"}),
        call_text("run_sql", {"query": f"SELECT COUNT(*) FROM orders WHERE customer_id = {customer_id}"}),
        f"Order {order_id} was placed by {name}, who has {total} orders in total.",
    ]
    observations = [episode.step(text) for text in turns]
    assert "columns of orders are: id, customer_id" in observations[0][0]["content"]["error"]
    assert observations[1][0]["content"]["rows"] == [[customer_id, name]]
    assert observations[2][0]["content"]["rows"] == [[total]]
    record = episode.record
    assert episode.done and record.finished and observations[3] == []
    assert [c.status for c in record.calls] == ["error", "ok", "ok"]
    assert record.task_completion == 1.0 and record.min_calls == 2
    reward = atropos_reward(record)
    assert reward.counts["recoveries"] == 1 and reward.dimensions["tool_accuracy"] == 1.0
    assert reward.dimensions["efficiency"] == pytest.approx(2 / 3)
    assert reward.dimensions["error_recovery"] == pytest.approx(0.3) and reward.dimensions["goal_alignment"] == 1.0
    assert reward.total == pytest.approx(0.35 + 0.25 + 0.15 * 2 / 3 + 0.15 * 0.3 + 0.1)  # default weights


def test_a_hand_played_state_episode_and_its_oracle():
    world = _world(WORLD)
    pending = next(r[0] for r in world["orders"] if r[3] == "pending")
    task = make_task("ship_order", entities=[pending, "shipped"], n=pending)
    episode = Episode(DatabaseEnv(), task)
    episode.step(call_text("run_sql", {"query": f"UPDATE orders SET status = 'shipped' WHERE id = {pending}"}))
    episode.step(f"Order {pending} is now shipped.")
    reward = atropos_reward(episode.record)
    assert episode.record.task_completion == 1.0 and reward.total >= 0.95
    oracle = DatabaseEnv.oracle(task)
    assert [c.arguments for c in oracle.record.calls] == [c.arguments for c in episode.record.calls]


def test_oracle_uses_parallel_and_nested_calls_and_recovers():
    for seed in range(6):
        task = DatabaseEnv.generate_task("train", "parallel", seed)
        first = DatabaseEnv.oracle(task).record.turns[0]
        assert len(first.calls) >= 2, task.family
    for seed in range(6):
        task = DatabaseEnv.generate_task("train", "nested", seed)
        calls = DatabaseEnv.oracle(task).record.calls
        first = json.dumps(calls[0].observation)
        # Something the first call returned is literally in a later call's query.
        later = " ".join(c.arguments["query"] for c in calls[1:])
        values = [str(v) for row in calls[0].observation["rows"] for v in row if isinstance(v, int)]
        assert values and any(v in later for v in values), (task.family, first, later)
    for seed in range(6):
        task = DatabaseEnv.generate_task("test", "recovery", seed)
        assert task.params["fail_first"] == ["run_sql"]
        result = DatabaseEnv.oracle(task)
        assert result.record.task_completion == 1.0
        assert [c.status for c in result.record.calls].count("transient") == 1


def test_every_family_is_drawn_and_solved():
    seen = set()
    for difficulty, families in DatabaseEnv.families.items():
        wanted = {f.split(" ")[0] for f in families}
        for seed in range(120):
            task = DatabaseEnv.generate_task("train", difficulty, seed)
            if task.family in wanted - seen or seed < 3:
                assert DatabaseEnv.oracle(task).record.task_completion == 1.0, task.id
            seen.add(task.family)
            if wanted <= seen:
                break
        assert wanted <= seen, (difficulty, wanted - seen)


def test_speed_of_setup_and_tool_calls():
    task = DatabaseEnv.generate_task("train", "single", 1)
    env = DatabaseEnv()
    env.reset(task)
    start = time.perf_counter()
    for _ in range(50):
        env.reset(task)
    assert (time.perf_counter() - start) / 50 < 0.005
    queries = ["SELECT COUNT(*) FROM orders WHERE status = 'pending'", "SELECT name, city FROM customers WHERE tier = 'gold'"]
    start = time.perf_counter()
    for i in range(400):
        env.run_sql(queries[i % 2])
    assert 400 / (time.perf_counter() - start) > 500  # typically several thousand per second


def test_drawing_is_stable():
    """Tasks (and so the train/test split of phrasings) stay what they were drawn as: the RNG calls of drawing
    a task are part of the data's definition, whatever the code around them looks like."""
    drawn = {
        ("train", "single", 0): ("table_sizes", "Give me an overview of the tables in the shop database and how big each one is."),
        ("train", "multi_step", 1): ("customer_spend", "What is the total value of Elif Demir's orders, cancelled ones excluded?"),
        ("train", "parallel", 2): ("stock_many", "Please change the stock levels: Frying Pan to 92 and Chef Knife to 48."),
        ("train", "nested", 3): ("order_customer", "Find the customer behind order 23 and tell me their total number of orders."),
        ("test", "recovery", 4): ("delete_cancelled", "Delete the cancelled orders of Sami Haddad, together with their order items."),
    }
    for (split, difficulty, seed), (family, prompt) in drawn.items():
        task = DatabaseEnv.generate_task(split, difficulty, seed)
        assert (task.family, task.prompt) == (family, prompt)
    assert DatabaseEnv.generate_task("train", "parallel", 2).params == {
        "world_seed": 2085789990, "family": "stock_many", "a": "Frying Pan to 92 and Chef Knife to 48", "stock": [["Frying Pan", 92], ["Chef Knife", 48]],
    }


def test_data_changes_are_verified_against_the_experts_statements_replayed():
    task = DatabaseEnv.generate_task("train", "parallel", 2)  # two stock updates in one turn
    oracle = DatabaseEnv.oracle(task)
    assert oracle.record.task_completion == 1.0
    updates = [c for c in oracle.record.calls if c.name == "run_sql"]
    assert len(updates) == 2
    env = env_for(task)
    env.run_sql(**updates[0].arguments)  # one of the two writes is missing
    assert finish(env, oracle.record.final_answer) == 0.5
    # The expected database is the one the expert's statements leave, not a second hand-written change.
    expert = DatabaseEnv._expert_state(task)
    (name, level), _ = task.params["stock"]
    assert next(row for row in expert["products"].values() if row[1] == name)[4] == level
    task = DatabaseEnv.generate_task("test", "recovery", 4)  # delete_cancelled, with a 503 scheduled on run_sql
    orders = {row[0]: row for row in _world(task.params["world_seed"])["orders"]}
    gone = set(orders) - set(DatabaseEnv._expert_state(task)["orders"])
    assert gone and all(orders[n][3] == "cancelled" for n in gone)  # the scheduled failure did not stop the replay
