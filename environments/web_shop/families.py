"""The shop's task families: for each, how a task is drawn from a catalogue, how the expert solves it, and how
its answer is checked (a family's ``expected`` here is that check: ``(env, params, answer) -> score``).

Purchases are scored on the request, not by comparing with the expert's order: the bought item earns the
share of the request's attributes it has (see ``WebShopEnv._purchase_score``), so a near-miss earns part.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from environments.answers import mentions, normalise
from environments.base import Answer, OracleStep, entity_pool
from environments.families import Drawn, Oracle, TaskFamily, Wording
from environments.web_shop.phrasings import NAME_IT, PHRASINGS
from environments.web_shop.world import (
    BRANDS, CATEGORIES, CATEGORY_NAMES, COLORS, _STOCK, Catalogue, _build_world, _fits, _price, _random_product, _spec_checks, _unique_extreme,
)

# Attributes a question may ask about: key -> (superlative wording, highest is best, how to say the value).
COMPARE = {
    "rating": ("has the highest rating", True, "a rating of {v}"),
    "price": ("is the cheapest", False, "a price of ${v}"),
    "weight_g": ("is the lightest", False, "{v} g"),
    "warranty_y": ("has the longest warranty", True, "a {v}-year warranty"),
    "capacity_l": ("has the largest capacity", True, "{v} litres"),
    "capacity_ml": ("holds the most", True, "{v} ml"),
    "battery_h": ("has the longest battery life", True, "{v} hours of battery"),
}
DETAIL = {  # key -> how to say the value
    "material": "it is made of {v}",
    "weight_g": "it weighs {v} g",
    "warranty_y": "it has a {v}-year warranty",
    "capacity_l": "it holds {v} litres",
    "capacity_ml": "it holds {v} ml",
    "battery_h": "it has {v} hours of battery",
}
RANKS = {"cheapest": ("price", False, "price_asc"), "best-rated": ("rating", True, "rating_desc")}


def _one(category: str, adjective: str = "") -> str:
    """'pair of red shoes', 'red mug': one product of a category, as a user asks for it."""
    words = f"{adjective} {category}".strip() if category in ("shoes", "headphones") else f"{adjective} {CATEGORIES[category]['singular']}".strip()
    return f"pair of {words}" if category in ("shoes", "headphones") else words


def _listing(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _of(shop: Catalogue, category: str, color: str) -> list[dict[str, Any]]:
    return [p for p in shop.products if p["category"] == category and p["color"] == color]


def _search(think: str, **arguments: Any) -> OracleStep:
    return OracleStep(think, [("search_products", arguments)])


def _pages(think: str, ids: list[str]) -> OracleStep:
    return OracleStep(think, [("view_product", {"product_id": i}) for i in ids])


def _compare_answer(pages: list[dict[str, Any]], key: str, lead: str) -> Answer:
    wording, highest, say = COMPARE[key]
    best = _unique_extreme(pages, key, highest)
    others = ", ".join(f"{pg['id']}: {say.format(v=pg[key])}" for pg in pages if pg is not best)
    return Answer(f"{lead}{best['id']} ({best['title']}) {wording}, with {say.format(v=best[key])} (others - {others}).")


def _product_and_fact(env: Any, p: dict, answer: str | None, fact: str) -> float:
    target = env.products[p["target"]]
    return env._facts_score(answer, [target["id"]], [target[fact]])


# --- single: one search ------------------------------------------------------------------------------------

def draw_cheapest(rng: random.Random, shop: Catalogue) -> Drawn | None:
    category, color = rng.choice(CATEGORY_NAMES), rng.choice(entity_pool(COLORS, shop.novel))
    most = rng.random() < 0.3
    target = _unique_extreme(_of(shop, category, color), "price", most)
    if target is None:
        return None
    values = {"category": category, "color": color, "sort": "price_desc" if most else "price_asc", "target": target["id"]}
    return values, [category, color], Wording({"rank": "most expensive" if most else "cheapest", "item": _one(category, color)})


def solve_cheapest(env: Any, p: dict) -> Oracle:
    [found] = yield _search("One sorted search with the category and color filters answers this.", category=p["category"], color=p["color"], sort=p["sort"])
    top = found["results"][0]
    sup = "most expensive" if p["sort"] == "price_desc" else "cheapest"
    return Answer(f"The {sup} {_one(p['category'], p['color'])} is {top['id']} ({top['title']}) at ${top['price']}.")


def check_cheapest(env: Any, p: dict, answer: str | None) -> float:
    return _product_and_fact(env, p, answer, "price")


def draw_count(rng: random.Random, shop: Catalogue) -> Drawn | None:
    category, color = rng.choice(CATEGORY_NAMES), rng.choice(entity_pool(COLORS, shop.novel))
    prices = sorted(p["price"] for p in _of(shop, category, color))
    if not prices:
        return None
    budget = int(rng.choice(prices)) + 1
    return {"category": category, "color": color, "budget": budget, "count": sum(x <= budget for x in prices)}, [category, color]


def solve_count(env: Any, p: dict) -> Oracle:
    [found] = yield _search("A filtered search gives the count.", category=p["category"], color=p["color"], max_price=p["budget"])
    n = found["count"]
    return Answer(f"There {'is' if n == 1 else 'are'} {n} {_one(p['category'], p['color']) if n == 1 else p['color'] + ' ' + p['category']} under ${p['budget']}.")


def check_count(env: Any, p: dict, answer: str | None) -> float:
    """The count, and at most three distinct numbers: guessing several counts is not an answer."""
    distinct = {w for w in normalise(answer).split() if w[0].isdigit()} if answer else set()
    return float(mentions(answer, p["count"]) and len(distinct) <= 3)


def draw_top_rated(rng: random.Random, shop: Catalogue) -> Drawn | None:
    category, brand = rng.choice(CATEGORY_NAMES), rng.choice(entity_pool(BRANDS, shop.novel))
    target = _unique_extreme([p for p in shop.products if p["category"] == category and p["brand"] == brand], "rating", True)
    if target is None:
        return None
    return {"category": category, "brand": brand, "target": target["id"]}, [category, brand], Wording({"item": _one(category, brand)})


def solve_top_rated(env: Any, p: dict) -> Oracle:
    [found] = yield _search("I will search the brand in that category, best rated first.", query=p["brand"], category=p["category"], sort="rating_desc")
    top = found["results"][0]
    return Answer(f"The best-rated {p['brand']} {p['category']} are {top['id']} ({top['title']}), rated {top['rating']}.")


def check_top_rated(env: Any, p: dict, answer: str | None) -> float:
    return _product_and_fact(env, p, answer, "rating")


# --- multi_step: search, then look closer ------------------------------------------------------------------

def draw_buy_spec(rng: random.Random, shop: Catalogue) -> Drawn | None:
    """The product that fits the request is planted with near-misses the search cannot tell apart."""
    category, color = rng.choice(CATEGORY_NAMES), rng.choice(entity_pool(COLORS, shop.novel))
    cfg = CATEGORIES[category]
    lo, hi = cfg["price"]
    budget = rng.randint(int(lo + (hi - lo) * 0.3), int(lo + (hi - lo) * 0.8))
    need: dict[str, Any] = {"category": category, "color": color, "budget": budget}
    if category == "headphones":
        need.update(wireless=True, battery_h=rng.choice([20, 25, 30, 35, 40]))
    else:
        need["material"] = rng.choice(cfg["materials"])
    if "sizes" in cfg:
        need["size"] = rng.choice(cfg["sizes"][1:-1])
    elif category == "backpacks":
        need["capacity_l"] = rng.choice([20, 25, 30, 35])
    elif category == "mugs":
        need["capacity_ml"] = rng.choice([300, 350, 400, 450])
    taken = {p["title"] for p in shop.products}
    slots = rng.sample([p["id"] for p in shop.products], 4)

    def planted(pid: str) -> dict[str, Any]:
        p = _random_product(rng, pid, category, taken)
        p.update(color=color, price=_price(rng, budget * 0.5, budget - 1))
        if "material" in need:
            p["material"] = need["material"]
        if "wireless" in need:
            p.update(wireless=True, battery_h=need["battery_h"] + rng.randint(0, 20))
        if "size" in need:
            made = {need["size"], *rng.sample(cfg["sizes"], rng.randint(2, len(cfg["sizes"]) - 1))}
            p["sizes"] = {s: rng.randint(1, 6) if s == need["size"] else rng.choice(_STOCK) for s in cfg["sizes"] if s in made}
        for key in ("capacity_l", "capacity_ml"):
            if key in need:
                p[key] = need[key] + rng.choice([0, 5, 10] if key == "capacity_l" else [0, 50, 100])
        if "stock" in p:
            p["stock"] = rng.randint(2, 12)
        return p

    target = planted(slots[0])
    plant = [target]
    # Near-misses: one the search cannot tell apart (wrong size / too small / out of stock), one or two more.
    kinds = [rng.choice(["measure", "stock"]), *rng.sample(["feature", "price", "measure", "stock"], rng.randint(1, 2))]
    for pid, kind in zip(slots[1:], kinds):
        miss = planted(pid)
        if kind == "measure":
            if "size" in need:
                miss["sizes"].pop(need["size"])
            elif "battery_h" in need:
                miss["battery_h"] = need["battery_h"] - rng.randint(2, 10)
            else:
                key = "capacity_l" if "capacity_l" in need else "capacity_ml"
                miss[key] = need[key] - (rng.randint(2, 8) if key == "capacity_l" else rng.choice([25, 50, 75]))
        elif kind == "stock":
            if "size" in need:
                miss["sizes"][need["size"]] = 0
            else:
                miss["stock"] = 0
        elif kind == "feature":
            if "wireless" in need:
                miss.update(wireless=False, battery_h=0)
            else:
                miss["material"] = rng.choice([m for m in cfg["materials"] if m != need["material"]])
        else:
            miss["price"] = _price(rng, budget + 2, budget * 1.4 + 3)
        plant.append(miss)
    values: dict[str, Any] = {"need": need, "plant": plant, "reserve": {"category": category, "color": color}, "target": target["id"]}
    if [p["id"] for p in _build_world({"world_seed": shop.seed, **values}) if _fits(p, need)] != [target["id"]]:
        return None
    if "size" in need:
        item = f"{'a pair of' if category == 'shoes' else 'a'} {color} {need['material']} {_one(category).replace('pair of ', '')} in size {need['size']}"
        entities = [category, color, need["material"], need["size"]]
    elif category == "headphones":
        item = f"a pair of {color} wireless headphones with at least {need['battery_h']} hours of battery"
        entities = [category, color, "wireless"]
    else:
        unit = "litres of capacity" if category == "backpacks" else "ml"
        amount = need.get("capacity_l", need.get("capacity_ml"))
        item = f"a {color} {need['material']} {cfg['singular']} {'with at least' if category == 'backpacks' else 'that holds at least'} {amount} {unit}"
        entities = [category, color, need["material"]]
    return {**values, "item": item}, entities, Wording({"budget": budget})


def solve_buy_spec(env: Any, p: dict) -> Oracle:
    need = p["need"]
    query = "wireless" if "wireless" in need else need["material"]
    [found] = yield _search("I search with every filter the search supports.", query=query, category=need["category"], color=need["color"], max_price=need["budget"])
    pages = yield _pages("Sizes, stock and capacity are only on the product pages, so I open every candidate at once.", [row["id"] for row in found["results"]])
    page = next(pg for pg in pages if _fits({**pg, "sizes": pg["stock_by_size"]} if "stock_by_size" in pg else pg, need))
    args = {"product_id": page["id"], **({"size": need["size"]} if "size" in need else {})}
    yield OracleStep(f"{page['id']} meets every requirement and is in stock; I add it to the cart.", [("add_to_cart", args)])
    [order] = yield OracleStep("Now I check out.", [("checkout", {})])
    return Answer(f"I ordered {page['id']} ({page['title']}), {p['item']}, for ${page['price']} (order {order['order_id']}, within your ${need['budget']} budget).")


def check_buy_spec(env: Any, p: dict, answer: str | None) -> float:
    return env._purchase_score(lambda product, size: _spec_checks(product, size, p["need"]), p["need"]["budget"])


def draw_best_detail(rng: random.Random, shop: Catalogue) -> Drawn | None:
    category, color = rng.choice(CATEGORY_NAMES), rng.choice(entity_pool(COLORS, shop.novel))
    key = rng.choice(["weight_g", "warranty_y", CATEGORIES[category].get("measure", "weight_g")])
    pool = sorted(_of(shop, category, color), key=lambda p: p["price"])
    if len(pool) < 2:
        return None
    budget = int(pool[min(len(pool) - 1, rng.randint(1, 5))]["price"]) + 1
    candidates = [p for p in pool if p["price"] <= budget]
    wording, highest, _ = COMPARE[key]
    target = _unique_extreme(candidates, key, highest)
    if not 2 <= len(candidates) <= 6 or target is None:
        return None
    return {"category": category, "color": color, "budget": budget, "key": key, "target": target["id"]}, [category, color], Wording({"best": wording})


def solve_best_detail(env: Any, p: dict) -> Oracle:
    [found] = yield _search("First I find the candidates.", category=p["category"], color=p["color"], max_price=p["budget"])
    ids = [row["id"] for row in found["results"]]
    pages = yield _pages(f"The search does not show that attribute, so I open all {len(ids)} candidates at once.", ids)
    return _compare_answer(pages, p["key"], f"Among the {len(ids)} {p['color']} {p['category']} under ${p['budget']}, ")


def check_by_key(env: Any, p: dict, answer: str | None) -> float:
    return _product_and_fact(env, p, answer, p["key"])


# --- parallel: independent calls in one turn ---------------------------------------------------------------

def draw_compare_ids(rng: random.Random, shop: Catalogue) -> Drawn | None:
    ids = {p["id"] for p in shop.products}
    pool = [i for i in entity_pool([f"P{i}" for i in range(1, 121)], shop.novel) if i in ids]
    chosen = rng.sample(pool, min(len(pool), rng.randint(2, 4)))
    key = rng.choice(["rating", "price", "weight_g", "warranty_y"])
    wording, highest, _ = COMPARE[key]
    target = _unique_extreme([p for p in shop.products if p["id"] in chosen], key, highest)
    if len(chosen) < 2 or target is None:
        return None
    return {"ids": chosen, "key": key, "target": target["id"]}, list(chosen), Wording({"items": _listing(chosen), "best": wording})


def solve_compare_ids(env: Any, p: dict) -> Oracle:
    pages = yield _pages("I open the product pages of all of them at once.", p["ids"])
    return _compare_answer(pages, p["key"], "")


def draw_cheapest_each(rng: random.Random, shop: Catalogue) -> Drawn | None:
    categories = rng.sample(CATEGORY_NAMES, rng.randint(2, 3))
    color = rng.choice(entity_pool(COLORS, shop.novel)) if rng.random() < 0.6 else None
    targets = [_unique_extreme([p for p in shop.products if p["category"] == c and color in (None, p["color"])], "price", False) for c in categories]
    if any(t is None for t in targets):
        return None
    values = {"categories": categories, "color": color, "targets": [t["id"] for t in targets]}
    return values, [*categories, *([color] if color else [])], Wording({"item": f"{color} item" if color else "item", "listed": _listing(categories)})


def solve_cheapest_each(env: Any, p: dict) -> Oracle:
    args = [{"category": c, **({"color": p["color"]} if p["color"] else {}), "sort": "price_asc"} for c in p["categories"]]
    results = yield OracleStep("One search per category, all at once.", [("search_products", a) for a in args])
    parts = [f"{c}: {r['results'][0]['id']} ({r['results'][0]['title']}) at ${r['results'][0]['price']}" for c, r in zip(p["categories"], results)]
    return Answer(f"Cheapest {p['color'] + ' item' if p['color'] else 'item'} per category - " + "; ".join(parts) + ".")


def check_cheapest_each(env: Any, p: dict, answer: str | None) -> float:
    return env._facts_score(answer, p["targets"], [env.products[t]["price"] for t in p["targets"]])


# --- nested: a later call needs what an earlier one returned -----------------------------------------------

def draw_detail_of_top(rng: random.Random, shop: Catalogue) -> Drawn | None:
    category, color = rng.choice(CATEGORY_NAMES), rng.choice(entity_pool(COLORS, shop.novel))
    rank = rng.choice(list(RANKS))
    key = rng.choice(["material", "weight_g", "warranty_y", CATEGORIES[category].get("measure", "material")])
    rank_key, highest, sort = RANKS[rank]
    target = _unique_extreme(_of(shop, category, color), rank_key, highest)
    if target is None:
        return None
    values = {"category": category, "color": color, "sort": sort, "key": key, "target": target["id"]}
    # The phrasing is the attribute's own; whether to ask for the name too is the draw's last random call.
    return values, [category, color], Wording({"rank": rank, "item": _one(category, color), "name_it": NAME_IT if rng.random() < 0.5 else ""}, variant=key)


def solve_detail_of_top(env: Any, p: dict) -> Oracle:
    [found] = yield _search("First I find the product with a sorted search.", category=p["category"], color=p["color"], sort=p["sort"])
    top = found["results"][0]
    [page] = yield _pages(f"The top result is {top['id']}; its page has the detail.", [top["id"]])
    rank = "cheapest" if p["sort"] == "price_asc" else "best-rated"
    return Answer(f"The {rank} {_one(p['category'], p['color'])} is {page['id']} ({page['title']}); " + DETAIL[p["key"]].format(v=page[p["key"]]) + ".")


def draw_buy_cheapest(rng: random.Random, shop: Catalogue) -> Drawn | None:
    category, color = rng.choice(["backpacks", "mugs", "headphones"]), rng.choice(entity_pool(COLORS, shop.novel))
    target = _unique_extreme(_of(shop, category, color), "price", False)
    if target is None or target["stock"] == 0:
        return None
    return {"category": category, "color": color, "target": target["id"]}, [category, color], Wording({"item": _one(category, color)})


def solve_buy_cheapest(env: Any, p: dict) -> Oracle:
    [found] = yield _search("I find the cheapest one first.", category=p["category"], color=p["color"], sort="price_asc")
    top = found["results"][0]
    yield OracleStep(f"The cheapest is {top['id']}; I add it to the cart.", [("add_to_cart", {"product_id": top["id"]})])
    [order] = yield OracleStep("Now I place the order.", [("checkout", {})])
    return Answer(f"I ordered the cheapest {_one(p['category'], p['color'])}: {top['id']} ({top['title']}) for ${top['price']}, order {order['order_id']}.")


def check_buy_cheapest(env: Any, p: dict, answer: str | None) -> float:
    return env._purchase_score(lambda product, size: [product["category"] == p["category"], product["color"] == p["color"], product["id"] == p["target"]], None)


# --- the registry: the order is the draw order within each difficulty --------------------------------------

def _family(name: str, difficulties: tuple[str, ...], tools: tuple[str, ...], draw: Callable[..., Drawn | None], solve: Callable[..., Oracle],
            check: Callable[..., float], fail_first: str | None = None) -> TaskFamily:
    return TaskFamily(name, difficulties, PHRASINGS[name], tools, draw, solve, check, fail_first=fail_first)


SEARCH, SEARCH_VIEW, BUY = ("search_products",), ("search_products", "view_product"), ("add_to_cart", "checkout")
FAMILIES = (
    _family("cheapest", ("single", "recovery"), SEARCH, draw_cheapest, solve_cheapest, check_cheapest, fail_first="search_products"),
    _family("count", ("single",), SEARCH, draw_count, solve_count, check_count),
    _family("top_rated", ("single",), SEARCH, draw_top_rated, solve_top_rated, check_top_rated),
    _family("buy_spec", ("multi_step", "recovery"), SEARCH_VIEW + BUY, draw_buy_spec, solve_buy_spec, check_buy_spec, fail_first="add_to_cart"),
    _family("best_detail", ("multi_step",), SEARCH_VIEW, draw_best_detail, solve_best_detail, check_by_key),
    _family("compare_ids", ("parallel", "recovery"), ("view_product",), draw_compare_ids, solve_compare_ids, check_by_key, fail_first="view_product"),
    _family("cheapest_each", ("parallel",), SEARCH, draw_cheapest_each, solve_cheapest_each, check_cheapest_each),
    _family("detail_of_top", ("nested",), SEARCH_VIEW, draw_detail_of_top, solve_detail_of_top, check_by_key),
    _family("buy_cheapest", ("nested", "recovery"), SEARCH + BUY, draw_buy_cheapest, solve_buy_cheapest, check_buy_cheapest, fail_first="checkout"),
)
