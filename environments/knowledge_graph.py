"""A knowledge graph of invented people, companies, cities, countries, universities and films.

AgentBench's KG category: the agent answers questions by walking typed edges (works_at, founded_by,
located_in, studied_at, born_in, married_to, subsidiary_of, directed, acted_in, produced_by) with a
handful of graph tools. Every name is invented and every edge is drawn from the task's world seed, so
facts must be read from observations, never remembered. The graph is read-only: tasks are questions,
and the verifier checks that the answer names the right entities or values (partial credit for lists),
scoring 0 an answer that names many more entities (or numbers) than were asked for. Like the other
environments' verifiers, it gives no credit for hedging: an answer to a one-answer question that also names
a rival (another entity of the asked-for type, or another value of the asked-for kind) scores 0, and each
rival named in a list answer lowers its credit. A connection answer must name both entities and state the
relation in a whole word (not negated), and not also its alternative.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Generator
from typing import Any

from environments.base import Answer, OracleStep, TaskDraft, ToolEnvironment, ToolError, entity_pool, normalise, share_mentioned
from environments.record import Task

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


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _count_numbers(text: str) -> int:
    return sum(word[0].isdigit() for word in normalise(text).split())


ATTRIBUTE_PROMPTS = {
    ("company", "founded"): ["In which year was {e} founded?", "When was {e} founded?"],
    ("city", "population"): ["What is the population of {e}?", "How many people live in {e}?"],
    ("university", "founded"): ["When was {e} founded?", "In what year was {e} established?"],
    ("university", "students"): ["How many students does {e} have?"],
    ("film", "year"): ["In which year was {e} released?", "When did the film {e} come out?"],
    ("person", "born"): ["In what year was {e} born?", "When was {e} born?"],
    ("country", "population"): ["What is the population of {e}?"],
}
ATTRIBUTE_ANSWERS = {"founded": "{e} was founded in {v}.", "population": "{e} has a population of {v}.", "students": "{e} has {v} students.", "year": "{e} was released in {v}.", "born": "{e} was born in {v}."}
POOLS = {"person": PEOPLE, "company": ALL_COMPANIES, "city": CITIES, "country": COUNTRIES, "university": UNIVERSITIES, "film": FILMS}
KIND = {name: kind for kind, pool in POOLS.items() for name in pool}  # every name's entity type
# The connection family: the relations a person-company or person-film pair leaves open, and the answer
# sentence for each (founded_by runs from the company, so it is read backwards).
CONNECTIONS = {"works_at": "{a} works at {b}.", "founded_by": "{a} founded {b}.", "directed": "{a} directed {b}.", "acted_in": "{a} acted in {b}."}
# The whole words that state each relation (an answer may word it freely, but a word that merely starts
# like one - "workshop", "foundation", "directly", "castle" - states nothing).
RELATION_WORDS = {
    "works_at": frozenset("work works worked working worker workers employ employs employed employing employee employees employer employers employment".split()),
    "founded_by": frozenset("founded founder founders founding founds cofounded cofounder create creates created creating creator establish establishes established establishing".split()),
    "directed": frozenset("directed directs director directors directing directorial".split()),
    "acted_in": frozenset("acted acts acting actor actors actress starred starring appear appears appeared appearing appearance played plays cast".split()),
}
ALTERNATIVE = {"works_at": "founded_by", "founded_by": "works_at", "directed": "acted_in", "acted_in": "directed"}
# A relation word right after one of these ("does not work", "isn't an employee", "never directed") is negated.
NEGATIONS = frozenset("not no never t neither nor cannot".split())
NEGATION_REACH = 2  # words before a relation word that may negate it
# Families whose answer is a list (partial credit); every other family asks for one entity or value.
LIST_FAMILIES = {"employees", "hq_many", "birthplaces", "founding_years", "shared_alumni"}
# Attributes whose rivals are other numbers with as many digits (years; head counts).
NUMBER_FAMILIES = {"attribute", "founding_years"}
# Thousands separators inside a number ("3,456,000"), dropped before matching so the number reads as one.
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
CHAIN_ANSWERS = {
    "founder_school": "{0} was founded by {1}, who studied at {2}.",
    "director_birthplace": "{0} was directed by {1}, who was born in {2}.",
    "employer_city": "{0} works for {1}, which is headquartered in {2}.",
    "spouse_employer": "{0} is married to {1}, who works for {2}.",
    "studio_country": "{0} was produced by {1}, based in {2}, which is in {3}.",
}
# The first tool each family's oracle calls (the one a recovery task makes fail first).
FIRST_TOOL = {"connection": "list_relations", "attribute": "get_entity_info", "founding_years": "get_entity_info", "search_director": "search_entities"}


class KnowledgeGraphEnv(ToolEnvironment):
    name = "knowledge_graph"
    description = "A knowledge graph of invented people, companies, places and films: one-hop facts, multi-hop chains, parallel look-ups."
    families = {
        "single": ["hq", "employer", "director", "attribute", "employees", "connection"],
        "multi_step": ["search_director", "oldest_employee", "latest_film_director"],
        "parallel": ["hq_many", "birthplaces", "founding_years", "shared_alumni"],
        "nested": ["founder_school", "director_birthplace", "employer_city", "studio_country", "spouse_employer"],
        "recovery": [
            "hq (503 first)", "attribute (503 first)", "search_director (503 first)", "oldest_employee (503 first)",
            "hq_many (503 first)", "director_birthplace (503 first)", "employer_city (503 first)", "connection (503 first)",
        ],
    }

    # --- the world ----------------------------------------------------------------------------------------

    def _setup(self, task: Task) -> None:
        self._world = _build_world(task.params["world_seed"])

    def _resolve(self, entity: str) -> str:
        world = self._world
        name = world.keys.get(normalise(entity[:200]))
        if name is None:
            close = world.closest(entity)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else " Use search_entities to find the exact name."
            raise ToolError(f"unknown entity {entity[:60]!r}.{hint}")
        return name

    # --- tools -------------------------------------------------------------------------------------------

    def search_entities(self, query: str, entity_type: str = "") -> dict:
        """Find entities of the knowledge graph whose name matches a query (exact, partial or misspelt).

        Args:
            query: A name or part of a name, e.g. Harbour or Orvanta.
            entity_type: Only return entities of this type: person, company, city, country, university or film. Empty for any type.
        """
        if entity_type and entity_type not in TYPES:
            raise ToolError(f"unknown entity_type {entity_type[:40]!r}; use one of {', '.join(TYPES)}, or leave it empty")
        key = normalise(query[:100])
        if not key:
            raise ToolError("query must contain letters or digits, e.g. part of a name")
        world, grams = self._world, _trigrams(key)
        scored = []
        for name, norm in world.norm.items():
            if entity_type and world.types[name] != entity_type:
                continue
            score = 3.0 if norm == key else 2.0 if f" {key} " in f" {norm} " else 1.5 if key in norm else _similarity(grams, world.grams[name])
            if score >= 0.45:
                scored.append((-score, name))
        scored.sort()
        matches = [{"name": name, "type": world.types[name]} for _, name in scored[:SEARCH_CAP]]
        result: dict[str, Any] = {"query": query[:100], "matches": matches}
        if len(scored) > SEARCH_CAP:
            result["more"] = len(scored) - SEARCH_CAP
        if not matches:
            result["hint"] = "nothing matches; try a shorter part of the name"
        return result

    def get_entity_info(self, entity: str) -> dict:
        """Get an entity's type and attributes (e.g. founding year, birth year, population, release year).

        Args:
            entity: The exact name of the entity, e.g. Orvanta Systems.
        """
        name = self._resolve(entity)
        return {"name": name, "type": self._world.types[name], **self._world.attrs[name]}

    def list_relations(self, entity: str) -> dict:
        """List the typed edges of an entity in both directions: out (entity -> other) and in (other -> entity).

        Args:
            entity: The exact name of the entity, e.g. Mira Kessel.
        """
        name = self._resolve(entity)
        world, budget, more = self._world, LIST_CAP, 0
        result: dict[str, Any] = {"name": name, "type": world.types[name], "out": {}, "in": {}}
        for direction, edges in (("out", world.out[name]), ("in", world.inn[name])):
            for relation, others in edges.items():
                if direction == "in" and relation in SYMMETRIC:
                    continue
                shown = others[: max(budget, 0)]
                budget -= len(shown)
                more += len(others) - len(shown)
                if shown:
                    result[direction][relation] = list(shown)
        if more:
            result["more"] = f"{more} more edges not shown; use get_neighbors for one relation"
        return result

    def get_neighbors(self, entity: str, relation: str, direction: str = "out") -> dict:
        """Get the entities linked to an entity by one relation. The edges: person works_at company, person studied_at university, person born_in city, person married_to person, company founded_by person, company/university located_in city, city located_in country, company subsidiary_of company, person directed film, person acted_in film, film produced_by company.

        Args:
            entity: The exact name of the entity, e.g. Orvanta Systems.
            relation: The relation name, e.g. located_in.
            direction: out (default) follows edges from the entity, e.g. a company located_in its city; in follows them backwards, e.g. the people who works_at a company.
        """
        if relation not in RELATIONS:
            raise ToolError(f"unknown relation {relation[:40]!r}; valid relations: {', '.join(RELATIONS)}")
        if direction not in ("out", "in"):
            raise ToolError(f"direction must be 'out' or 'in', not {direction[:40]!r}")
        name = self._resolve(entity)
        world, kind = self._world, self._world.types[name]
        subjects, objects = RELATIONS[relation]
        if kind not in (subjects if direction == "out" else objects):
            other = "in" if direction == "out" else "out"
            fits = kind in (objects if direction == "out" else subjects)
            fix = f" Use direction '{other}'." if fits else f" Relations of {name}: {', '.join(sorted(set(world.out[name]) | set(world.inn[name]))) or 'none'}."
            raise ToolError(f"{relation} links {'/'.join(subjects)} -> {'/'.join(objects)}; {name} is a {kind}, so it has no {'outgoing' if direction == 'out' else 'incoming'} {relation} edges.{fix}")
        found = world.many(name, relation, direction)
        result: dict[str, Any] = {"name": name, "relation": relation, "direction": direction, "results": found[:LIST_CAP]}
        if len(found) > LIST_CAP:
            result["more"] = len(found) - LIST_CAP
        if not found and relation not in SYMMETRIC:
            back = world.many(name, relation, "in" if direction == "out" else "out")
            if back:
                result["hint"] = f"no {direction} {relation} edges, but {len(back)} the other way: use direction '{'in' if direction == 'out' else 'out'}'"
        return result

    # --- tasks -------------------------------------------------------------------------------------------

    @classmethod
    def _make_task(cls, rng: random.Random, difficulty: str, novel: bool) -> TaskDraft:
        family = rng.choice(cls.families[difficulty]).split(" ")[0]
        for _ in range(200):
            world_seed = rng.randrange(2**31)
            draft = cls._draw(rng, _build_world(world_seed), family, novel, {"world_seed": world_seed, "family": family})
            if draft is not None:
                if difficulty == "recovery":
                    draft.params["fail_first"] = [FIRST_TOOL.get(family, "get_neighbors")]
                return draft
        raise RuntimeError(f"knowledge_graph: no world fits family {family!r}")

    @classmethod
    def _draw(cls, rng: random.Random, w: _World, family: str, novel: bool, params: dict[str, Any]) -> TaskDraft | None:
        """A task of ``family`` in world ``w`` about entities of the (novel or train) pools, or None."""

        def pick(kind: str, fits=lambda name: True, k: int = 1) -> list[str] | None:
            allowed = set(entity_pool(POOLS[kind], novel))
            candidates = [x for x in w.by_type[kind] if x in allowed and fits(x)]
            return rng.sample(candidates, k) if len(candidates) >= k else None

        def say(templates: list[str], **values: str) -> str:
            return rng.choice(templates).format(**values)

        if family in ("hq", "founder_school", "hq_many", "founding_years"):
            k = rng.randint(2, 4) if family in ("hq_many", "founding_years") else 1
            k = min(k, 3) if family == "founding_years" else k
            chosen = pick("company", k=k)
            if chosen is None:
                return None
            params["entities"] = chosen
            c = chosen[0]
            if family == "hq":
                prompt = say(["Where is {c} headquartered?", "In which city is {c} located?", "Which city is {c} based in?"], c=c)
                return TaskDraft(family, prompt, params, ["get_neighbors"], chosen)
            if family == "founder_school":
                prompt = say(["Which university did the founder of {c} attend?", "Where did the person who founded {c} study?", "The founder of {c} studied at which university?"], c=c)
                return TaskDraft(family, prompt, params, ["get_neighbors"], chosen)
            if family == "hq_many":
                prompt = say(["Where are {c} headquartered?", "In which cities are {c} located?", "Tell me the home city of each of these companies: {c}."], c=_join(chosen))
                return TaskDraft(family, prompt, params, ["get_neighbors"], chosen)
            prompt = say(["When were {c} founded?", "In which years were {c} founded?", "Give me the founding year of each of {c}."], c=_join(chosen))
            return TaskDraft(family, prompt, params, ["get_entity_info"], chosen)

        if family in ("employer", "employer_city"):
            chosen = pick("person")
            if chosen is None:
                return None
            params["entities"] = chosen
            if family == "employer":
                prompt = say(["Which company does {p} work for?", "Who is {p}'s employer?", "Where does {p} work?"], p=chosen[0])
            else:
                prompt = say(["In which city is the company {p} works for headquartered?", "{p}'s employer is based in which city?", "Which city is home to the company where {p} works?"], p=chosen[0])
            return TaskDraft(family, prompt, params, ["get_neighbors"], chosen)

        if family in ("director", "director_birthplace", "studio_country"):
            chosen = pick("film")
            if chosen is None:
                return None
            params["entities"] = chosen
            if family == "director":
                prompt = say(["Who directed {f}?", "Who is the director of the film {f}?", "Name the director of {f}."], f=chosen[0])
            elif family == "director_birthplace":
                prompt = say(["In which city was the director of {f} born?", "Where was the person who directed {f} born?", "What is the birthplace of the director of {f}?"], f=chosen[0])
            else:
                prompt = say(["In which country is the studio that produced {f} based?", "The film {f} was produced by a studio in which country?", "Which country is the production company of {f} located in?"], f=chosen[0])
            return TaskDraft(family, prompt, params, ["get_neighbors"], chosen)

        if family == "attribute":
            kind, attribute = rng.choice(sorted(ATTRIBUTE_PROMPTS))
            chosen = pick(kind)
            if chosen is None:
                return None
            params.update(entities=chosen, attribute=attribute)
            return TaskDraft(family, say(ATTRIBUTE_PROMPTS[kind, attribute], e=chosen[0]), params, ["get_entity_info"], chosen)

        if family in ("employees", "oldest_employee", "shared_alumni"):

            def staffed(c: str) -> bool:
                staff = w.many(c, "works_at", "in")
                years = sorted(w.attrs[p]["born"] for p in staff)
                return len(staff) >= 2 and years[0] != years[1] and years[-1] != years[-2]

            chosen = pick("company", staffed)
            if chosen is None:
                return None
            c = chosen[0]
            params["entities"] = chosen
            if family == "employees":
                prompt = say(["Who works at {c}?", "List the people employed by {c}.", "Which people work for {c}?"], c=c)
                return TaskDraft(family, prompt, params, ["get_neighbors"], chosen)
            if family == "oldest_employee":
                params["extreme"] = rng.choice(["oldest", "youngest"])
                prompt = say(["Who is the {x} person working at {c}?", "Among the employees of {c}, who is the {x}?", "Find the {x} employee of {c}."], c=c, x=params["extreme"])
                return TaskDraft(family, prompt, params, ["get_neighbors", "get_entity_info"], chosen)
            university = w.one(rng.choice(w.many(c, "works_at", "in")), "studied_at")
            if len(w.many(university, "studied_at", "in")) > LIST_CAP:
                return None
            params["university"] = university
            prompt = say(["How many employees of {c} studied at {u}? Name them.", "Which people working at {c} are alumni of {u}, and how many are there?"], c=c, u=university)
            return TaskDraft(family, prompt, params, ["get_neighbors"], [c, university])

        if family == "connection":
            # Only pairs the entity types leave open (works at or founded a company; directed or acted in a
            # film), and linked one way only, so the relation must be read from the graph.
            person = pick("person")
            if person is None:
                return None
            a = person[0]
            options = [(b, r) for r in CONNECTIONS for b in w.many(a, r, "in" if r == "founded_by" else "out")]
            options = [(b, r) for b, r in options if sum(b == other for other, _ in options) == 1]
            if not options:
                return None
            b, relation = rng.choice(options)
            params.update(entities=[a, b], relation=relation)
            prompt = say(["What is the connection between {a} and {b}?", "How is {a} related to {b}?", "What links {a} to {b}?"], a=a, b=b)
            return TaskDraft(family, prompt, params, ["list_relations"], [a, b])

        if family == "search_director":

            def keyword(film: str) -> str | None:
                words = [x for x in normalise(film).split() if len(x) >= 5]
                unique = [x for x in words if sum(x in n for n in w.norm.values()) == 1]
                return rng.choice(unique) if unique else None

            chosen = pick("film", lambda f: keyword(f) is not None)
            if chosen is None:
                return None
            word = keyword(chosen[0]).capitalize()
            params.update(entities=chosen, word=word)
            prompt = say(["Who directed the film with '{x}' in its title?", "I only remember that a film's title contains the word '{x}'. Who directed it?", "There is a film called something with '{x}'. Who is its director?"], x=word)
            return TaskDraft(family, prompt, params, ["search_entities", "get_neighbors"], [word])

        if family == "latest_film_director":

            def several(p: str) -> bool:
                years = sorted(w.attrs[f]["year"] for f in w.many(p, "acted_in"))
                return len(years) >= 2 and years[-1] != years[-2]

            chosen = pick("person", several)
            if chosen is None:
                return None
            params["entities"] = chosen
            prompt = say(["{p} acted in several films. Who directed the most recent one?", "Who directed the latest film that {p} appeared in?", "Find the newest film {p} acted in and tell me its director."], p=chosen[0])
            return TaskDraft(family, prompt, params, ["get_neighbors", "get_entity_info"], chosen)

        if family == "birthplaces":
            chosen = pick("person", k=rng.randint(2, 3))
            if chosen is None:
                return None
            params["entities"] = chosen
            prompt = say(["In which cities were {p} born?", "Where were {p} born?", "Tell me the birthplace of each of {p}."], p=_join(chosen))
            return TaskDraft(family, prompt, params, ["get_neighbors"], chosen)

        if family == "spouse_employer":
            chosen = pick("person", lambda p: w.one(p, "married_to") is not None)
            if chosen is None:
                return None
            params["entities"] = chosen
            prompt = say(["Which company does the spouse of {p} work for?", "Where does {p}'s spouse work?", "{p} is married. Who employs their spouse?"], p=chosen[0])
            return TaskDraft(family, prompt, params, ["get_neighbors"], chosen)

        raise ValueError(f"knowledge_graph: no task family {family!r}")

    # --- oracle and verifier -----------------------------------------------------------------------------

    def _solve(self, task: Task) -> Generator[OracleStep, list[Any], Answer]:
        p, family = task.params, task.params["family"]
        entities = p.get("entities", [])

        def hop(entity: str, relation: str, direction: str = "out") -> tuple[str, dict[str, str]]:
            return ("get_neighbors", {"entity": entity, "relation": relation, "direction": direction})

        if family == "hq":
            c = entities[0]
            [r] = yield OracleStep(f"A company's city is its located_in edge; I follow it from {c}.", [hop(c, "located_in")])
            return Answer(f"{c} is headquartered in {r['results'][0]}.")
        if family == "employer":
            person = entities[0]
            [r] = yield OracleStep(f"I follow the works_at edge of {person}.", [hop(person, "works_at")])
            return Answer(f"{person} works for {r['results'][0]}.")
        if family == "director":
            film = entities[0]
            [r] = yield OracleStep(f"A person directed a film, so the director is an incoming directed edge of {film}.", [hop(film, "directed", "in")])
            return Answer(f"{film} was directed by {r['results'][0]}.")
        if family == "attribute":
            e = entities[0]
            [info] = yield OracleStep(f"The {p['attribute']} is an attribute of {e}.", [("get_entity_info", {"entity": e})])
            return Answer(ATTRIBUTE_ANSWERS[p["attribute"]].format(e=e, v=info[p["attribute"]]))
        if family == "employees":
            c = entities[0]
            [r] = yield OracleStep(f"The people who work at {c} have works_at edges into it: direction in.", [hop(c, "works_at", "in")])
            return Answer(f"The people who work at {c} are {_join(r['results'])}.")
        if family == "connection":
            a, b = entities
            [r] = yield OracleStep(f"I list the edges of {a} and look for {b} among them.", [("list_relations", {"entity": a})])
            relation = next(rel for d in ("out", "in") for rel, names in r[d].items() if b in names)
            return Answer(CONNECTIONS[relation].format(a=a, b=b))
        if family == "search_director":
            word = p["word"]
            [found] = yield OracleStep(f"I only have part of the title, so I search for '{word}' first.", [("search_entities", {"query": word})])
            film = next(m["name"] for m in found["matches"] if m["type"] == "film" and word.lower() in normalise(m["name"]).split())
            [r] = yield OracleStep(f"The film is {film}; its director has an incoming directed edge.", [hop(film, "directed", "in")])
            return Answer(f"The film with '{word}' in its title is {film}, directed by {r['results'][0]}.")
        if family == "oldest_employee":
            c, extreme = entities[0], p["extreme"]
            [staff] = yield OracleStep(f"First the people who work at {c}, then their birth years.", [hop(c, "works_at", "in")])
            infos = yield OracleStep(f"I compare the birth years of the {len(staff['results'])} employees.", [("get_entity_info", {"entity": x}) for x in staff["results"]])
            chooser = min if extreme == "oldest" else max
            best = chooser(infos, key=lambda i: i["born"])
            return Answer(f"The {extreme} employee of {c} is {best['name']}, born in {best['born']}.")
        if family == "latest_film_director":
            person = entities[0]
            [films] = yield OracleStep(f"First the films {person} acted in, then their years.", [hop(person, "acted_in")])
            infos = yield OracleStep("I compare the release years.", [("get_entity_info", {"entity": f}) for f in films["results"]])
            latest = max(infos, key=lambda i: i["year"])
            [r] = yield OracleStep(f"The most recent is {latest['name']} ({latest['year']}); now its director.", [hop(latest["name"], "directed", "in")])
            return Answer(f"The most recent film {person} acted in is {latest['name']} ({latest['year']}), directed by {r['results'][0]}.")
        if family == "hq_many":
            results = yield OracleStep(f"I look up the located_in edge of the {len(entities)} companies at once.", [hop(c, "located_in") for c in entities])
            return Answer("; ".join(f"{r['name']} is in {r['results'][0]}" for r in results) + ".")
        if family == "birthplaces":
            results = yield OracleStep(f"I look up the born_in edge of the {len(entities)} people at once.", [hop(x, "born_in") for x in entities])
            return Answer("; ".join(f"{r['name']} was born in {r['results'][0]}" for r in results) + ".")
        if family == "founding_years":
            infos = yield OracleStep(f"The founding years are attributes; I fetch the {len(entities)} companies at once.", [("get_entity_info", {"entity": c}) for c in entities])
            return Answer("; ".join(f"{i['name']} was founded in {i['founded']}" for i in infos) + ".")
        if family == "shared_alumni":
            c, u = entities[0], p["university"]
            staff, alumni = yield OracleStep(f"I need the employees of {c} and the alumni of {u}; both lists at once, then their overlap.", [hop(c, "works_at", "in"), hop(u, "studied_at", "in")])
            common = [x for x in staff["results"] if x in alumni["results"]]
            return Answer(f"{len(common)} {'employee' if len(common) == 1 else 'employees'} of {c} studied at {u}: {_join(common)}.")
        if family in ("founder_school", "director_birthplace", "employer_city", "spouse_employer", "studio_country"):
            chain = {
                "founder_school": [("founded_by", "out", "founder"), ("studied_at", "out", "university")],
                "director_birthplace": [("directed", "in", "director"), ("born_in", "out", "birthplace")],
                "employer_city": [("works_at", "out", "employer"), ("located_in", "out", "city")],
                "spouse_employer": [("married_to", "out", "spouse"), ("works_at", "out", "employer")],
                "studio_country": [("produced_by", "out", "studio"), ("located_in", "out", "city"), ("located_in", "out", "country")],
            }[family]
            path = [entities[0]]
            for i, (relation, direction, role) in enumerate(chain):
                if i == 0:
                    think = f"First I need the {role} of {path[-1]}: its {relation} edge ({direction})."
                else:
                    think = f"The {chain[i - 1][2]} is {path[-1]}. Now its {relation} edge ({direction}) gives the {role}."
                [r] = yield OracleStep(think, [hop(path[-1], relation, direction)])
                path.append(r["results"][0])
            return Answer(CHAIN_ANSWERS[family].format(*path))
        raise ValueError(f"knowledge_graph: no oracle for family {family!r}")

    def _expected(self) -> tuple[list[str], list[int], set[str]]:
        """What a correct answer states: entity names, numbers, and the context entities it may also name."""
        w, p, family = self._world, self.task.params, self.task.params["family"]
        entities = list(p.get("entities", []))
        if family == "hq":
            return [w.one(entities[0], "located_in")], [], set(entities)
        if family == "employer":
            return [w.one(entities[0], "works_at")], [], set(entities)
        if family == "director":
            return [w.one(entities[0], "directed", "in")], [], set(entities)
        if family == "attribute":
            return [], [w.attrs[entities[0]][p["attribute"]]], set(entities)
        if family == "employees":
            return w.many(entities[0], "works_at", "in"), [], set(entities)
        if family == "search_director":
            return [w.one(entities[0], "directed", "in")], [], set(entities)
        if family == "oldest_employee":
            staff = w.many(entities[0], "works_at", "in")
            chooser = min if p["extreme"] == "oldest" else max
            return [chooser(staff, key=lambda x: w.attrs[x]["born"])], [], set(entities)
        if family == "latest_film_director":
            latest = max(w.many(entities[0], "acted_in"), key=lambda f: w.attrs[f]["year"])
            return [w.one(latest, "directed", "in")], [], {entities[0], latest}
        if family == "hq_many":
            return [w.one(c, "located_in") for c in entities], [], set(entities)
        if family == "birthplaces":
            return [w.one(x, "born_in") for x in entities], [], set(entities)
        if family == "founding_years":
            return [], [w.attrs[c]["founded"] for c in entities], set(entities)
        if family == "shared_alumni":
            alumni = set(w.many(p["university"], "studied_at", "in"))
            common = [x for x in w.many(entities[0], "works_at", "in") if x in alumni]
            return common, [len(common)], {entities[0], p["university"]}
        chain = {
            "founder_school": [("founded_by", "out"), ("studied_at", "out")],
            "director_birthplace": [("directed", "in"), ("born_in", "out")],
            "employer_city": [("works_at", "out"), ("located_in", "out")],
            "spouse_employer": [("married_to", "out"), ("works_at", "out")],
            "studio_country": [("produced_by", "out"), ("located_in", "out"), ("located_in", "out")],
        }[family]
        path = [entities[0]]
        for relation, direction in chain:
            path.append(w.one(path[-1], relation, direction))
        return [path[-1]], [], set(path[:-1])

    def _verify(self, answer: str | None) -> float:
        if not answer:
            return 0.0
        answer = _THOUSANDS.sub("", answer)
        family = self.task.params["family"]
        if family == "connection":
            return self._verify_connection(answer)
        names, numbers, context = self._expected()
        if any(name is None for name in names):
            raise ValueError(f"knowledge_graph: task {self.task.id} has no answer in its world")
        text = f" {normalise(answer)} "
        # Naming many candidate entities (beyond the question's own and the chain walked to the answer)
        # is guessing, not answering: it scores 0. Likewise for listing many numbers.
        named = _names_in(text) - context
        if len(named) > 2 * max(1, len(set(names))):
            return 0.0
        if _count_numbers(answer) > 2 * len(numbers) + 3:
            return 0.0
        # Rivals: other entities of the asked-for type, and (for attributes) other numbers with as many
        # digits as an asked-for value - "1990 or 1991", "Varsk, or maybe Tolbridge".
        kinds = {KIND[name] for name in names}
        rivals = sum(1 for name in named if name not in names and KIND[name] in kinds)
        if family in NUMBER_FAMILIES:
            wanted = {normalise(v) for v in numbers}
            digits = {len(v) for v in wanted}
            rivals += sum(1 for word in set(text.split()) if word.isdigit() and len(word) in digits and word not in wanted)
        values = [*names, *numbers]
        if not values:
            return 0.0
        share = share_mentioned(answer, values)
        if family not in LIST_FAMILIES:
            return 0.0 if rivals else share  # a hedge between candidates is not an answer
        return share * len(values) / (len(values) + rivals)  # each wrong member costs like a missing one

    def _verify_connection(self, answer: str) -> float:
        """The answer must name both entities, state the relation in a whole word that is not negated, and
        not also state its alternative (naming both is a guess)."""
        p = self.task.params
        a, b = p["entities"]
        text = f" {normalise(answer)} "
        if f" {self._world.norm[a]} " not in text or f" {self._world.norm[b]} " not in text:
            return 0.0
        if len(_names_in(text) - {a, b}) > 2:
            return 0.0
        words = text.split()

        def states(relation: str) -> bool:
            return any(
                word in RELATION_WORDS[relation] and not NEGATIONS.intersection(words[max(0, i - NEGATION_REACH) : i])
                for i, word in enumerate(words)
            )

        return float(states(p["relation"]) and not states(ALTERNATIVE[p["relation"]]))
