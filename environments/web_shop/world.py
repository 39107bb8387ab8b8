"""The shop's world: the pools a catalogue is drawn from, one seeded catalogue (with a task's planted
products), and the checks on products that tasks, the expert and the verifier share."""

from __future__ import annotations

import functools
import random
from typing import Any, NamedTuple

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
_STOCK = (0, 1, 2, 3, 5, 8)
_UNSIZED_STOCK = (0, 2, 4, 7, 12, 20)


class Catalogue(NamedTuple):
    """What a task is drawn from: the seeded catalogue, and whether the task is a novel test task (drawn on
    held-out colours, brands and ids)."""

    seed: int
    products: list[dict[str, Any]]
    novel: bool


def _price(rng: random.Random, lo: float, hi: float) -> float:
    """A shop price: never a whole number, so 'under $80' is never ambiguous."""
    return round(rng.randint(int(lo), max(int(lo), int(hi) - 1)) + rng.choice([0.29, 0.49, 0.79, 0.95, 0.99]), 2)


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


# --- checks on products ------------------------------------------------------------------------------------


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
