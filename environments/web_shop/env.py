"""The web shop environment: its tools (search, product pages, cart, checkout), the draw of its worlds, and
the verifier."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import Any, Optional

from environments.answers import mentions, normalise, too_many_numbers
from environments.base import ToolEnvironment, ToolError
from environments.families import TaskFamily
from environments.record import Task
from environments.web_shop.families import FAMILIES
from environments.web_shop.world import CATEGORIES, CATEGORY_NAMES, COLORS, Catalogue, _base_catalogue, _build_world

SORTS = ("price_asc", "price_desc", "rating_desc")
MAX_ROWS = 10
MAX_QTY = 10
_STOPWORDS = {"a", "an", "the", "of", "in", "for", "with", "and", "or", "pair", "size", "item", "items", "product", "products", "some", "me", "any", "to"}
_WORDS = re.compile(r"[a-z0-9]+")
_ID_WORD = re.compile(r"p[0-9]+")


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


class WebShopEnv(ToolEnvironment):
    name = "web_shop"
    description = "A web shop: search a product catalogue, compare products, fill a cart and check out within a budget."
    task_families = FAMILIES

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

    # --- tasks and their verification --------------------------------------------------------------------

    @classmethod
    def _draw_world(cls, rng: random.Random, novel: bool) -> tuple[dict[str, Any], Catalogue]:
        seed = rng.randrange(2**31)
        return {"world_seed": seed}, Catalogue(seed, _base_catalogue(seed), novel)

    def _score(self, family: TaskFamily, answer: str | None, expected_state: None) -> float:
        if self.orders and "checkout" not in family.tools:
            return 0.0  # the user asked a question; buying something was not asked for
        return family.expected(self, self.task.params, answer)

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
        n_facts = len(products) + len(values)
        if too_many_numbers(answer, n_facts):
            return 0.0  # enumerating numbers is not an answer
        if len(products) == 1:
            named = [self._identified(answer, products[0])]
        else:
            if len({w for w in normalise(answer).split() if _ID_WORD.fullmatch(w)}) > 2 * len(products) + 1:
                return 0.0  # enumerating products is not an answer
            named = [mentions(answer, pid) or mentions(answer, self.products[pid]["title"]) for pid in products]
        return (sum(named) + sum(mentions(answer, v) for v in values)) / n_facts

    def _purchase_score(self, checks_of: Callable[[dict[str, Any], str | None], list[bool]], budget: float | None) -> float:
        """The best bought item's share of the request's attributes; nothing when nothing was ordered or the
        orders went over budget, and half less for each item beyond the one asked for."""
        lines = [line for order in self.orders for line in order["items"]]
        if not lines:
            return 0.0
        if budget is not None and sum(order["total"] for order in self.orders) > budget:
            return 0.0
        best = max(sum(c) / len(c) for c in (checks_of(self.products[line["id"]], line.get("size")) for line in lines))
        extra = sum(line["qty"] for line in lines) - 1  # anything beyond the one item asked for
        return best * max(0.0, 1.0 - 0.5 * extra)
