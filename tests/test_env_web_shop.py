"""The web shop environment: tool semantics, informative errors, verifiers, planted purchase tasks, episodes."""

from __future__ import annotations

import copy
import json
import time

import pytest

from environments.base import held_out
from environments.episode import Episode
from environments.record import DIFFICULTIES, Task
from environments.web_shop import WebShopEnv
from environments.web_shop.world import COLORS, _build_world, _fits
from hermes_train.rewards import atropos_reward


def shoe(pid, title, color, material, price, sizes, rating=4.0, weight=800, warranty=2):
    return {"id": pid, "title": title, "category": "shoes", "brand": title.split()[0], "color": color, "material": material, "price": price,
            "rating": rating, "weight_g": weight, "warranty_y": warranty, "sizes": sizes}


# A hand-built purchase: black leather shoes in size 42 under $80. Only P2 fits; the rest are near-misses.
PLANT = [
    shoe("P1", "Norda Trail Runner", "black", "leather", 69.99, {"41": 2, "43": 1}),  # not made in 42
    shoe("P2", "Vanta Metro Boot", "black", "leather", 74.49, {"41": 1, "42": 3}, rating=4.6),  # the one
    shoe("P3", "Lumo Coast Loafer", "black", "suede", 59.99, {"42": 4}),  # wrong material
    shoe("P4", "Brio Nova Sneaker", "black", "leather", 89.99, {"42": 5}),  # over budget
    shoe("P5", "Pike Aero Trainer", "black", "leather", 64.99, {"42": 0, "44": 2}),  # 42 sold out
]
NEED = {"category": "shoes", "color": "black", "budget": 80, "material": "leather", "size": "42"}
BUY_TASK = Task(
    env="web_shop", split="test", difficulty="multi_step", seed=0, family="buy_spec",
    prompt="Buy a pair of black leather shoes in size 42 for under $80.",
    params={"world_seed": 1234, "family": "buy_spec", "need": NEED, "plant": PLANT, "reserve": {"category": "shoes", "color": "black"},
            "target": "P2", "item": "a pair of black leather shoes in size 42"},
    relevant_tools=["search_products", "view_product", "add_to_cart", "checkout"],
    relevant_entities=["shoes", "black", "leather", "42"],
)


def shop(task: Task = BUY_TASK, **options) -> WebShopEnv:
    env = WebShopEnv(**options)
    env.reset(task)
    return env


def error_of(observation) -> str:
    assert isinstance(observation, dict) and "error" in observation, observation
    return observation["error"]


def call_text(name, arguments) -> str:
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


def play(task: Task, turns: list[str]):
    record = Episode(WebShopEnv(), task).play(turns)
    return record, atropos_reward(record)


# --- the world and the tools ----------------------------------------------------------------------------


def test_the_hand_built_world_has_exactly_one_fitting_product():
    env = shop()
    assert 40 <= len(env.products) <= 120
    assert [pid for pid, p in env.products.items() if _fits(p, NEED)] == ["P2"]
    # No other black shoes: the reserved colour keeps the task to one answer.
    assert sorted(pid for pid, p in env.products.items() if p["category"] == "shoes" and p["color"] == "black") == ["P1", "P2", "P3", "P4", "P5"]


def test_search_filters_sorts_and_keywords():
    env = shop()
    found = env.search_products(category="shoe", color="black", max_price=80)  # singular category works too
    assert [r["id"] for r in found["results"]] == ["P3", "P5", "P1", "P2"] and found["count"] == 4
    assert set(found["results"][0]) == {"id", "title", "price", "color", "rating"}  # compact rows: no material, no sizes
    found = env.search_products(query="black leather boots")  # keywords match colour, material and title, plurals too
    assert [r["id"] for r in found["results"]] == ["P2"]
    assert env.search_products(query="leather", category="shoes", color="black", sort="rating_desc")["results"][0]["id"] == "P2"
    assert env.search_products(category="shoes", color="black", sort="price_desc")["results"][0]["id"] == "P4"
    none = env.search_products(query="unicorn")
    assert none["count"] == 0 and "fewer keywords" in none["hint"]
    everything = env.search_products()
    assert everything["count"] == len(env.products) and len(everything["results"]) == 10 and "more not shown" in everything["more"]


