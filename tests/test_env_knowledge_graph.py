"""The knowledge_graph environment: its world, tools, errors, verifier, and whole episodes."""

from __future__ import annotations

import copy
import json
import time

import pytest

import environments.knowledge_graph.env as kg_env
import environments.knowledge_graph.families as kg_families
import environments.knowledge_graph.world as kg
from environments.answers import normalise
from environments.base import held_out
from environments.episode import Episode
from environments.knowledge_graph import KnowledgeGraphEnv
from environments.knowledge_graph.world import _build_world
from environments.record import DIFFICULTIES, Task
from hermes_train.rewards import atropos_reward

SEED = 7


def make_task(family: str, difficulty: str = "single", **params) -> Task:
    return Task(
        env="knowledge_graph", split="train", difficulty=difficulty, seed=0, family=family, prompt=f"a {family} question",
        params={"world_seed": SEED, "family": family, **params}, relevant_tools=["get_neighbors", "get_entity_info", "list_relations", "search_entities"],
        relevant_entities=list(params.get("entities", [])),
    )


def env_for(task: Task) -> KnowledgeGraphEnv:
    env = KnowledgeGraphEnv()
    env.reset(task)
    return env


def scored(task: Task, answer: str | None) -> float:
    return env_for(task)._verify(answer)


def call_text(name: str, arguments: dict) -> str:
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


@pytest.fixture(scope="module")
def world():
    return _build_world(SEED)


def first(world, kind: str, fits=lambda name: True) -> str:
    return next(x for x in world.by_type[kind] if fits(x))


# --- the world -------------------------------------------------------------------------------------------


def test_name_pools_never_contain_one_another():
    """No entity name is a word sequence inside another, so mentioning one never mentions another."""
    names = kg.COUNTRIES + kg.CITIES + kg.UNIVERSITIES + kg.ALL_COMPANIES + kg.FILMS + kg.PEOPLE
    assert len(set(names)) == len(names)
    padded = {n: f" {normalise(n)} " for n in names}
    assert not [(a, b) for a in names for b in names if a != b and padded[a] in padded[b]]
    for pool in (kg.PEOPLE, kg.ALL_COMPANIES, kg.FILMS, kg.CITIES, kg.UNIVERSITIES, kg.COUNTRIES):
        assert held_out(pool), "every pool keeps some names for novel test tasks"


@pytest.mark.parametrize("seed", [0, 1, SEED, 12345])
def test_worlds_are_consistent(seed):
    w = _build_world.__wrapped__(seed)  # uncached: built afresh
    assert 60 <= len(w.types) <= 150
    for person in w.by_type["person"]:
        for relation in ("works_at", "born_in", "studied_at"):
            assert len(w.many(person, relation)) == 1, (person, relation)
        assert len(w.many(person, "married_to")) <= 1
        for spouse in w.many(person, "married_to"):
            assert w.many(spouse, "married_to") == [person]
    for company in w.by_type["company"]:
        assert len(w.many(company, "located_in")) == 1 and len(w.many(company, "founded_by")) == 1
        assert len(w.many(company, "works_at", "in")) <= kg.MAX_EMPLOYEES
        assert w.attrs[company]["founded"] >= w.attrs[w.one(company, "founded_by")]["born"] + 24
        seen, current = {company}, company
        while (current := w.one(current, "subsidiary_of")) is not None:  # ownership never loops
            assert current not in seen
            seen.add(current)
    for city in w.by_type["city"]:
        assert w.types[w.one(city, "located_in")] == "country"
    for film in w.by_type["film"]:
        director = w.one(film, "directed", "in")
        assert w.attrs[film]["year"] >= w.attrs[director]["born"] + 25
        assert director not in w.many(film, "acted_in", "in")
        assert w.one(film, "produced_by") in kg.STUDIOS
    for name, edges in w.out.items():  # both indexes agree
        for relation, others in edges.items():
            subjects, objects = kg.RELATIONS[relation]
            assert w.types[name] in subjects
            for other in others:
                assert w.types[other] in objects and name in w.inn[other][relation]


def test_the_same_seed_builds_the_same_world():
    a, b = _build_world.__wrapped__(SEED), _build_world.__wrapped__(SEED)
    assert (a.types, a.attrs, a.out, a.inn) == (b.types, b.attrs, b.out, b.inn)
    c = _build_world.__wrapped__(SEED + 1)
    assert (a.out, a.attrs) != (c.out, c.attrs)


