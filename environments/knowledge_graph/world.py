"""The knowledge graph a task is asked about: invented people, companies, cities, countries, universities
and films, with typed edges drawn from the task's world seed.

Every name is invented and every edge is drawn from the seed, so facts must be read from observations,
never remembered. A world is never modified (it is cached and shared; tools hand out copies only).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from typing import Any

from environments.answers import normalise
from environments.base import entity_pool

# --- name pools (all invented) ------------------------------------------------------------------------------

COUNTRIES = ["Valdoria", "Kestria", "Morvane", "Tellaris", "Brenmark", "Sarovia", "Elmaro", "Quendor", "Lysteria", "Dravonia", "Ithria", "Palmora"]
CITIES = [
    "Varsk", "Tolbridge", "Hesselport", "Amberlin", "Corvik", "Dunhollow", "Eskara", "Fennmoor", "Gallowmere",
    "Istvel", "Jorvale", "Kaldmar", "Lorring", "Merrowby", "Nethercombe", "Ostrel", "Pellingham", "Quarrick",
    "Rothwyn", "Saltmere", "Tarnveil", "Ulverholt", "Vessmark", "Wendlecross", "Yarrowick", "Zellhaven",
    "Brackmoor", "Caddowvale", "Drennick", "Faldren", "Glimmerby", "Harkaway", "Ivelton", "Kestwick", "Lunmouth", "Orrinford",
]
UNIVERSITIES = [
    "Aldren Institute of Technology", "Marrowgate University", "Calloway College", "Vellmont University",
    "Ostwick Polytechnic", "Halvard Academy of Sciences", "Linmere University", "Royal College of Dornhelm",
    "Pemberwick University", "Saint Auberon College", "Grayhallow Institute", "Tressingham University",
    "Northvale Polytechnic", "Corrinth University", "Eldergate College", "Wystan Institute", "Sorrelby University",
    "Kingsreach College", "Ambrose Hartley Institute", "Vantmere Polytechnic", "Rookwood University", "Ellesby Academy",
    "Marlow Fenwick College", "Quarrystone University",
]
_INDUSTRY = {
    "Systems": "software", "Labs": "biotech", "Foods": "food", "Energy": "energy", "Motors": "automotive",
    "Logistics": "logistics", "Textiles": "textiles", "Analytics": "data", "Pharma": "pharma", "Robotics": "robotics",
    "Capital": "finance", "Aerospace": "aerospace", "Pictures": "film", "Studios": "film", "Films": "film",
}
COMPANIES = [
    "Orvanta Systems", "Keltrix Labs", "Brightwell Foods", "Nuvora Energy", "Halcyra Motors", "Quillon Logistics",
    "Mervane Textiles", "Zentari Analytics", "Ostaryn Pharma", "Tavrix Robotics", "Solmere Capital", "Avenor Aerospace",
    "Drellic Systems", "Fenwright Labs", "Carrowby Foods", "Lumora Energy", "Vexley Motors", "Pindar Logistics",
    "Sablewick Textiles", "Corvanta Analytics", "Hollis Crane Pharma", "Ryvel Robotics", "Greymantle Capital",
    "Icarion Aerospace", "Nexadyne Systems", "Maribel Labs", "Tundra Hearth Foods", "Veridane Energy", "Kastell Motors",
    "Brisko Logistics", "Amberlyn Textiles", "Pollux Analytics", "Strandvik Pharma", "Ottomere Robotics",
    "Cindral Capital", "Westerfell Aerospace",
]
STUDIOS = [
    "Sundrake Pictures", "Moonvale Studios", "Redgrove Films", "Larkspur Pictures", "Ironquill Studios", "Bluefen Films",
    "Starling Gate Pictures", "Copperleaf Studios", "Harrowlight Films", "Velvet Owl Pictures", "Greyfriar Studios", "Tidewell Films",
]
ALL_COMPANIES = COMPANIES + STUDIOS
FILMS = [
    "The Silent Harbour", "Glass Meridian", "Ashes of Tallow", "Northern Lantern", "The Paper Orchard",
    "Winter Cartographer", "Seven Salt Roads", "The Tin Cathedral", "Midnight Apiary", "A Quiet Avalanche",
    "The Last Ferryman", "Copper Skies", "Echoes of Ravelin", "The Marble Orchestra", "Dust and Saffron",
    "The Clockmaker's Daughter", "Borrowed Thunder", "Velvet Frontier", "Saltwater Psalm", "The Ninth Lighthouse",
    "Fennel and Smoke", "The Glass Tortoise", "Iron Meadow", "Kingdom of Moths", "The Brass Nightingale",
    "Sleepwalker's Atlas", "A Map of Embers", "The Whispering Quarry", "Orchid Protocol", "Thirteen Kites",
    "The Wandering Terrace", "Gilded Static", "Harbour of Crows", "The Amber Tribunal", "Distant Semaphore", "Lanterns Underwater",
    "Violet Engine", "The Cartwright Letters", "Nocturne for Wolves", "The Porcelain Summer", "Hollowbone Express", "Quiet Mercury",
    "The Sixth Carousel", "Tangerine Monsoon", "Beneath the Juniper", "The Falconer's Debt", "Cobalt Requiem", "Weightless Acre",
]
_FIRST = [
    "Mira", "Tobin", "Alys", "Corwin", "Dessa", "Elric", "Fenna", "Gareth", "Hanne", "Ilyas", "Jora", "Kasimir", "Liesel",
    "Marek", "Noor", "Oriel", "Perrin", "Quilla", "Rasmus", "Selka", "Teodor", "Ulla", "Viggo", "Wren", "Xavia",
    "Yannick", "Zofia", "Bram", "Calla", "Daven",
]
_LAST = [
    "Kessel", "Dorn", "Halloway", "Brecken", "Ashgrove", "Vantrell", "Morrow", "Quist", "Ferrand", "Lisowski",
    "Thorne", "Varga", "Ellery", "Castellan", "Duquesne", "Marchetti", "Oyelaran", "Sandoval", "Nakagawa", "Lindqvist",
    "Abernathy", "Petrakis", "Rourke", "Szabo", "Achterberg", "Delacroix", "Fairweather", "Korhonen", "Iversen", "Whitlock",
]
PEOPLE = random.Random("knowledge_graph:people").sample([f"{a} {b}" for a in _FIRST for b in _LAST], 120)
GENRES = ["drama", "comedy", "thriller", "documentary", "science fiction", "romance", "animation", "western"]

TYPES = ("person", "company", "city", "country", "university", "film")
# relation -> (subject types, object types); married_to is symmetric.
RELATIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "works_at": (("person",), ("company",)),
    "studied_at": (("person",), ("university",)),
    "born_in": (("person",), ("city",)),
    "married_to": (("person",), ("person",)),
    "founded_by": (("company",), ("person",)),
    "located_in": (("company", "university", "city"), ("city", "country")),
    "subsidiary_of": (("company",), ("company",)),
    "directed": (("person",), ("film",)),
    "acted_in": (("person",), ("film",)),
    "produced_by": (("film",), ("company",)),
}
SYMMETRIC = {"married_to"}
LIST_CAP = 20  # names per observation
SEARCH_CAP = 5
MAX_EMPLOYEES = 4
POOLS = {"person": PEOPLE, "company": ALL_COMPANIES, "city": CITIES, "country": COUNTRIES, "university": UNIVERSITIES, "film": FILMS}
KIND = {name: kind for kind, pool in POOLS.items() for name in pool}  # every name's entity type


# --- the world ----------------------------------------------------------------------------------------------


def _trigrams(text: str) -> frozenset[str]:
    padded = f"  {text} "
    return frozenset(padded[i : i + 3] for i in range(len(padded) - 2))


def _similarity(a: frozenset[str], b: frozenset[str]) -> float:
    """Dice coefficient of two trigram sets (cheap fuzzy matching)."""
    return 2 * len(a & b) / (len(a) + len(b)) if a and b else 0.0


class _World:
    """An immutable graph: entity types, attributes, and typed edges indexed both ways."""

    def __init__(self) -> None:
        self.types: dict[str, str] = {}
        self.attrs: dict[str, dict[str, Any]] = {}
        self.out: dict[str, dict[str, list[str]]] = {}
        self.inn: dict[str, dict[str, list[str]]] = {}
        self.by_type: dict[str, list[str]] = {t: [] for t in TYPES}
        self.keys: dict[str, str] = {}  # normalised name -> name
        self.norm: dict[str, str] = {}  # name -> normalised name
        self.grams: dict[str, frozenset[str]] = {}

    def add_entity(self, name: str, kind: str, **attrs: Any) -> None:
        self.types[name] = kind
        self.attrs[name] = attrs
        self.out[name], self.inn[name] = {}, {}
        self.by_type[kind].append(name)
        key = _NORM[name]
        self.keys[key], self.norm[name], self.grams[name] = name, key, _GRAMS[name]

    def add_edge(self, subject: str, relation: str, obj: str) -> None:
        self.out[subject].setdefault(relation, []).append(obj)
        self.inn[obj].setdefault(relation, []).append(subject)
        if relation in SYMMETRIC:
            self.out[obj].setdefault(relation, []).append(subject)
            self.inn[subject].setdefault(relation, []).append(obj)

    def one(self, name: str, relation: str, direction: str = "out") -> str | None:
        found = (self.out if direction == "out" else self.inn)[name].get(relation, [])
        return found[0] if found else None

    def many(self, name: str, relation: str, direction: str = "out") -> list[str]:
        return list((self.out if direction == "out" else self.inn)[name].get(relation, []))

    def closest(self, text: str, n: int = 3, cutoff: float = 0.45) -> list[str]:
        grams = _trigrams(normalise(text[:100]))
        scored = [(score, name) for name, g in self.grams.items() if (score := _similarity(grams, g)) >= cutoff]
        return [name for _, name in sorted(scored, reverse=True)[:n]]


_NORM = {name: normalise(name) for pool in (COUNTRIES, CITIES, UNIVERSITIES, ALL_COMPANIES, FILMS, PEOPLE) for name in pool}
_GRAMS = {name: _trigrams(key) for name, key in _NORM.items()}


def _names_in(text: str) -> set[str]:
    """Every name of the pools (not only of this world: a policy sees them all across worlds) that a
    normalised, space-padded text states as whole words."""
    return {name for name, key in _NORM.items() if f" {key} " in text}


@functools.lru_cache(maxsize=256)
def _build_world(seed: int) -> _World:
    """The world of a seed (cached: it is never modified, and tools hand out copies only)."""
    rng = random.Random(f"knowledge_graph:world:{seed}")
    w = _World()
    countries, cities = rng.sample(COUNTRIES, 6), rng.sample(CITIES, 16)
    universities, films, people = rng.sample(UNIVERSITIES, 8), rng.sample(FILMS, 14), rng.sample(PEOPLE, 46)
    companies = rng.sample(COMPANIES, 16) + rng.sample(STUDIOS, 5)
    rng.shuffle(companies)
    studios = [c for c in companies if c in STUDIOS]

    for country in countries:
        w.add_entity(country, "country", population=rng.randint(2, 90) * 1_000_000 + rng.randint(0, 999) * 1000)
    for city in cities:
        w.add_entity(city, "city", population=rng.randint(20, 3000) * 1000 + rng.randint(0, 999))
        w.add_edge(city, "located_in", rng.choice(countries))
    for university in universities:
        w.add_entity(university, "university", founded=rng.randint(1680, 1960), students=rng.randint(20, 450) * 100)
        w.add_edge(university, "located_in", rng.choice(cities))
    for person in people:
        w.add_entity(person, "person", born=rng.randint(1940, 1996))
        w.add_edge(person, "born_in", rng.choice(cities))
        w.add_edge(person, "studied_at", rng.choice(universities))
    founders = rng.sample(people, len(companies))
    for i, (company, founder) in enumerate(zip(companies, founders)):
        born = w.attrs[founder]["born"]
        founded = born + rng.randint(24, max(24, min(50, 2022 - born)))
        w.add_entity(company, "company", founded=founded, industry=_INDUSTRY[company.split()[-1]])
        w.add_edge(company, "located_in", rng.choice(cities))
        w.add_edge(company, "founded_by", founder)
        if i > 0 and rng.random() < 0.3:
            w.add_edge(company, "subsidiary_of", rng.choice(companies[:i]))
    open_jobs, staff = list(companies), dict.fromkeys(companies, 0)
    for person in people:
        job = rng.choice(open_jobs)
        w.add_edge(person, "works_at", job)
        staff[job] += 1
        if staff[job] == MAX_EMPLOYEES:
            open_jobs.remove(job)
    spouses = rng.sample(people, 16)
    for a, b in zip(spouses[::2], spouses[1::2]):
        w.add_edge(a, "married_to", b)
    for film in films:
        director = rng.choice([p for p in people if len(w.out[p].get("directed", ())) < 2])
        born = w.attrs[director]["born"]
        year = born + rng.randint(25, max(25, min(50, 2024 - born)))
        w.add_entity(film, "film", year=year, genre=rng.choice(GENRES))
        w.add_edge(director, "directed", film)
        cast = [p for p in people if p != director and w.attrs[p]["born"] <= year - 12]
        for actor in rng.sample(cast, min(len(cast), rng.randint(2, 3))):
            w.add_edge(actor, "acted_in", film)
        w.add_edge(film, "produced_by", rng.choice(studios))
    return w


class Graph:
    """What a task is drawn from: one world, and the entities a task may be about (the held-out ones for
    novel test tasks)."""

    def __init__(self, seed: int, novel: bool):
        self.world = _build_world(seed)
        self.novel = novel

    def pick(self, rng: random.Random, kind: str, fits: Callable[[str], bool] = lambda name: True, k: int = 1) -> list[str] | None:
        """``k`` entities of ``kind`` in this world, of the task's pool, that ``fits`` (None if too few)."""
        allowed = set(entity_pool(POOLS[kind], self.novel))
        candidates = [x for x in self.world.by_type[kind] if x in allowed and fits(x)]
        return rng.sample(candidates, k) if len(candidates) >= k else None