def test_product_page_shows_what_search_does_not():
    env = shop()
    page = env.view_product(product_id="p2")  # ids are case-insensitive
    assert page["id"] == "P2" and page["material"] == "leather" and page["stock_by_size"] == {"41": 1, "42": 3}
    unsized = next(p for p in env.products.values() if p["category"] == "mugs")
    assert "capacity_ml" in env.view_product(unsized["id"]) and "stock" in env.view_product(unsized["id"])


def test_informative_errors():
    env = shop()
    assert "come from search_products" in error_of(env.view_product("P999"))
    assert "categories: shoes, jackets" in error_of(env.search_products(category="socks"))
    assert "colors: black" in error_of(env.search_products(color="mauve"))
    assert "price_asc" in error_of(env.search_products(sort="cheapest"))
    assert "negative" in error_of(env.search_products(max_price=-1))
    assert "pass size, one of: 41, 42" in error_of(env.add_to_cart("P2"))
    assert "not made in size '43'; available sizes: 41, 42" in error_of(env.add_to_cart("P2", size="43"))
    assert "out of stock in size 42" in error_of(env.add_to_cart("P5", size="42"))
    assert "between 1 and 10" in error_of(env.add_to_cart("P2", quantity=0, size="42"))
    assert "only 3 of P2 in size 42 in stock" in error_of(env.add_to_cart("P2", quantity=4, size="42"))
    mug = next(pid for pid, p in env.products.items() if p["category"] == "mugs" and p["stock"] > 0)
    assert "has no sizes; leave size out" in error_of(env.add_to_cart(mug, size="M"))
    assert "cart is empty" in error_of(env.checkout())
    assert "not in the cart" in error_of(env.remove_from_cart("P2"))
    assert all(c.status == "error" for c in env.record.calls)


def test_cart_and_checkout():
    env = shop()
    assert env.add_to_cart("P2", size="42")["cart_total"] == 74.49
    assert env.add_to_cart("P2", quantity=2, size="42")["cart_items"] == 3
    assert "only 3 of P2" in error_of(env.add_to_cart("P2", size="42"))  # the cart counts against the stock
    env.add_to_cart("P1", size="41")
    assert env.remove_from_cart("P1")["items"] == [{"id": "P2", "title": "Vanta Metro Boot", "size": "42", "qty": 3, "price": 74.49}]
    env.remove_from_cart("P2", size="42")
    assert env.view_cart() == {"items": [], "total": 0}
    env.add_to_cart("p2", size=" 42 ")  # ids and sizes are forgiving about case and spaces
    order = env.checkout()
    assert order["order_id"] == "O1" and order["total"] == 74.49 and order["status"] == "placed"
    assert env.view_cart()["items"] == [] and env.products["P2"]["sizes"]["42"] == 2
    env.add_to_cart("P1", size="41")
    assert env.checkout()["order_id"] == "O2" and len(env.orders) == 2


# --- verification ---------------------------------------------------------------------------------------


def buy(lines: list[tuple], task: Task = BUY_TASK) -> float:
    env = shop(task)
    for pid, size, qty in lines:
        added = env.add_to_cart(pid, quantity=qty, **({"size": size} if size else {}))  # null fails the schema
        assert "added" in added, added
    if lines:
        env.checkout()
    return env._verify("done")