# --- tools -----------------------------------------------------------------------------------------------


def test_tools_read_the_graph(world):
    company = first(world, "company", lambda c: len(world.many(c, "works_at", "in")) >= 2)
    env = env_for(make_task("hq", entities=[company]))
    city = world.one(company, "located_in")
    assert env.get_neighbors(entity=company, relation="located_in") == {"name": company, "relation": "located_in", "direction": "out", "results": [city]}
    staff = env.get_neighbors(entity=company, relation="works_at", direction="in")["results"]
    assert sorted(staff) == sorted(world.many(company, "works_at", "in")) and len(staff) >= 2
    assert all(env.get_neighbors(entity=p, relation="works_at")["results"] == [company] for p in staff)
    assert company in env.get_neighbors(entity=city, relation="located_in", direction="in")["results"]
    # names are matched leniently (case, spacing, punctuation)
    assert env.get_neighbors(entity=f"  {company.upper()} ", relation="located_in")["name"] == company
    info = env.get_entity_info(entity=company)
    assert info == {"name": company, "type": "company", **world.attrs[company]} and "founded" in info
    relations = env.list_relations(entity=company)
    assert relations["type"] == "company" and relations["out"]["located_in"] == [city]
    assert sorted(relations["in"]["works_at"]) == sorted(staff)
    film = world.by_type["film"][0]
    person = world.one(film, "directed", "in")
    assert film in env.list_relations(entity=person)["out"]["directed"]
    # a married person's spouse appears once, under out
    married = first(world, "person", lambda p: world.one(p, "married_to") is not None)
    shown = env.list_relations(entity=married)
    assert shown["out"]["married_to"] == [world.one(married, "married_to")] and "married_to" not in shown["in"]
    assert all(c.status == "ok" for c in env.record.calls)


def test_search_finds_partial_and_misspelt_names(world):
    env = env_for(make_task("hq", entities=[]))
    film = first(world, "film", lambda f: len(normalise(f).split()) >= 2)
    word = max(normalise(film).split(), key=len)
    found = env.search_entities(query=word.upper())["matches"]
    assert {"name": film, "type": "film"} in found and len(found) <= kg.SEARCH_CAP
    company = world.by_type["company"][0]
    typo = company[:-2] + company[-1] + company[-2]  # swapped letters
    assert env.search_entities(query=typo)["matches"][0] == {"name": company, "type": "company"}
    only_cities = env.search_entities(query="a", entity_type="city")
    assert all(m["type"] == "city" for m in only_cities["matches"])
    assert env.search_entities(query="zzqxv")["matches"] == []
    assert "hint" in env.search_entities(query="zzqxv")


def test_observations_are_capped_with_a_marker(world, monkeypatch):
    monkeypatch.setattr(kg_env, "LIST_CAP", 2)
    company = first(world, "company", lambda c: len(world.many(c, "works_at", "in")) >= 3)
    env = env_for(make_task("hq", entities=[company]))
    staff = env.get_neighbors(entity=company, relation="works_at", direction="in")
    assert len(staff["results"]) == 2 and staff["more"] == len(world.many(company, "works_at", "in")) - 2
    relations = env.list_relations(entity=company)
    assert sum(len(v) for d in ("out", "in") for v in relations[d].values()) == 2 and "more" in relations


def test_errors_say_how_to_fix_the_call(world):
    company = world.by_type["company"][0]
    film = world.by_type["film"][0]
    env = env_for(make_task("hq", entities=[company]))
    unknown = env.get_neighbors(entity=company[:-1] + "x", relation="located_in")
    assert "unknown entity" in unknown["error"] and repr(company) in unknown["error"]
    assert "search_entities" in env.get_entity_info(entity="Nobody At All Qqq")["error"]
    bad_relation = env.get_neighbors(entity=company, relation="headquarters")["error"]
    assert "unknown relation" in bad_relation and "located_in" in bad_relation and "works_at" in bad_relation
    backwards = env.get_neighbors(entity=film, relation="directed")["error"]  # a film does not direct
    assert "person -> film" in backwards and "direction 'in'" in backwards
    wrong_type = env.get_neighbors(entity=film, relation="born_in")["error"]
    assert "Relations of" in wrong_type and "produced_by" in wrong_type
    assert "'out' or 'in'" in env.get_neighbors(entity=company, relation="located_in", direction="up")["error"]
    assert "entity_type" in env.search_entities(query="x", entity_type="planet")["error"]
    assert "letters" in env.search_entities(query="!!!")["error"]
    assert [c.status for c in env.record.calls] == ["error"] * 8
    # an empty result that exists the other way round says so
    parent = first(world, "company", lambda c: world.many(c, "subsidiary_of", "in") and not world.many(c, "subsidiary_of"))
    hint = env.get_neighbors(entity=parent, relation="subsidiary_of")
    assert hint["results"] == [] and "direction 'in'" in hint["hint"]


