"""The knowledge graph's task families: for each, how a question is drawn from a world, how the expert walks
the graph to answer it, and what a correct answer states. The graph is read-only: every task is a question."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from environments.answers import normalise
from environments.base import Answer, OracleStep
from environments.families import Drawn, Oracle, TaskFamily, Wording
from environments.knowledge_graph.phrasings import PHRASINGS
from environments.knowledge_graph.scoring import Link, Named
from environments.knowledge_graph.world import LIST_CAP, Graph, _World

ATTRIBUTES = sorted(PHRASINGS["attribute"])  # (entity type, attribute) pairs a question may ask about
ATTRIBUTE_ANSWERS = {"founded": "{e} was founded in {v}.", "population": "{e} has a population of {v}.", "students": "{e} has {v} students.", "year": "{e} was released in {v}.", "born": "{e} was born in {v}."}
# The connection family: the relations a person-company or person-film pair leaves open, and the answer
# sentence for each (founded_by runs from the company, so it is read backwards).
CONNECTIONS = {"works_at": "{a} works at {b}.", "founded_by": "{a} founded {b}.", "directed": "{a} directed {b}.", "acted_in": "{a} acted in {b}."}


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def hop(entity: str, relation: str, direction: str = "out") -> tuple[str, dict[str, str]]:
    return ("get_neighbors", {"entity": entity, "relation": relation, "direction": direction})


def one(kind: str, fits: Callable[[_World, str], bool] | None = None) -> Callable[[random.Random, Graph], Drawn | None]:
    """A draw of a question about one entity of ``kind`` (that ``fits`` the world)."""

    def draw(rng: random.Random, graph: Graph) -> Drawn | None:
        chosen = graph.pick(rng, kind, lambda name: fits is None or fits(graph.world, name))
        return None if chosen is None else ({"entities": chosen}, chosen)

    return draw


def several(kind: str, count: Callable[[random.Random], int]) -> Callable[[random.Random, Graph], Drawn | None]:
    """A draw of a question about ``count(rng)`` entities of ``kind``, written as prose in the prompt."""

    def draw(rng: random.Random, graph: Graph) -> Drawn | None:
        chosen = graph.pick(rng, kind, k=count(rng))
        return None if chosen is None else ({"entities": chosen}, chosen, Wording({"names": _join(chosen)}))

    return draw


def staffed(w: _World, company: str) -> bool:
    """Two or more employees, whose oldest and youngest are each one person."""
    staff = w.many(company, "works_at", "in")
    years = sorted(w.attrs[p]["born"] for p in staff)
    return len(staff) >= 2 and years[0] != years[1] and years[-1] != years[-2]


def in_several_films(w: _World, person: str) -> bool:
    """Acted in two films or more, the latest of them one film."""
    years = sorted(w.attrs[f]["year"] for f in w.many(person, "acted_in"))
    return len(years) >= 2 and years[-1] != years[-2]


def married(w: _World, person: str) -> bool:
    return w.one(person, "married_to") is not None


# --- single: one hop ------------------------------------------------------------------------------------------

def solve_hq(env: Any, p: dict) -> Oracle:
    c = p["entities"][0]
    [r] = yield OracleStep(f"A company's city is its located_in edge; I follow it from {c}.", [hop(c, "located_in")])
    return Answer(f"{c} is headquartered in {r['results'][0]}.")


def expect_hq(w: _World, p: dict) -> Named:
    return Named([w.one(p["entities"][0], "located_in")], [], set(p["entities"]))


def solve_employer(env: Any, p: dict) -> Oracle:
    person = p["entities"][0]
    [r] = yield OracleStep(f"I follow the works_at edge of {person}.", [hop(person, "works_at")])
    return Answer(f"{person} works for {r['results'][0]}.")


def expect_employer(w: _World, p: dict) -> Named:
    return Named([w.one(p["entities"][0], "works_at")], [], set(p["entities"]))


def solve_director(env: Any, p: dict) -> Oracle:
    film = p["entities"][0]
    [r] = yield OracleStep(f"A person directed a film, so the director is an incoming directed edge of {film}.", [hop(film, "directed", "in")])
    return Answer(f"{film} was directed by {r['results'][0]}.")


def expect_director(w: _World, p: dict) -> Named:
    return Named([w.one(p["entities"][0], "directed", "in")], [], set(p["entities"]))


def draw_attribute(rng: random.Random, graph: Graph) -> Drawn | None:
    kind, attribute = rng.choice(ATTRIBUTES)
    chosen = graph.pick(rng, kind)
    if chosen is None:
        return None
    return {"entities": chosen, "attribute": attribute}, chosen, Wording(variant=(kind, attribute))


def solve_attribute(env: Any, p: dict) -> Oracle:
    e = p["entities"][0]
    [info] = yield OracleStep(f"The {p['attribute']} is an attribute of {e}.", [("get_entity_info", {"entity": e})])
    return Answer(ATTRIBUTE_ANSWERS[p["attribute"]].format(e=e, v=info[p["attribute"]]))


def expect_attribute(w: _World, p: dict) -> Named:
    return Named([], [w.attrs[p["entities"][0]][p["attribute"]]], set(p["entities"]), numeric=True)


def solve_employees(env: Any, p: dict) -> Oracle:
    c = p["entities"][0]
    [r] = yield OracleStep(f"The people who work at {c} have works_at edges into it: direction in.", [hop(c, "works_at", "in")])
    return Answer(f"The people who work at {c} are {_join(r['results'])}.")


def expect_employees(w: _World, p: dict) -> Named:
    return Named(w.many(p["entities"][0], "works_at", "in"), [], set(p["entities"]), listed=True)


def draw_connection(rng: random.Random, graph: Graph) -> Drawn | None:
    # Only pairs the entity types leave open (works at or founded a company; directed or acted in a film), and
    # linked one way only, so the relation must be read from the graph.
    person = graph.pick(rng, "person")
    if person is None:
        return None
    a = person[0]
    options = [(b, r) for r in CONNECTIONS for b in graph.world.many(a, r, "in" if r == "founded_by" else "out")]
    options = [(b, r) for b, r in options if sum(b == other for other, _ in options) == 1]
    if not options:
        return None
    b, relation = rng.choice(options)
    return {"entities": [a, b], "relation": relation}, [a, b]


def solve_connection(env: Any, p: dict) -> Oracle:
    a, b = p["entities"]
    [r] = yield OracleStep(f"I list the edges of {a} and look for {b} among them.", [("list_relations", {"entity": a})])
    relation = next(rel for d in ("out", "in") for rel, names in r[d].items() if b in names)
    return Answer(CONNECTIONS[relation].format(a=a, b=b))


def expect_connection(w: _World, p: dict) -> Link:
    return Link(*p["entities"], p["relation"])


# --- multi-step: one call after another -----------------------------------------------------------------------

def draw_search_director(rng: random.Random, graph: Graph) -> Drawn | None:
    w = graph.world

    def keyword(film: str) -> str | None:
        words = [x for x in normalise(film).split() if len(x) >= 5]
        unique = [x for x in words if sum(x in n for n in w.norm.values()) == 1]
        return rng.choice(unique) if unique else None

    chosen = graph.pick(rng, "film", lambda f: keyword(f) is not None)
    if chosen is None:
        return None
    word = keyword(chosen[0]).capitalize()
    return {"entities": chosen, "word": word}, [word]


def solve_search_director(env: Any, p: dict) -> Oracle:
    word = p["word"]
    [found] = yield OracleStep(f"I only have part of the title, so I search for '{word}' first.", [("search_entities", {"query": word})])
    film = next(m["name"] for m in found["matches"] if m["type"] == "film" and word.lower() in normalise(m["name"]).split())
    [r] = yield OracleStep(f"The film is {film}; its director has an incoming directed edge.", [hop(film, "directed", "in")])
    return Answer(f"The film with '{word}' in its title is {film}, directed by {r['results'][0]}.")


def draw_oldest_employee(rng: random.Random, graph: Graph) -> Drawn | None:
    chosen = graph.pick(rng, "company", lambda c: staffed(graph.world, c))
    if chosen is None:
        return None
    return {"entities": chosen, "extreme": rng.choice(["oldest", "youngest"])}, chosen


def solve_oldest_employee(env: Any, p: dict) -> Oracle:
    c, extreme = p["entities"][0], p["extreme"]
    [staff] = yield OracleStep(f"First the people who work at {c}, then their birth years.", [hop(c, "works_at", "in")])
    infos = yield OracleStep(f"I compare the birth years of the {len(staff['results'])} employees.", [("get_entity_info", {"entity": x}) for x in staff["results"]])
    chooser = min if extreme == "oldest" else max
    best = chooser(infos, key=lambda i: i["born"])
    return Answer(f"The {extreme} employee of {c} is {best['name']}, born in {best['born']}.")


def expect_oldest_employee(w: _World, p: dict) -> Named:
    staff = w.many(p["entities"][0], "works_at", "in")
    chooser = min if p["extreme"] == "oldest" else max
    return Named([chooser(staff, key=lambda x: w.attrs[x]["born"])], [], set(p["entities"]))


def solve_latest_film_director(env: Any, p: dict) -> Oracle:
    person = p["entities"][0]
    [films] = yield OracleStep(f"First the films {person} acted in, then their years.", [hop(person, "acted_in")])
    infos = yield OracleStep("I compare the release years.", [("get_entity_info", {"entity": f}) for f in films["results"]])
    latest = max(infos, key=lambda i: i["year"])
    [r] = yield OracleStep(f"The most recent is {latest['name']} ({latest['year']}); now its director.", [hop(latest["name"], "directed", "in")])
    return Answer(f"The most recent film {person} acted in is {latest['name']} ({latest['year']}), directed by {r['results'][0]}.")


def expect_latest_film_director(w: _World, p: dict) -> Named:
    latest = max(w.many(p["entities"][0], "acted_in"), key=lambda f: w.attrs[f]["year"])
    return Named([w.one(latest, "directed", "in")], [], {p["entities"][0], latest})


# --- parallel: independent calls, all at once -----------------------------------------------------------------

def solve_hq_many(env: Any, p: dict) -> Oracle:
    results = yield OracleStep(f"I look up the located_in edge of the {len(p['entities'])} companies at once.", [hop(c, "located_in") for c in p["entities"]])
    return Answer("; ".join(f"{r['name']} is in {r['results'][0]}" for r in results) + ".")


def expect_hq_many(w: _World, p: dict) -> Named:
    return Named([w.one(c, "located_in") for c in p["entities"]], [], set(p["entities"]), listed=True)


def solve_birthplaces(env: Any, p: dict) -> Oracle:
    results = yield OracleStep(f"I look up the born_in edge of the {len(p['entities'])} people at once.", [hop(x, "born_in") for x in p["entities"]])
    return Answer("; ".join(f"{r['name']} was born in {r['results'][0]}" for r in results) + ".")


def expect_birthplaces(w: _World, p: dict) -> Named:
    return Named([w.one(x, "born_in") for x in p["entities"]], [], set(p["entities"]), listed=True)


def solve_founding_years(env: Any, p: dict) -> Oracle:
    infos = yield OracleStep(f"The founding years are attributes; I fetch the {len(p['entities'])} companies at once.", [("get_entity_info", {"entity": c}) for c in p["entities"]])
    return Answer("; ".join(f"{i['name']} was founded in {i['founded']}" for i in infos) + ".")


def expect_founding_years(w: _World, p: dict) -> Named:
    return Named([], [w.attrs[c]["founded"] for c in p["entities"]], set(p["entities"]), listed=True, numeric=True)


def draw_shared_alumni(rng: random.Random, graph: Graph) -> Drawn | None:
    w = graph.world
    chosen = graph.pick(rng, "company", lambda c: staffed(w, c))
    if chosen is None:
        return None
    c = chosen[0]
    university = w.one(rng.choice(w.many(c, "works_at", "in")), "studied_at")
    if len(w.many(university, "studied_at", "in")) > LIST_CAP:
        return None
    return {"entities": chosen, "university": university}, [c, university]


def solve_shared_alumni(env: Any, p: dict) -> Oracle:
    c, u = p["entities"][0], p["university"]
    staff, alumni = yield OracleStep(f"I need the employees of {c} and the alumni of {u}; both lists at once, then their overlap.", [hop(c, "works_at", "in"), hop(u, "studied_at", "in")])
    common = [x for x in staff["results"] if x in alumni["results"]]
    return Answer(f"{len(common)} {'employee' if len(common) == 1 else 'employees'} of {c} studied at {u}: {_join(common)}.")


def expect_shared_alumni(w: _World, p: dict) -> Named:
    alumni = set(w.many(p["university"], "studied_at", "in"))
    common = [x for x in w.many(p["entities"][0], "works_at", "in") if x in alumni]
    return Named(common, [len(common)], {p["entities"][0], p["university"]}, listed=True)


# --- nested: a chain of hops, each from the entity the last one found -----------------------------------------

Links = tuple[tuple[str, str, str], ...]  # (relation, direction, role of the entity it leads to)


def solve_chain(links: Links, sentence: str) -> Callable[[Any, dict], Oracle]:
    def solve(env: Any, p: dict) -> Oracle:
        path = [p["entities"][0]]
        for i, (relation, direction, role) in enumerate(links):
            if i == 0:
                think = f"First I need the {role} of {path[-1]}: its {relation} edge ({direction})."
            else:
                think = f"The {links[i - 1][2]} is {path[-1]}. Now its {relation} edge ({direction}) gives the {role}."
            [r] = yield OracleStep(think, [hop(path[-1], relation, direction)])
            path.append(r["results"][0])
        return Answer(sentence.format(*path))

    return solve


def expect_chain(links: Links) -> Callable[[_World, dict], Named]:
    def expected(w: _World, p: dict) -> Named:
        path = [p["entities"][0]]
        for relation, direction, _ in links:
            path.append(w.one(path[-1], relation, direction))
        return Named([path[-1]], [], set(path[:-1]))

    return expected


# --- the registry: the order is the draw order within each difficulty -----------------------------------------

def _family(name: str, difficulties: tuple[str, ...], tools: tuple[str, ...], draw: Callable[..., Drawn | None], solve: Callable[..., Oracle],
            expected: Callable[..., Named | Link]) -> TaskFamily:
    """Every expert starts with the first of its tools, which a recovery task makes fail once."""
    return TaskFamily(name, difficulties, PHRASINGS[name], tools, draw, solve, expected, fail_first=tools[0])


def _chain(name: str, difficulties: tuple[str, ...], draw: Callable[..., Drawn | None], links: Links, sentence: str) -> TaskFamily:
    return _family(name, difficulties, ("get_neighbors",), draw, solve_chain(links, sentence), expect_chain(links))


HOPS, INFO = ("get_neighbors",), ("get_neighbors", "get_entity_info")
FAMILIES = (
    _family("hq", ("single", "recovery"), HOPS, one("company"), solve_hq, expect_hq),
    _family("employer", ("single",), HOPS, one("person"), solve_employer, expect_employer),
    _family("director", ("single",), HOPS, one("film"), solve_director, expect_director),
    _family("attribute", ("single", "recovery"), ("get_entity_info",), draw_attribute, solve_attribute, expect_attribute),
    _family("employees", ("single",), HOPS, one("company", staffed), solve_employees, expect_employees),
    _family("search_director", ("multi_step", "recovery"), ("search_entities", "get_neighbors"), draw_search_director, solve_search_director, expect_director),
    _family("oldest_employee", ("multi_step", "recovery"), INFO, draw_oldest_employee, solve_oldest_employee, expect_oldest_employee),
    _family("latest_film_director", ("multi_step",), INFO, one("person", in_several_films), solve_latest_film_director, expect_latest_film_director),
    _family("hq_many", ("parallel", "recovery"), HOPS, several("company", lambda rng: rng.randint(2, 4)), solve_hq_many, expect_hq_many),
    _family("birthplaces", ("parallel",), HOPS, several("person", lambda rng: rng.randint(2, 3)), solve_birthplaces, expect_birthplaces),
    _family("founding_years", ("parallel",), ("get_entity_info",), several("company", lambda rng: min(rng.randint(2, 4), 3)), solve_founding_years, expect_founding_years),
    _family("shared_alumni", ("parallel",), HOPS, draw_shared_alumni, solve_shared_alumni, expect_shared_alumni),
    _chain("founder_school", ("nested",), one("company"), (("founded_by", "out", "founder"), ("studied_at", "out", "university")), "{0} was founded by {1}, who studied at {2}."),
    _chain("director_birthplace", ("nested", "recovery"), one("film"), (("directed", "in", "director"), ("born_in", "out", "birthplace")), "{0} was directed by {1}, who was born in {2}."),
    _chain("employer_city", ("nested", "recovery"), one("person"), (("works_at", "out", "employer"), ("located_in", "out", "city")), "{0} works for {1}, which is headquartered in {2}."),
    _chain("studio_country", ("nested",), one("film"), (("produced_by", "out", "studio"), ("located_in", "out", "city"), ("located_in", "out", "country")),
           "{0} was produced by {1}, based in {2}, which is in {3}."),
    _chain("spouse_employer", ("nested",), one("person", married), (("married_to", "out", "spouse"), ("works_at", "out", "employer")), "{0} is married to {1}, who works for {2}."),
    # last: a single family, but the recovery families draw it after employer_city
    _family("connection", ("single", "recovery"), ("list_relations",), draw_connection, solve_connection, expect_connection),
)