def test_purchase_scored_by_attribute_match_budget_and_extras():
    assert buy([("P2", "42", 1)]) == 1.0
    assert buy([]) == 0.0  # nothing ordered
    assert buy([("P1", "41", 1)]) == pytest.approx(3 / 4)  # right shoe family, wrong size
    assert buy([("P3", "42", 1)]) == pytest.approx(3 / 4)  # wrong material
    assert buy([("P4", "42", 1)]) == 0.0  # over budget
    assert buy([("P2", "42", 2)]) == 0.0  # two pairs: over budget
    env = shop()
    env.add_to_cart("P2", size="42")
    assert env._verify("I put it in the cart") == 0.0  # not checked out: nothing ordered


def test_purchase_penalises_collateral_items():
    mug = next(pid for pid, p in shop().products.items() if p["category"] == "mugs" and p["stock"] > 0)
    generous = copy.deepcopy(BUY_TASK)
    generous.params["need"]["budget"] = 500
    assert buy([("P2", "42", 1)], generous) == 1.0
    assert buy([("P2", "42", 1), (mug, None, 1)], generous) == 0.5  # an extra unrelated item in the order
    assert buy([("P2", "42", 2)], generous) == 0.5  # one pair was asked for
    assert buy([("P2", "42", 1), ("P1", "41", 1), (mug, None, 1)], generous) == 0.0


def test_buy_cheapest_verifies_the_ordered_product():
    task = next(t for t in WebShopEnv.tasks("train", "nested", 40) if t.params["family"] == "buy_cheapest")
    env = shop(task)
    target = task.params["target"]
    other = next(pid for pid, p in env.products.items() if p["category"] == task.params["category"] and pid != target and p["stock"] > 0 and p["color"] != task.params["color"])
    assert buy([(target, None, 1)], task) == 1.0
    assert buy([(other, None, 1)], task) == pytest.approx(1 / 3)  # right category only
    assert buy([(target, None, 1), (other, None, 1)], task) == pytest.approx(0.5)


def task_of(family: str, difficulty: str) -> Task:
    return next(t for t in WebShopEnv.tasks("train", difficulty, 60) if t.params["family"] == family)


def test_question_answers_need_the_product_and_the_fact():
    task = task_of("cheapest", "single")
    env = shop(task)
    target = env.products[task.params["target"]]
    other = next(pid for pid in env.products if pid != target["id"])
    assert env._verify(f"It is {target['id']} at ${target['price']}.") == 1.0
    assert env._verify(f"The {target['title']} costs ${target['price']}.") == 1.0  # the title names it too
    assert env._verify(f"It is {target['id']}.") == 0.5  # price missing
    assert env._verify(f"It is {other} or maybe {target['id']} at ${target['price']}.") == 0.5  # named another one first
    assert env._verify("I could not find it.") == 0.0
    assert env._verify(None) == 0.0
    assert env._verify(" ".join(f"{x}.99" for x in range(40)) + f" {target['id']} {target['price']}") == 0.0  # enumeration


def test_count_and_comparison_answers():
    task = task_of("count", "single")
    env = shop(task)
    n = task.params["count"]
    assert env._verify(f"There are {n} of them under ${task.params['budget']}.") == 1.0
    assert env._verify(f"There are {n + 1}.") == 0.0
    assert env._verify(" ".join(str(i) for i in range(12))) == 0.0  # guessing every count
    task = task_of("compare_ids", "parallel")
    env = shop(task)
    target, key = env.products[task.params["target"]], task.params["key"]
    loser = next(i for i in task.params["ids"] if i != target["id"])
    assert env._verify(f"{target['id']} wins with {target[key]}, ahead of {loser}.") == 1.0
    assert env._verify(f"{loser} loses to {target['id']} ({target[key]}).") == 0.5  # the winner must come first
    assert env._verify(f"{loser}.") == 0.0


def test_cheapest_each_partial_credit_and_no_enumeration():
    task = task_of("cheapest_each", "parallel")
    env = shop(task)
    targets = [env.products[t] for t in task.params["targets"]]
    full = "; ".join(f"{t['id']} at ${t['price']}" for t in targets)
    assert env._verify(full) == 1.0
    assert env._verify(f"{targets[0]['id']} at ${targets[0]['price']}") == pytest.approx(1 / len(targets))
    assert env._verify(full + " " + " ".join(env.products)) == 0.0