def test_the_graph_is_read_only_whatever_the_calls(world):
    """No task changes state; no call, hostile or not, and no edit of an observation changes the world."""
    snapshot = copy.deepcopy((world.types, world.attrs, world.out, world.inn))
    company = world.by_type["company"][0]
    env = env_for(make_task("hq", entities=[company]))
    observation = env.get_neighbors(entity=company, relation="works_at", direction="in")
    observation["results"].append("Intruder")
    env.get_entity_info(entity=company)["founded"] = 1
    env.list_relations(entity=company)["out"]["located_in"].clear()
    for hostile in ["'; DROP TABLE x; --", "A" * 200_000, "\x00\udcff" * 50, "../../etc/passwd", "__import__('os')"]:
        for name in KnowledgeGraphEnv.tool_names():
            schema = next(s for s in KnowledgeGraphEnv.tool_schemas() if s["function"]["name"] == name)
            getattr(env, name)(**{k: hostile for k in schema["function"]["parameters"]["properties"]})
    assert snapshot == (world.types, world.attrs, world.out, world.inn)
    assert all(c.status in ("ok", "error") for c in env.record.calls)
    assert all(len(json.dumps(c.observation)) < 1200 for c in env.record.calls)


def test_tool_calls_are_fast(world):
    company = world.by_type["company"][0]
    env = env_for(make_task("hq", entities=[company]))
    calls = [
        ("get_neighbors", {"entity": company, "relation": "works_at", "direction": "in"}),
        ("get_entity_info", {"entity": company}),
        ("list_relations", {"entity": company}),
        ("search_entities", {"query": company[:5]}),
    ]
    start = time.perf_counter()
    for _ in range(100):
        for name, arguments in calls:
            getattr(env, name)(**arguments)
    per_call = (time.perf_counter() - start) / 400
    assert per_call < 2e-3, f"{per_call * 1e3:.2f} ms per call"


# --- tasks -----------------------------------------------------------------------------------------------


def test_every_family_is_drawn_and_recovery_schedules_the_first_oracle_tool():
    for difficulty in DIFFICULTIES:
        drawn = {t.family for t in KnowledgeGraphEnv.tasks("train", difficulty, 80)}
        assert drawn == {f.split(" ")[0] for f in KnowledgeGraphEnv.families[difficulty]}, difficulty
    for task in KnowledgeGraphEnv.tasks("train", "recovery", 20):
        assert task.params["fail_first"] == [KnowledgeGraphEnv.oracle(task).record.calls[0].name]


def test_novel_test_tasks_ask_about_held_out_entities():
    novel = [t for d in DIFFICULTIES for t in KnowledgeGraphEnv.tasks("test", d, 40) if t.novel]
    assert novel
    for task in novel:
        subject = task.params["entities"][0]
        kind = _build_world(task.params["world_seed"]).types[subject]
        assert subject in held_out(kg.POOLS[kind]), task.id
    for task in KnowledgeGraphEnv.tasks("train", "nested", 40):
        subject = task.params["entities"][0]
        assert subject not in held_out(kg.POOLS[_build_world(task.params["world_seed"]).types[subject]])


def test_parallel_and_multi_step_oracles_have_the_right_shape():
    for task in KnowledgeGraphEnv.tasks("train", "parallel", 15):
        turns = [t for t in KnowledgeGraphEnv.oracle(task).record.turns if t.calls]
        assert len(turns) == 1 and len(turns[0].calls) >= 2, task.family  # independent calls, one turn
    for task in KnowledgeGraphEnv.tasks("train", "nested", 15):
        calls = KnowledgeGraphEnv.oracle(task).record.calls
        assert len(calls) >= 2
        for before, after in zip(calls, calls[1:]):  # each call's output is the next call's argument
            assert after.arguments["entity"] in before.observation["results"]


