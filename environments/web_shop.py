"""A web shop (WebShop / AgentBench style): search a seeded catalogue, inspect products, fill a cart, check out.

The catalogue (40-120 products in five categories, each with a brand, colour, material, price, rating,
weight, warranty, and sizes with stock or a category-specific measure) is drawn from the task's world
seed. Search shows compact rows (id, title, price, colour, rating); material, sizes, stock, weight,
warranty, capacity and battery life are only on the product page, so many tasks need a search and then
a look at the products it found. Purchase tasks plant the product that fits the request together with
near-misses (wrong size or out of stock in it, too small, wrong material, over budget) and are verified
on the orders placed: the share of the request's attributes the bought item has, nothing if over budget
or nothing was ordered, less for anything else that was bought.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Generator
from typing import Any, Optional

from environments.base import Answer, OracleStep, TaskDraft, ToolEnvironment, ToolError, entity_pool, mentions, normalise
from environments.record import Task

COLORS = ["black", "white", "red", "blue", "green", "grey", "brown", "navy", "yellow", "pink", "orange", "purple"]
BRANDS = ["Norda", "Kestrel", "Vanta", "Lumo", "Orbit", "Fjell", "Solace", "Brio", "Halden", "Tova", "Arlo", "Zenith", "Pike", "Moss", "Quill", "Wren", "Cove", "Alder"]
MODELS = ["Trail", "Urban", "Classic", "Summit", "Metro", "Coast", "Nova", "Aero", "Terra", "Pulse", "Drift", "Echo", "Atlas", "Ridge"]
SHOE_SIZES = [str(s) for s in range(38, 47)]
JACKET_SIZES = ["XS", "S", "M", "L", "XL"]
CATEGORIES: dict[str, dict[str, Any]] = {
    "shoes": {"singular": "shoe", "nouns": ["Sneaker", "Runner", "Boot", "Loafer", "Trainer"], "materials": ["leather", "suede", "canvas", "mesh"], "sizes": SHOE_SIZES, "price": (30, 160), "weight": (300, 1300)},
    "jackets": {"singular": "jacket", "nouns": ["Parka", "Jacket", "Windbreaker", "Shell", "Coat"], "materials": ["wool", "down", "denim", "nylon", "fleece"], "sizes": JACKET_SIZES, "price": (40, 260), "weight": (350, 1800)},
    "backpacks": {"singular": "backpack", "nouns": ["Pack", "Daypack", "Rucksack", "Backpack"], "materials": ["nylon", "canvas", "polyester", "leather"], "measure": "capacity_l", "price": (20, 150), "weight": (400, 1600)},
    "mugs": {"singular": "mug", "nouns": ["Mug", "Cup", "Tumbler"], "materials": ["ceramic", "glass", "steel", "stoneware"], "measure": "capacity_ml", "price": (6, 40), "weight": (150, 700)},
    "headphones": {"singular": "headphone", "nouns": ["Headphones", "Earbuds", "Headset"], "materials": ["plastic", "aluminium", "leather"], "measure": "battery_h", "price": (15, 320), "weight": (20, 450)},
}
CATEGORY_NAMES = list(CATEGORIES)
SORTS = ("price_asc", "price_desc", "rating_desc")
MAX_ROWS = 10
MAX_QTY = 10
_STOPWORDS = {"a", "an", "the", "of", "in", "for", "with", "and", "or", "pair", "size", "item", "items", "product", "products", "some", "me", "any", "to"}
_WORDS = re.compile(r"[a-z0-9]+")
_ID_WORD = re.compile(r"p[0-9]+")


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _price(rng: random.Random, lo: float, hi: float) -> float:
    """A shop price: never a whole number, so 'under $80' is never ambiguous."""
    return round(rng.randint(int(lo), max(int(lo), int(hi) - 1)) + rng.choice([0.29, 0.49, 0.79, 0.95, 0.99]), 2)


def _one(category: str, adjective: str = "") -> str:
    """'pair of red shoes', 'red mug': one product of a category, as a user asks for it."""
    words = f"{adjective} {category}".strip() if category in ("shoes", "headphones") else f"{adjective} {CATEGORIES[category]['singular']}".strip()
    return f"pair of {words}" if category in ("shoes", "headphones") else words


def _listing(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _pick(r: Any, seq: Any) -> Any:
    """``rng.choice`` from ``r = rng.random``, three times faster (world setup builds ~100 products)."""
    return seq[int(r() * len(seq))]


def _new_title(r: Any, brand: str, category: str, taken: set[str]) -> str:
    nouns = CATEGORIES[category]["nouns"]
    for _ in range(40):
        title = f"{brand} {_pick(r, MODELS)} {_pick(r, nouns)}"
        if title not in taken:
            break
    else:  # practically unreachable: a numbered edition keeps titles unique
        title = f"{title} {len(taken)}"
    taken.add(title)
    return title


_STOCK = (0, 1, 2, 3, 5, 8)
_UNSIZED_STOCK = (0, 2, 4, 7, 12, 20)


def _random_product(rng: random.Random, pid: str, category: str, taken: set[str]) -> dict[str, Any]:
    r = rng.random
    cfg = CATEGORIES[category]
    brand = _pick(r, BRANDS)
    (lo, hi), (wlo, whi) = cfg["price"], cfg["weight"]
    product: dict[str, Any] = {
        "id": pid,
        "title": _new_title(r, brand, category, taken),
        "category": category,
        "brand": brand,
        "color": _pick(r, COLORS),
        "material": _pick(r, cfg["materials"]),
        "price": round(lo + int(r() * (hi - lo)) + _pick(r, (0.29, 0.49, 0.79, 0.95, 0.99)), 2),
        "rating": round(2.5 + 2.5 * r(), 1),
        "weight_g": wlo + int(r() * (whi - wlo + 1)),
        "warranty_y": 1 + int(r() * 5),
    }
    if "sizes" in cfg:
        sizes = cfg["sizes"]
        keep = 0.3 + 0.7 * r()  # how much of the size range it is made in
        product["sizes"] = {s: _pick(r, _STOCK) for s in sizes if r() < keep} or {sizes[len(sizes) // 2]: 2}
    else:
        measure = cfg["measure"]
        if measure == "capacity_l":
            product["capacity_l"] = 10 + int(r() * 36)
        elif measure == "capacity_ml":
            product["capacity_ml"] = 250 + 25 * int(r() * 16)
        else:
            product["wireless"] = r() < 0.65
            product["battery_h"] = 8 + int(r() * 53) if product["wireless"] else 0
        product["stock"] = _pick(r, _UNSIZED_STOCK)
    return product


@functools.lru_cache(maxsize=64)
def _seeded_catalogue(world_seed: int) -> tuple[dict[str, Any], ...]:
    rng = random.Random(world_seed)
    r = rng.random
    taken: set[str] = set()
    return tuple(_random_product(rng, f"P{i}", _pick(r, CATEGORY_NAMES), taken) for i in range(1, 40 + int(r() * 81) + 1))


def _copy(product: dict[str, Any]) -> dict[str, Any]:
    copy = dict(product)
    if "sizes" in copy:
        copy["sizes"] = dict(copy["sizes"])
    return copy


def _base_catalogue(world_seed: int) -> list[dict[str, Any]]:
    """The products of a world seed (fresh copies: an episode's checkout changes stock)."""
    return [_copy(p) for p in _seeded_catalogue(world_seed)]


def _build_world(params: dict[str, Any]) -> list[dict[str, Any]]:
    """The catalogue of a task: the seeded one, with the task's planted products and reserved colour."""
    products = _base_catalogue(params["world_seed"])
    plant = {p["id"]: p for p in params.get("plant", ())}
    reserve = params.get("reserve")
    for i, product in enumerate(products):
        if product["id"] in plant:
            products[i] = _copy(plant[product["id"]])
        elif reserve and product["category"] == reserve["category"] and product["color"] == reserve["color"]:
            # Only planted products may have the requested category and colour, so the task has one answer.
            product["color"] = COLORS[(COLORS.index(reserve["color"]) + 1 + i % 3) % len(COLORS)]
    return products


def _in_stock(product: dict[str, Any], size: str | None = None) -> bool:
    if "sizes" in product:
        return size is not None and product["sizes"].get(size, 0) > 0
    return product.get("stock", 0) > 0


def _spec_checks(product: dict[str, Any], size: str | None, need: dict[str, Any]) -> list[bool]:
    """Which of a purchase request's attributes a product (bought in ``size``) has."""
    checks = [product["category"] == need["category"], product["color"] == need["color"]]
    if "material" in need:
        checks.append(product.get("material") == need["material"])
    if "wireless" in need:
        checks.append(product.get("wireless") is True)
    if "size" in need:
        checks.append(size == need["size"])
    for key in ("capacity_l", "capacity_ml", "battery_h"):
        if key in need:
            checks.append(product.get(key, 0) >= need[key])
    return checks


def _fits(product: dict[str, Any], need: dict[str, Any]) -> bool:
    """A product the oracle may buy: every attribute, in budget, and in stock (in the size)."""
    return all(_spec_checks(product, need.get("size"), need)) and product["price"] < need["budget"] and _in_stock(product, need.get("size"))


def _unique_extreme(products: list[dict[str, Any]], key: str, highest: bool) -> dict[str, Any] | None:
    """The product with the highest (or lowest) value of ``key``, or None when it is tied or missing."""
    if not products:
        return None
    ranked = sorted(products, key=lambda p: p[key], reverse=highest)
    if len(ranked) > 1 and ranked[0][key] == ranked[1][key]:
        return None
    return ranked[0]


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
DETAIL = {  # key -> (question wording, how to say the value)
    "material": ("What is the {rank} {one} made of?", "it is made of {v}"),
    "weight_g": ("How much does the {rank} {one} weigh?", "it weighs {v} g"),
    "warranty_y": ("How many years of warranty does the {rank} {one} come with?", "it has a {v}-year warranty"),
    "capacity_l": ("How many litres does the {rank} {one} hold?", "it holds {v} litres"),
    "capacity_ml": ("How many ml does the {rank} {one} hold?", "it holds {v} ml"),
    "battery_h": ("How many hours of battery does the {rank} {one} have?", "it has {v} hours of battery"),
}
RANKS = {"cheapest": ("price", False, "price_asc"), "best-rated": ("rating", True, "rating_desc")}


class WebShopEnv(ToolEnvironment):
    name = "web_shop"
    description = "A web shop: search a product catalogue, compare products, fill a cart and check out within a budget."
    families = {
        "single": ["cheapest", "count", "top_rated"],
        "multi_step": ["buy_spec", "best_detail"],
        "parallel": ["compare_ids", "cheapest_each"],
        "nested": ["detail_of_top", "buy_cheapest"],
        "recovery": ["cheapest (503 first)", "buy_spec (503 first)", "compare_ids (503 first)", "buy_cheapest (503 first)"],
    }

    # --- the world ----------------------------------------------------------------------------------------

    def _setup(self, task: Task) -> None:
        self.products = {p["id"]: p for p in _build_world(task.params)}
        self._tokens: dict[str, set[str]] | None = None  # search keywords per product, built on the first keyword search
        self.cart: list[dict[str, Any]] = []  # lines: id, title, size, qty, price
        self.orders: list[dict[str, Any]] = []

    def _product(self, product_id: str) -> dict[str, Any]:
        pid = product_id.strip().upper()
        if pid not in self.products:
            shown = product_id if len(product_id) <= 40 else product_id[:40] + "..."
            raise ToolError(f"unknown product id {shown!r}; ids look like 'P12' and come from search_products (this shop has P1-P{len(self.products)})")
        return self.products[pid]

    def _keywords(self) -> dict[str, set[str]]:
        if self._tokens is None:
            self._tokens = {}
            for p in self.products.values():
                words = _WORDS.findall(f"{p['title']} {p['category']} {p['brand']} {p['color']} {p['material']}".lower())
                if "wireless" in p:
                    words.append("wireless" if p["wireless"] else "wired")
                self._tokens[p["id"]] = {_stem(w) for w in words}
        return self._tokens

    def _cart_view(self) -> dict[str, Any]:
        # Unsized lines leave "size" out, so a null never looks like something to pass back.
        items = [{k: v for k, v in line.items() if v is not None} for line in self.cart]
        return {"items": items, "total": round(sum(line["price"] * line["qty"] for line in self.cart), 2)}

    # --- tools -------------------------------------------------------------------------------------------

    def search_products(self, query: str = "", category: Optional[str] = None, color: Optional[str] = None, max_price: Optional[float] = None, sort: str = "price_asc") -> dict:
        """Search the shop's catalogue. Shows at most 10 rows (id, title, price, color, rating) and the total count.

        Args:
            query: Keywords that every result must contain (title, brand, category, color or material), e.g. "leather"; empty for all.
            category: Only this category: shoes, jackets, backpacks, mugs or headphones.
            color: Only products of this color, e.g. black.
            max_price: Only products costing at most this many dollars.
            sort: Order of the results: price_asc (default), price_desc or rating_desc.
        """
        if len(query) > 200:
            raise ToolError(f"query is too long ({len(query)} characters); use a few keywords")
        if sort not in SORTS:
            raise ToolError(f"sort must be one of {', '.join(SORTS)}; got {sort[:40]!r}")
        if category is not None:
            key = category.strip().lower()
            key = next((c for c in CATEGORY_NAMES if key in (c, CATEGORIES[c]["singular"])), None)
            if key is None:
                raise ToolError(f"unknown category {category[:40]!r}; categories: {', '.join(CATEGORY_NAMES)}")
            category = key
        if color is not None:
            if color.strip().lower() not in COLORS:
                raise ToolError(f"unknown color {color[:40]!r}; colors: {', '.join(COLORS)}")
            color = color.strip().lower()
        if max_price is not None and max_price < 0:
            raise ToolError("max_price must not be negative")
        words = [_stem(w) for w in _WORDS.findall(query.lower()) if w not in _STOPWORDS]
        tokens = self._keywords() if words else {}
        found = [
            p for p in self.products.values()
            if (category is None or p["category"] == category)
            and (color is None or p["color"] == color)
            and (max_price is None or p["price"] <= max_price)
            and all(w in tokens[p["id"]] for w in words)
        ]
        if sort == "price_asc":
            found.sort(key=lambda p: (p["price"], int(p["id"][1:])))
        elif sort == "price_desc":
            found.sort(key=lambda p: (-p["price"], int(p["id"][1:])))
        else:
            found.sort(key=lambda p: (-p["rating"], int(p["id"][1:])))
        result: dict[str, Any] = {"count": len(found), "results": [{k: p[k] for k in ("id", "title", "price", "color", "rating")} for p in found[:MAX_ROWS]]}
        if len(found) > MAX_ROWS:
            result["more"] = f"{len(found) - MAX_ROWS} more not shown; narrow the search with filters"
        elif not found:
            result["hint"] = "nothing matches every keyword and filter; try fewer keywords or other filters"
        return result

    def view_product(self, product_id: str) -> dict:
        """Open a product's page: all its attributes, including material, weight, warranty and stock (per size for shoes and jackets).

        Args:
            product_id: The product id from search_products, e.g. P12.
        """
        product = self._product(product_id)
        page = {k: v for k, v in product.items() if k != "sizes"}
        if "sizes" in product:
            page["stock_by_size"] = dict(product["sizes"])
        return page

    def add_to_cart(self, product_id: str, quantity: int = 1, size: Optional[str] = None) -> dict:
        """Put a product into the shopping cart.

        Args:
            product_id: The product id, e.g. P12.
            quantity: How many to add (1-10).
            size: The size, required for shoes (e.g. 42) and jackets (e.g. M); leave it out for other products.
        """
        product = self._product(product_id)
        if not 1 <= quantity <= MAX_QTY:
            raise ToolError(f"quantity must be between 1 and {MAX_QTY}")
        if "sizes" in product:
            if size is None:
                raise ToolError(f"{product['id']} comes in sizes; pass size, one of: {', '.join(product['sizes'])}")
            size = size.strip().upper()
            if size not in product["sizes"]:
                raise ToolError(f"{product['id']} is not made in size {size[:10]!r}; available sizes: {', '.join(product['sizes'])}")
            stock = product["sizes"][size]
        else:
            if size is not None:
                raise ToolError(f"{product['id']} ({product['category']}) has no sizes; leave size out")
            stock = product["stock"]
        line = next((line for line in self.cart if line["id"] == product["id"] and line["size"] == size), None)
        wanted = quantity + (line["qty"] if line else 0)
        if wanted > stock:
            where = f" in size {size}" if size else ""
            raise ToolError(f"{product['id']} is out of stock{where}" if stock == 0 else f"only {stock} of {product['id']}{where} in stock (asked for {wanted} in all)")
        if line:
            line["qty"] = wanted
        else:
            self.cart.append({"id": product["id"], "title": product["title"], "size": size, "qty": quantity, "price": product["price"]})
        view = self._cart_view()
        added = {"id": product["id"], "qty": quantity, **({"size": size} if size else {})}
        return {"added": added, "cart_items": sum(line["qty"] for line in self.cart), "cart_total": view["total"]}

    def remove_from_cart(self, product_id: str, size: Optional[str] = None) -> dict:
        """Take a product out of the shopping cart.

        Args:
            product_id: The product id, e.g. P12.
            size: Only the line of this size; leave it out to remove the product in every size.
        """
        pid = product_id.strip().upper()
        wanted = None if size is None else size.strip().upper()
        keep = [line for line in self.cart if not (line["id"] == pid and (wanted is None or line["size"] == wanted))]
        if len(keep) == len(self.cart):
            shown = product_id if len(product_id) <= 40 else product_id[:40] + "..."
            raise ToolError(f"{shown!r}{' in size ' + wanted[:10] if wanted else ''} is not in the cart; view_cart shows what is")
        self.cart = keep
        return {"removed": pid, **self._cart_view()}

    def view_cart(self) -> dict:
        """Show the shopping cart: its lines (id, title, size, qty, price) and the total."""
        return self._cart_view()

    def checkout(self) -> dict:
        """Place the order for everything in the cart. The order is final, and the cart is emptied."""
        if not self.cart:
            raise ToolError("the cart is empty; add_to_cart first, then checkout")
        order = {"order_id": f"O{len(self.orders) + 1}", **self._cart_view(), "status": "placed"}
        for line in self.cart:
            product = self.products[line["id"]]
            if line["size"] is None:
                product["stock"] -= line["qty"]
            else:
                product["sizes"][line["size"]] -= line["qty"]
        self.orders.append(order)
        self.cart = []
        return order

    # --- tasks -------------------------------------------------------------------------------------------

    @classmethod
    def _make_task(cls, rng: random.Random, difficulty: str, novel: bool) -> TaskDraft:
        family = rng.choice(cls.families[difficulty]).split(" ")[0]
        for _ in range(200):
            params: dict[str, Any] = {"world_seed": rng.randrange(2**31), "family": family}
            draft = getattr(cls, f"_task_{family}")(rng, params, _base_catalogue(params["world_seed"]), novel)
            if draft is not None:
                if difficulty == "recovery":
                    params["fail_first"] = [{"cheapest": "search_products", "buy_spec": "add_to_cart", "compare_ids": "view_product", "buy_cheapest": "checkout"}[family]]
                return draft
        raise RuntimeError(f"web_shop: could not draw a {family} task")

    @staticmethod
    def _task_cheapest(rng: random.Random, params: dict, products: list, novel: bool) -> TaskDraft | None:
        category, color = rng.choice(CATEGORY_NAMES), rng.choice(entity_pool(COLORS, novel))
        most = rng.random() < 0.3
        target = _unique_extreme([p for p in products if p["category"] == category and p["color"] == color], "price", most)
        if target is None:
            return None
        sup = "most expensive" if most else "cheapest"
        params.update(category=category, color=color, sort="price_desc" if most else "price_asc", target=target["id"])
        one = _one(category, color)
        prompt = rng.choice(["What is the {s} {o}?", "Which {o} is the {s} in the shop? Give me its price.", "Find the {s} {o} you sell and tell me what it costs."]).format(s=sup, o=one)
        return TaskDraft("cheapest", prompt, params, ["search_products"], [category, color])

    @staticmethod
    def _task_count(rng: random.Random, params: dict, products: list, novel: bool) -> TaskDraft | None:
        category, color = rng.choice(CATEGORY_NAMES), rng.choice(entity_pool(COLORS, novel))
        prices = sorted(p["price"] for p in products if p["category"] == category and p["color"] == color)
        if not prices:
            return None
        budget = int(rng.choice(prices)) + 1
        params.update(category=category, color=color, budget=budget, count=sum(x <= budget for x in prices))
        prompt = rng.choice(["How many {c} {k} do you have for under ${b}?", "Count the {c} {k} that cost less than ${b}.", "How many {k} in {c} are priced below ${b}?"]).format(c=color, k=category, b=budget)
        return TaskDraft("count", prompt, params, ["search_products"], [category, color])

    @staticmethod
    def _task_top_rated(rng: random.Random, params: dict, products: list, novel: bool) -> TaskDraft | None:
        category, brand = rng.choice(CATEGORY_NAMES), rng.choice(entity_pool(BRANDS, novel))
        target = _unique_extreme([p for p in products if p["category"] == category and p["brand"] == brand], "rating", True)
        if target is None:
            return None
        params.update(category=category, brand=brand, target=target["id"])
        prompt = rng.choice(["Which {o} has the best rating?", "What is the highest-rated product among the {k} made by {b}?", "Of all {b} {k}, which one do customers rate best?"]).format(o=_one(category, brand), b=brand, k=category)
        return TaskDraft("top_rated", prompt, params, ["search_products"], [category, brand])

    @staticmethod
    def _task_best_detail(rng: random.Random, params: dict, products: list, novel: bool) -> TaskDraft | None:
        category, color = rng.choice(CATEGORY_NAMES), rng.choice(entity_pool(COLORS, novel))
        key = rng.choice(["weight_g", "warranty_y", CATEGORIES[category].get("measure", "weight_g")])
        pool = sorted((p for p in products if p["category"] == category and p["color"] == color), key=lambda p: p["price"])
        if len(pool) < 2:
            return None
        budget = int(pool[min(len(pool) - 1, rng.randint(1, 5))]["price"]) + 1
        candidates = [p for p in pool if p["price"] <= budget]
        wording, highest, _ = COMPARE[key]
        target = _unique_extreme(candidates, key, highest)
        if not 2 <= len(candidates) <= 6 or target is None:
            return None
        params.update(category=category, color=color, budget=budget, key=key, target=target["id"])
        prompt = rng.choice(["Among the {c} {k} under ${b}, which one {w}?", "I want {c} {k} for less than ${b}. Which of them {w}?", "Look at the {c} {k} costing under ${b} and tell me which {w}."]).format(c=color, k=category, b=budget, w=wording)
        return TaskDraft("best_detail", prompt, params, ["search_products", "view_product"], [category, color])

    @staticmethod
    def _task_compare_ids(rng: random.Random, params: dict, products: list, novel: bool) -> TaskDraft | None:
        ids = {p["id"] for p in products}
        pool = [i for i in entity_pool([f"P{i}" for i in range(1, 121)], novel) if i in ids]
        chosen = rng.sample(pool, min(len(pool), rng.randint(2, 4)))
        key = rng.choice(["rating", "price", "weight_g", "warranty_y"])
        wording, highest, _ = COMPARE[key]
        target = _unique_extreme([p for p in products if p["id"] in chosen], key, highest)
        if len(chosen) < 2 or target is None:
            return None
        params.update(ids=chosen, key=key, target=target["id"])
        prompt = rng.choice(["Which of the items {l} {w}?", "Compare {l}: which one {w}?", "I am choosing between {l}. Tell me which {w}."]).format(l=_listing(chosen), w=wording)
        return TaskDraft("compare_ids", prompt, params, ["view_product"], list(chosen))

    @staticmethod
    def _task_cheapest_each(rng: random.Random, params: dict, products: list, novel: bool) -> TaskDraft | None:
        categories = rng.sample(CATEGORY_NAMES, rng.randint(2, 3))
        color = rng.choice(entity_pool(COLORS, novel)) if rng.random() < 0.6 else None
        targets = [_unique_extreme([p for p in products if p["category"] == c and color in (None, p["color"])], "price", False) for c in categories]
        if any(t is None for t in targets):
            return None
        params.update(categories=categories, color=color, targets=[t["id"] for t in targets])
        what = f"{color} item" if color else "item"
        prompt = rng.choice(["What is the cheapest {w} in each of these categories: {l}?", "For each of {l}, tell me the cheapest {w} and its price.", "Find me the lowest-priced {w} among the {l}, one per category."]).format(w=what, l=_listing(categories))
        return TaskDraft("cheapest_each", prompt, params, ["search_products"], [*categories, *([color] if color else [])])

    @staticmethod
    def _task_detail_of_top(rng: random.Random, params: dict, products: list, novel: bool) -> TaskDraft | None:
        category, color = rng.choice(CATEGORY_NAMES), rng.choice(entity_pool(COLORS, novel))
        rank = rng.choice(list(RANKS))
        key = rng.choice(["material", "weight_g", "warranty_y", CATEGORIES[category].get("measure", "material")])
        rank_key, highest, sort = RANKS[rank]
        target = _unique_extreme([p for p in products if p["category"] == category and p["color"] == color], rank_key, highest)
        if target is None:
            return None
        params.update(category=category, color=color, sort=sort, key=key, target=target["id"])
        prompt = DETAIL[key][0].format(rank=rank, one=_one(category, color))
        if rng.random() < 0.5:
            prompt = f"{prompt} Please name the product too."
        return TaskDraft("detail_of_top", prompt, params, ["search_products", "view_product"], [category, color])

    @staticmethod
    def _task_buy_cheapest(rng: random.Random, params: dict, products: list, novel: bool) -> TaskDraft | None:
        category, color = rng.choice(["backpacks", "mugs", "headphones"]), rng.choice(entity_pool(COLORS, novel))
        target = _unique_extreme([p for p in products if p["category"] == category and p["color"] == color], "price", False)
        if target is None or target["stock"] == 0:
            return None
        params.update(category=category, color=color, target=target["id"])
        one = _one(category, color)
        prompt = rng.choice(["Buy the cheapest {o}.", "Order me the cheapest {o} you have.", "Please purchase the least expensive {o} in the shop, just one."]).format(o=one)
        return TaskDraft("buy_cheapest", prompt, params, ["search_products", "add_to_cart", "checkout"], [category, color])

    @staticmethod
    def _task_buy_spec(rng: random.Random, params: dict, products: list, novel: bool) -> TaskDraft | None:
        category, color = rng.choice(CATEGORY_NAMES), rng.choice(entity_pool(COLORS, novel))
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
        taken = {p["title"] for p in products}
        slots = rng.sample([p["id"] for p in products], 4)

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
        params.update(need=need, plant=plant, reserve={"category": category, "color": color}, target=target["id"])
        world = _build_world(params)
        if [p["id"] for p in world if _fits(p, need)] != [target["id"]]:
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
        params["item"] = item
        prompt = rng.choice(["Buy {i} for under ${b}.", "Please order {i}; my budget is ${b}.", "I need {i}, and I can spend at most ${b}. Place the order."]).format(i=item, b=budget)
        return TaskDraft("buy_spec", prompt, params, ["search_products", "view_product", "add_to_cart", "checkout"], entities)

    # --- oracle and verifier -----------------------------------------------------------------------------

    def _solve(self, task: Task) -> Generator[OracleStep, list[Any], Answer]:
        p, family = task.params, task.params["family"]
        if family == "cheapest":
            [found] = yield OracleStep("One sorted search with the category and color filters answers this.", [("search_products", {"category": p["category"], "color": p["color"], "sort": p["sort"]})])
            top = found["results"][0]
            sup = "most expensive" if p["sort"] == "price_desc" else "cheapest"
            return Answer(f"The {sup} {_one(p['category'], p['color'])} is {top['id']} ({top['title']}) at ${top['price']}.")
        if family == "count":
            [found] = yield OracleStep("A filtered search gives the count.", [("search_products", {"category": p["category"], "color": p["color"], "max_price": p["budget"]})])
            n = found["count"]
            return Answer(f"There {'is' if n == 1 else 'are'} {n} {_one(p['category'], p['color']) if n == 1 else p['color'] + ' ' + p['category']} under ${p['budget']}.")
        if family == "top_rated":
            [found] = yield OracleStep("I will search the brand in that category, best rated first.", [("search_products", {"query": p["brand"], "category": p["category"], "sort": "rating_desc"})])
            top = found["results"][0]
            return Answer(f"The best-rated {p['brand']} {p['category']} are {top['id']} ({top['title']}), rated {top['rating']}.")
        if family == "best_detail":
            [found] = yield OracleStep("First I find the candidates.", [("search_products", {"category": p["category"], "color": p["color"], "max_price": p["budget"]})])
            ids = [row["id"] for row in found["results"]]
            pages = yield OracleStep(f"The search does not show that attribute, so I open all {len(ids)} candidates at once.", [("view_product", {"product_id": i}) for i in ids])
            return self._compare_answer(pages, p["key"], f"Among the {len(ids)} {p['color']} {p['category']} under ${p['budget']}, ")
        if family == "compare_ids":
            pages = yield OracleStep("I open the product pages of all of them at once.", [("view_product", {"product_id": i}) for i in p["ids"]])
            return self._compare_answer(pages, p["key"], "")
        if family == "cheapest_each":
            args = [{"category": c, **({"color": p["color"]} if p["color"] else {}), "sort": "price_asc"} for c in p["categories"]]
            results = yield OracleStep("One search per category, all at once.", [("search_products", a) for a in args])
            parts = [f"{c}: {r['results'][0]['id']} ({r['results'][0]['title']}) at ${r['results'][0]['price']}" for c, r in zip(p["categories"], results)]
            return Answer(f"Cheapest {p['color'] + ' item' if p['color'] else 'item'} per category - " + "; ".join(parts) + ".")
        if family == "detail_of_top":
            [found] = yield OracleStep("First I find the product with a sorted search.", [("search_products", {"category": p["category"], "color": p["color"], "sort": p["sort"]})])
            top = found["results"][0]
            [page] = yield OracleStep(f"The top result is {top['id']}; its page has the detail.", [("view_product", {"product_id": top["id"]})])
            rank = "cheapest" if p["sort"] == "price_asc" else "best-rated"
            return Answer(f"The {rank} {_one(p['category'], p['color'])} is {page['id']} ({page['title']}); " + DETAIL[p["key"]][1].format(v=page[p["key"]]) + ".")
        if family == "buy_cheapest":
            [found] = yield OracleStep("I find the cheapest one first.", [("search_products", {"category": p["category"], "color": p["color"], "sort": "price_asc"})])
            top = found["results"][0]
            yield OracleStep(f"The cheapest is {top['id']}; I add it to the cart.", [("add_to_cart", {"product_id": top["id"]})])
            [order] = yield OracleStep("Now I place the order.", [("checkout", {})])
            return Answer(f"I ordered the cheapest {_one(p['category'], p['color'])}: {top['id']} ({top['title']}) for ${top['price']}, order {order['order_id']}.")
        if family == "buy_spec":
            need = p["need"]
            query = "wireless" if "wireless" in need else need["material"]
            [found] = yield OracleStep("I search with every filter the search supports.", [("search_products", {"query": query, "category": need["category"], "color": need["color"], "max_price": need["budget"]})])
            ids = [row["id"] for row in found["results"]]
            pages = yield OracleStep("Sizes, stock and capacity are only on the product pages, so I open every candidate at once.", [("view_product", {"product_id": i}) for i in ids])
            page = next(pg for pg in pages if _fits({**pg, "sizes": pg["stock_by_size"]} if "stock_by_size" in pg else pg, need))
            args = {"product_id": page["id"], **({"size": need["size"]} if "size" in need else {})}
            yield OracleStep(f"{page['id']} meets every requirement and is in stock; I add it to the cart.", [("add_to_cart", args)])
            [order] = yield OracleStep("Now I check out.", [("checkout", {})])
            return Answer(f"I ordered {page['id']} ({page['title']}), {p['item']}, for ${page['price']} (order {order['order_id']}, within your ${need['budget']} budget).")
        raise ValueError(f"web_shop: no oracle for family {family!r}")

    @staticmethod
    def _compare_answer(pages: list[dict[str, Any]], key: str, lead: str) -> Answer:
        wording, highest, say = COMPARE[key]
        best = _unique_extreme(pages, key, highest)
        others = ", ".join(f"{pg['id']}: {say.format(v=pg[key])}" for pg in pages if pg is not best)
        return Answer(f"{lead}{best['id']} ({best['title']}) {wording}, with {say.format(v=best[key])} (others - {others}).")

    def _identified(self, answer: str, pid: str) -> bool:
        """Whether the answer names the product (id or title) before any other product id."""
        text = f" {normalise(answer)} "
        spots = [text.find(f" {normalise(n)} ") for n in (pid, self.products[pid]["title"])]
        spots = [s for s in spots if s >= 0]
        if not spots:
            return False
        others = [m.start() for m in re.finditer(r" (p[0-9]+)(?= )", text) if m.group(1) != pid.lower()]
        return not others or min(spots) < min(others)

    def _facts_score(self, answer: str | None, products: list[str], values: list[Any]) -> float:
        """Share of the facts stated: each product named (first when there is one) and each value."""
        if not answer:
            return 0.0
        words = normalise(answer).split()
        n_facts = len(products) + len(values)
        if sum(w[0].isdigit() for w in words) > 4 * n_facts + 6:
            return 0.0  # enumerating numbers is not an answer
        if len(products) == 1:
            named = [self._identified(answer, products[0])]
        else:
            if len({w for w in words if _ID_WORD.fullmatch(w)}) > 2 * len(products) + 1:
                return 0.0  # enumerating products is not an answer
            named = [mentions(answer, pid) or mentions(answer, self.products[pid]["title"]) for pid in products]
        return (sum(named) + sum(mentions(answer, v) for v in values)) / n_facts

    def _purchase_score(self, checks_of: Any, budget: float | None) -> float:
        lines = [line for order in self.orders for line in order["items"]]
        if not lines:
            return 0.0
        if budget is not None and sum(order["total"] for order in self.orders) > budget:
            return 0.0
        best = max(sum(c) / len(c) for c in (checks_of(self.products[line["id"]], line.get("size")) for line in lines))
        extra = sum(line["qty"] for line in lines) - 1  # anything beyond the one item asked for
        return best * max(0.0, 1.0 - 0.5 * extra)

    def _verify(self, answer: str | None) -> float:
        p, family = self.task.params, self.task.params["family"]
        if family == "buy_spec":
            return self._purchase_score(lambda product, size: _spec_checks(product, size, p["need"]), p["need"]["budget"])
        if family == "buy_cheapest":
            return self._purchase_score(lambda product, size: [product["category"] == p["category"], product["color"] == p["color"], product["id"] == p["target"]], None)
        if self.orders:
            return 0.0  # the user asked a question; buying something was not asked for
        if family in ("cheapest", "top_rated"):
            target = self.products[p["target"]]
            return self._facts_score(answer, [target["id"]], [target["price"] if family == "cheapest" else target["rating"]])
        if family == "count":
            distinct = {w for w in normalise(answer).split() if w[0].isdigit()} if answer else set()
            return float(mentions(answer, p["count"]) and len(distinct) <= 3)
        if family in ("best_detail", "compare_ids", "detail_of_top"):
            target = self.products[p["target"]]
            return self._facts_score(answer, [target["id"]], [target[p["key"]]])
        if family == "cheapest_each":
            return self._facts_score(answer, p["targets"], [self.products[t]["price"] for t in p["targets"]])
        raise ValueError(f"web_shop: no verifier for family {family!r}")