def test_buying_on_a_question_task_is_collateral_damage():
    task = task_of("cheapest", "single")
    env = shop(task)
    target = env.products[task.params["target"]]
    answer = f"{target['id']} at ${target['price']}"
    assert env._verify(answer) == 1.0
    in_stock = next(p for p in env.products.values() if p.get("stock", 0) > 0)
    env.add_to_cart(in_stock["id"])
    assert env._verify(answer) == 1.0  # a cart changes nothing yet
    env.checkout()
    assert env._verify(answer) == 0.0


# --- tasks ----------------------------------------------------------------------------------------------


def test_every_difficulty_has_its_kind_of_task():
    calls_per_step = {}
    for difficulty in DIFFICULTIES:
        for task in WebShopEnv.tasks("train", difficulty, 12):
            result = WebShopEnv.oracle(task)
            steps = [m for m in result.messages if m["role"] == "assistant" and m.get("tool_calls")]
            calls_per_step.setdefault(difficulty, []).append([len(m["tool_calls"]) for m in steps])
    assert all(steps == [1] for steps in calls_per_step["single"])
    assert all(len(steps) >= 2 for steps in calls_per_step["multi_step"])
    assert all(max(steps) >= 2 for steps in calls_per_step["parallel"])
    assert all(len(steps) >= 2 for steps in calls_per_step["nested"])


def test_purchase_tasks_are_satisfiable_with_near_misses_to_check():
    for seed in range(40):
        task = WebShopEnv.generate_task("train", "multi_step", seed)
        if task.params["family"] != "buy_spec":
            continue
        world = _build_world(task.params)
        need = task.params["need"]
        assert [p["id"] for p in world if _fits(p, need)] == [task.params["target"]]
        # The search cannot tell the target from at least one near-miss: the agent must open the pages.
        record = WebShopEnv.oracle(task).record
        search = record.calls[0].observation
        assert search["count"] >= 2 and task.params["target"] in [r["id"] for r in search["results"]]
        assert [c.name for c in record.calls][-2:] == ["add_to_cart", "checkout"]


def test_novel_tasks_use_held_out_colors_and_recovery_fails_first():
    novel = [t for d in DIFFICULTIES for t in WebShopEnv.tasks("test", d, 40) if t.novel]
    assert novel
    reserved = set(held_out(COLORS))
    for task in novel:
        color = task.params.get("color") or task.params.get("need", {}).get("color")
        if color:
            assert color in reserved, task.id
    for task in WebShopEnv.tasks("train", "single", 40):
        assert task.params.get("color") not in reserved
    for task in WebShopEnv.tasks("test", "recovery", 10):
        first = task.params["fail_first"][0]
        assert first in task.relevant_tools


# --- safety ---------------------------------------------------------------------------------------------


def test_episodes_never_share_or_mutate_state():
    before = copy.deepcopy(BUY_TASK.to_dict())
    env = shop()
    env.add_to_cart("P2", size="42")
    env.checkout()
    env.products["P3"]["price"] = 1.0
    assert BUY_TASK.to_dict() == before  # the planted products of the task are copies
    fresh = shop()
    assert fresh.products["P2"]["sizes"]["42"] == 3 and fresh.products["P3"]["price"] == 59.99
    assert fresh.orders == [] and fresh.view_cart()["items"] == []


def test_hostile_arguments_are_refused_politely():
    env = shop(max_observation_chars=400)
    for hostile in ["P2'; DROP TABLE products; --", "../../etc/passwd", "A" * 100_000, "\x00\udcff", "__import__('os')"]:
        for observation in (env.view_product(hostile), env.add_to_cart(hostile), env.remove_from_cart(hostile), env.search_products(category=hostile), env.search_products(query=hostile)):
            shown = observation if isinstance(observation, str) else json.dumps(observation, ensure_ascii=False)
            assert len(shown) <= 440  # capped, with its marker
    assert env.add_to_cart("P2", quantity=10**30, size="42")["error"].startswith("quantity")
    assert all(c.status in ("ok", "error") for c in env.record.calls)
    assert env.orders == [] and env.cart == []