# --- the verifier ----------------------------------------------------------------------------------------


def test_single_answers_must_name_the_fact(world):
    company = world.by_type["company"][0]
    city = world.one(company, "located_in")
    task = make_task("hq", entities=[company])
    assert scored(task, f"{company} is headquartered in {city}.") == 1.0
    assert scored(task, city.lower() + "!") == 1.0
    wrong = next(c for c in world.by_type["city"] if c != city)
    assert scored(task, f"{company} is in {wrong}.") == 0.0
    assert scored(task, None) == scored(task, "") == 0.0
    # naming a rival city as well is hedging, not answering: 0 (the other environments' rule)
    others = [c for c in world.by_type["city"] if c != city][:2]
    assert scored(task, f"{city}, or maybe {others[0]}") == 0.0
    assert scored(task, f"{city}, {others[0]} or {others[1]}") == 0.0
    # other entities that are not rivals (not cities) may be named
    person = world.by_type["person"][0]
    assert scored(task, f"{company} is headquartered in {city}; {person} works there.") == 1.0


def test_list_answers_get_partial_credit_and_no_credit_for_enumerating(world):
    companies = [c for c in world.by_type["company"] if c in kg.COMPANIES][:3]
    cities = [world.one(c, "located_in") for c in companies]
    task = make_task("hq_many", "parallel", entities=companies)
    full = "; ".join(f"{c} is in {city}" for c, city in zip(companies, cities))
    assert scored(task, full) == 1.0
    assert 0 < scored(task, f"{companies[0]} is in {cities[0]}.") < 1
    assert scored(task, " ".join(world.by_type["city"])) == 0.0  # every city: 0
    company = first(world, "company", lambda c: len(world.many(c, "works_at", "in")) >= 3)
    staff = world.many(company, "works_at", "in")
    task = make_task("employees", entities=[company])
    assert scored(task, f"{staff[0]} and {staff[1]}") == pytest.approx(2 / len(staff))
    assert scored(task, ", ".join(world.by_type["person"])) == 0.0


def test_numbers_are_checked_and_number_lists_score_zero(world):
    company = world.by_type["company"][0]
    year = world.attrs[company]["founded"]
    task = make_task("attribute", entities=[company], attribute="founded")
    assert scored(task, f"{company} was founded in {year}.") == 1.0
    assert scored(task, f"It was founded in {year + 1}.") == 0.0
    assert scored(task, " ".join(str(y) for y in range(year - 3, year + 3))) == 0.0


def test_chain_answers_may_name_the_chain_walked(world):
    film = world.by_type["film"][0]
    studio = world.one(film, "produced_by")
    city = world.one(studio, "located_in")
    country = world.one(city, "located_in")
    task = make_task("studio_country", "nested", entities=[film])
    assert scored(task, f"{film} was produced by {studio}, based in {city}, which is in {country}.") == 1.0
    assert scored(task, country) == 1.0
    assert scored(task, f"{film} was produced by {studio}, based in {city}.") == 0.0  # stopped a hop short
    assert scored(task, " ".join(world.by_type["country"])) == 0.0


def test_aggregation_needs_the_count_and_the_names(world):
    company = first(world, "company", lambda c: len(world.many(c, "works_at", "in")) >= 2)
    staff = world.many(company, "works_at", "in")
    university = world.one(staff[0], "studied_at")
    common = [p for p in staff if world.one(p, "studied_at") == university]
    task = make_task("shared_alumni", "parallel", entities=[company], university=university)
    assert scored(task, f"{len(common)} of them: {', '.join(common)}") == 1.0
    assert scored(task, f"{len(common)}") == pytest.approx(1 / (len(common) + 1))
    assert scored(task, f"{len(common) + 5}: {common[0]}") == pytest.approx(1 / (len(common) + 1))


def test_connection_answers_state_the_relation_in_any_wording(world):
    person = first(world, "person", lambda p: world.many(p, "works_at")[0] not in world.many(p, "founded_by", "in"))
    company = world.one(person, "works_at")
    task = make_task("connection", entities=[person, company], relation="works_at")
    assert scored(task, f"{person} works at {company}.") == 1.0
    assert scored(task, f"{company} employs {person}.") == 1.0
    assert scored(task, f"{person} founded {company}.") == 0.0
    assert scored(task, f"{person} works at or founded {company}.") == 0.0  # both ways: a guess
    assert scored(task, "They are related.") == 0.0


