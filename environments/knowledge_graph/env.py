"""The knowledge graph environment: its graph tools and the verifier.

AgentBench's KG category: the agent answers questions by walking typed edges (works_at, founded_by,
located_in, studied_at, born_in, married_to, subsidiary_of, directed, acted_in, produced_by) with a handful
of graph tools. Answers are checked on the entities and values they name (``scoring``).
"""

from __future__ import annotations

import random
import re
from typing import Any

from environments.answers import normalise
from environments.base import ToolEnvironment, ToolError
from environments.families import TaskFamily, Wording
from environments.knowledge_graph.families import FAMILIES
from environments.knowledge_graph.world import LIST_CAP, RELATIONS, SEARCH_CAP, SYMMETRIC, TYPES, Graph, _build_world, _similarity, _trigrams
from environments.record import Task

# Thousands separators inside a number ("3,456,000"), dropped before matching so the number reads as one.
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")


class KnowledgeGraphEnv(ToolEnvironment):
    name = "knowledge_graph"
    description = "A knowledge graph of invented people, companies, places and films: one-hop facts, multi-hop chains, parallel look-ups."
    task_families = FAMILIES

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

    # --- tasks and their verification -------------------------------------------------------------------

    @classmethod
    def _draw_world(cls, rng: random.Random, novel: bool) -> tuple[dict[str, Any], Graph]:
        seed = rng.randrange(2**31)
        return {"world_seed": seed}, Graph(seed, novel)

    @classmethod
    def _phrase(cls, rng: random.Random, family: TaskFamily, values: dict[str, Any], words: Wording) -> str:
        # Unlike the default, a set of one phrasing (an attribute asked one way) is drawn from too, as this
        # environment always has: its tasks stay what they were drawn as.
        phrasings = family.phrasings if words.variant is None else family.phrasings[words.variant]
        return rng.choice(phrasings).format(**values, **words.fill)

    def _score(self, family: TaskFamily, answer: str | None, expected_state: None) -> float:
        if not answer:
            return 0.0
        return family.expected(self._world, self.task.params).score(_THOUSANDS.sub("", answer))