def test_tools_are_fast():
    env = shop()
    calls = [("search_products", {"category": "shoes", "color": "black", "max_price": 80}), ("search_products", {"query": "leather"}),
             ("view_product", {"product_id": "P2"}), ("view_cart", {}), ("add_to_cart", {"product_id": "P999"})]
    env.search_products()  # builds the tool schemas once
    start = time.perf_counter()
    for i in range(1000):
        name, arguments = calls[i % len(calls)]
        getattr(env, name)(**arguments)
    assert time.perf_counter() - start < 1.0  # well above 1,000 calls/s even on a slow machine
    start = time.perf_counter()
    for seed in range(50):
        env.reset(WebShopEnv.generate_task("train", "multi_step", seed))
    assert time.perf_counter() - start < 2.0


# --- whole episodes from raw assistant text -------------------------------------------------------------


def test_hand_worked_purchase_episode():
    turns = [
        "<think>\nFilter by everything search can.\n</think>\n" + call_text("search_products", {"query": "leather", "category": "shoes", "color": "black", "max_price": 80}),
        "<think>\nSizes are on the pages.\n</think>\n" + "\n".join(call_text("view_product", {"product_id": p}) for p in ("P5", "P1", "P2")),
        call_text("add_to_cart", {"product_id": "P2", "size": "42"}),
        call_text("checkout", {}),
        "I ordered P2 (Vanta Metro Boot), black leather shoes in size 42, for $74.49.",
    ]
    record, reward = play(BUY_TASK, turns)
    assert [c.name for c in record.calls] == ["search_products", "view_product", "view_product", "view_product", "add_to_cart", "checkout"]
    assert all(c.status == "ok" for c in record.calls)
    assert [r["id"] for r in record.calls[0].observation["results"]] == ["P5", "P1", "P2"]
    assert record.calls[5].observation["items"][0]["id"] == "P2"
    assert record.finished and record.task_completion == 1.0
    assert record.min_calls == 6  # the oracle: one search, three pages, add, checkout
    assert reward.total == pytest.approx(1.0)


def test_hand_worked_episode_with_a_mistake_and_a_recovery():
    turns = [
        call_text("search_products", {"category": "shoes", "color": "black", "max_price": 80}),
        call_text("add_to_cart", {"product_id": "P1", "size": "42"}),  # guessed: P1 is not made in 42
        call_text("view_product", {"product_id": "P2"}),
        call_text("add_to_cart", {"product_id": "P2", "size": 42}),  # wrong type: invalid
        call_text("add_to_cart", {"product_id": "P2", "size": "42"}),
        call_text("checkout", {}),
        "Done: P2, black leather shoes, size 42.",
    ]
    record, reward = play(BUY_TASK, turns)
    assert [c.status for c in record.calls] == ["ok", "error", "ok", "invalid", "ok", "ok"]
    assert "available sizes: 41, 43" in record.calls[1].error
    assert record.task_completion == 1.0
    assert reward.dimensions["tool_accuracy"] == pytest.approx(0.8)
    assert reward.dimensions["error_recovery"] == pytest.approx(0.6)
    assert reward.dimensions["efficiency"] == pytest.approx(1.0)  # 6 calls, as many as the oracle's 6
    assert 0.8 < reward.total < 1.0


def test_a_wrong_purchase_episode_scores_low():
    turns = [call_text("add_to_cart", {"product_id": "P4", "size": "42"}), call_text("checkout", {}), "Bought P4."]
    record, reward = play(BUY_TASK, turns)
    assert record.task_completion == 0.0  # over budget
    assert reward.total < 0.6