def test_superlative_answers_must_pick_one(world):
    company = first(world, "company", lambda c: len(world.many(c, "works_at", "in")) >= 3)
    staff = world.many(company, "works_at", "in")
    oldest = min(staff, key=lambda p: world.attrs[p]["born"])
    task = make_task("oldest_employee", "multi_step", entities=[company], extreme="oldest")
    assert scored(task, f"The oldest employee of {company} is {oldest}.") == 1.0
    assert scored(task, ", ".join(staff)) == 0.0  # naming every employee is not choosing


# --- whole episodes --------------------------------------------------------------------------------------


def test_a_hand_played_nested_episode(world):
    film = world.by_type["film"][1]
    director = world.one(film, "directed", "in")
    city = world.one(director, "born_in")
    task = make_task("director_birthplace", "nested", entities=[film])
    task.relevant_tools = ["get_neighbors"]
    env = KnowledgeGraphEnv()
    episode = Episode(env, task)
    assert episode.prompt == task.prompt
    first_reply = episode.step(f"<think>\nWho directed it?\n</think>\n{call_text('get_neighbors', {'entity': film, 'relation': 'directed', 'direction': 'in'})}")
    assert first_reply[0]["content"]["results"] == [director]
    second_reply = episode.step(call_text("get_neighbors", {"entity": director, "relation": "born_in"}))
    assert second_reply[0]["content"]["results"] == [city]
    assert episode.step(f"{film} was directed by {director}, who was born in {city}.") == []
    record = episode.record
    assert record.finished and record.task_completion == 1.0
    assert [c.status for c in record.calls] == ["ok", "ok"]
    assert record.min_calls == 2
    reward = atropos_reward(record)
    assert reward.total >= 0.95 and reward.dimensions["efficiency"] == 1.0


def test_a_hand_played_episode_with_a_mistake_and_a_recovery(world):
    film = world.by_type["film"][1]
    director = world.one(film, "directed", "in")
    task = make_task("director", entities=[film])
    env = KnowledgeGraphEnv()
    episode = Episode(env, task)
    wrong = episode.step(call_text("get_neighbors", {"entity": film, "relation": "directed"}))
    assert "direction 'in'" in wrong[0]["content"]["error"]
    episode.step(call_text("get_neighbors", {"entity": film, "relation": "directed", "direction": "in"}))
    episode.step(f"{film} was directed by {director}.")
    record = episode.record
    assert [c.status for c in record.calls] == ["error", "ok"] and record.task_completion == 1.0
    reward = atropos_reward(record)
    assert reward.dimensions["error_recovery"] == pytest.approx(0.3)
    assert reward.dimensions["efficiency"] == pytest.approx(0.5)
    assert reward.dimensions["tool_accuracy"] == 1.0  # refused, not malformed


def test_a_guessing_episode_scores_low(world):
    company = world.by_type["company"][0]
    task = make_task("hq", entities=[company])
    episode = Episode(KnowledgeGraphEnv(), task)
    episode.step(f"{company} is in {', '.join(world.by_type['city'])}.")
    record = episode.record
    assert record.task_completion == 0.0 and atropos_reward(record).total < 0.6


# --- reward holes, closed ----------------------------------------------------------------------------------


def connection_task(world, relation: str):
    """A connection task on the first person-company (or person-film) pair linked by ``relation`` only."""
    for person in world.by_type["person"]:
        linked = world.many(person, relation, "in" if relation == "founded_by" else "out")
        others = [o for r in kg_families.CONNECTIONS if r != relation for o in world.many(person, r, "in" if r == "founded_by" else "out")]
        for other in linked:
            if other not in others:
                return make_task("connection", entities=[person, other], relation=relation), person, other
    raise AssertionError(f"no {relation} pair in world {SEED}")


def test_connection_garbage_containing_a_relation_word_scores_zero(world):
    """The hole: garbage that merely contained "work" scored 1.0 on a works_at connection task."""
    task, person, company = connection_task(world, "works_at")
    assert scored(task, f"{person} works at {company}.") == 1.0
    for garbage in ["work", "work work work", "ktmp) work .__ zx", "I need to work on this.", "works at", "The answer: it is employment."]:
        assert scored(task, garbage) == 0.0, garbage
    # naming only one of the two entities is not stating how they are linked
    assert scored(task, f"{person} works there.") == 0.0
    assert scored(task, f"Somebody works at {company}.") == 0.0


def test_connection_relation_words_must_be_whole_words(world):
    task, person, company = connection_task(world, "works_at")
    for text in [f"{person} and {company}: workshop", f"{person} and {company}: network, homework", f"{person} is an employable fit for {company}"]:
        assert scored(task, text) == 0.0, text
    task, person, company = connection_task(world, "founded_by")
    assert scored(task, f"{person} founded {company}.") == 1.0
    assert scored(task, f"{company} was co-founded by {person}.") == 1.0
    for text in [f"I found {person} and {company} in the graph.", f"{person} and {company}: a foundation", f"{person} and {company} are recreational"]:
        assert scored(task, text) == 0.0, text
    task, person, film = connection_task(world, "directed")
    assert scored(task, f"{film} was directed by {person}.") == 1.0
    assert scored(task, f"{person} is the director of {film}.") == 1.0
    for text in [f"{person} is directly linked to {film}.", f"{person} and {film}: direction unknown"]:
        assert scored(task, text) == 0.0, text
    task, person, film = connection_task(world, "acted_in")
    assert scored(task, f"{person} acted in {film}.") == 1.0
    assert scored(task, f"{person} starred in {film}.") == 1.0
    assert scored(task, f"{person} was part of the cast of {film}.") == 1.0
    for text in [f"{person} lives in a castle near where {film} was shot", f"{person} and {film}: a reactor", f"{person} is connected to {film} through a factory"]:
        assert scored(task, text) == 0.0, text


def test_connection_negated_or_hedged_relations_score_zero(world):
    task, person, company = connection_task(world, "works_at")
    for text in [f"{person} does not work at {company}.", f"{person} doesn't work for {company}.", f"{person} isn't an employee of {company}.",
                 f"{person} has never worked at {company}.", f"{person} works at, founded, directed or acted in {company}."]:
        assert scored(task, text) == 0.0, text
    # a negated alternative is no hedge: the answer rules it out
    assert scored(task, f"{person} works at {company}; {person} is not its founder.") == 1.0
    # naming a crowd of other entities is still guessing
    crowd = ", ".join(c for c in world.by_type["company"] if c != company)
    assert scored(task, f"{person} works at {company}, or {crowd}.") == 0.0


def test_hedges_with_names_from_outside_the_world_score_zero(world):
    """The pools are shared by every world, so a policy can learn them: a rival from another world is a rival too."""
    company = world.by_type["company"][0]
    city = world.one(company, "located_in")
    elsewhere = next(c for c in kg.CITIES if c not in world.types)
    task = make_task("hq", entities=[company])
    assert scored(task, f"{company} is in {city} or {elsewhere}.") == 0.0
    crowd = [c for c in kg.CITIES if c not in world.types][:6]
    company = first(world, "company", lambda c: len(world.many(c, "works_at", "in")) >= 2)
    city = world.one(company, "located_in")
    task = make_task("employees", entities=[company])
    staff = world.many(company, "works_at", "in")
    outsiders = [p for p in kg.PEOPLE if p not in world.types][: 2 * len(staff) + 1]
    assert scored(task, ", ".join(staff + outsiders)) == 0.0
    assert scored(make_task("hq", entities=[company]), " ".join([city, *crowd])) == 0.0


@pytest.mark.parametrize("size", [2, 3])
def test_superlatives_listing_every_candidate_of_a_small_company_score_zero(world, size):
    """With two or three employees, naming them all used to stay under the enumeration cap and score 1.0."""
    company = first(world, "company", lambda c: len(world.many(c, "works_at", "in")) == size)
    staff = world.many(company, "works_at", "in")
    for extreme, chooser in (("oldest", min), ("youngest", max)):
        best = chooser(staff, key=lambda p: world.attrs[p]["born"])
        task = make_task("oldest_employee", "multi_step", entities=[company], extreme=extreme)
        assert scored(task, f"The {extreme} employee of {company} is {best}.") == 1.0
        assert scored(task, ", ".join(staff)) == 0.0
        assert scored(task, f"{best}, or perhaps {next(p for p in staff if p != best)}") == 0.0


def test_latest_film_director_listing_every_director_scores_zero(world):
    def two_films(p: str) -> bool:
        films = world.many(p, "acted_in")
        return len(films) == 2 and len({world.one(f, "directed", "in") for f in films}) == 2 and len({world.attrs[f]["year"] for f in films}) == 2

    person = first(world, "person", two_films)
    films = world.many(person, "acted_in")
    latest = max(films, key=lambda f: world.attrs[f]["year"])
    director = world.one(latest, "directed", "in")
    task = make_task("latest_film_director", "multi_step", entities=[person])
    assert scored(task, f"The most recent film {person} acted in is {latest}, directed by {director}.") == 1.0
    # naming the other film (not a rival: the answer is a person) is fine
    assert scored(task, f"{person} acted in {_join(films)}; the latest, {latest}, was directed by {director}.") == 1.0
    directors = sorted({world.one(f, "directed", "in") for f in films})
    assert scored(task, " or ".join(directors)) == 0.0


def _join(names):
    return kg_families._join(list(names))


def test_number_hedges_score_zero_and_separators_are_read(world):
    company = world.by_type["company"][0]
    year = world.attrs[company]["founded"]
    task = make_task("attribute", entities=[company], attribute="founded")
    assert scored(task, f"{company} was founded in {year} or {year + 1}.") == 0.0
    assert scored(task, f"Either {year - 1}, {year} or {year + 1}.") == 0.0
    assert scored(task, f"{company} was founded in {year}, {2024 - year} years ago.") == 1.0  # not a rival year
    city = world.by_type["city"][0]
    population = world.attrs[city]["population"]
    task = make_task("attribute", entities=[city], attribute="population")
    assert population >= 1_000_000 or population >= 20_000
    assert scored(task, f"{city} has a population of {population:,}.") == 1.0
    assert scored(task, f"{city} has a population of {population}.") == 1.0
    assert scored(task, f"{city} has {population:,} or {population + 1000:,} people.") == 0.0
    companies = world.by_type["company"][:2]
    years = [world.attrs[c]["founded"] for c in companies]
    task = make_task("founding_years", "parallel", entities=companies)
    assert scored(task, f"{companies[0]}: {years[0]}; {companies[1]}: {years[1]}") == 1.0
    rival = next(y for y in range(1900, 2020) if y not in years)
    assert scored(task, f"{companies[0]}: {years[0]} or {rival}; {companies[1]}: {years[1]}") == pytest.approx(2 / 3)


def test_list_answers_lose_credit_for_each_wrong_member(world):
    company = first(world, "company", lambda c: len(world.many(c, "works_at", "in")) >= 3)
    staff = world.many(company, "works_at", "in")
    outsider = next(p for p in world.by_type["person"] if p not in staff)
    task = make_task("employees", entities=[company])
    assert scored(task, ", ".join(staff)) == 1.0
    assert scored(task, ", ".join([*staff, outsider])) == pytest.approx(len(staff) / (len(staff) + 1))
    first_company = world.by_type["company"][0]
    second = first(world, "company", lambda c: world.one(c, "located_in") != world.one(first_company, "located_in"))
    companies = [first_company, second]
    cities = [world.one(c, "located_in") for c in companies]
    wrong = next(c for c in world.by_type["city"] if c not in cities)
    task = make_task("hq_many", "parallel", entities=companies)
    assert scored(task, f"{companies[0]} is in {cities[0]}; {companies[1]} is in {cities[1]}") == 1.0
    assert scored(task, f"{companies[0]} is in {cities[0]}; {companies[1]} is in {wrong}") == pytest.approx(1 / 3)


@pytest.mark.parametrize("split", ["train", "test"])
def test_the_oracle_scores_full_marks_on_every_family(split):
    families = set()
    for difficulty in DIFFICULTIES:
        for seed in range(201):
            task = KnowledgeGraphEnv.generate_task(split, difficulty, seed)
            record = KnowledgeGraphEnv.oracle(task).record
            assert record.task_completion == 1.0, (task.id, record.final_answer)
            families.add(task.family)
    assert families == {f.split(" ")[0] for fs in KnowledgeGraphEnv.families.values() for f in fs}
