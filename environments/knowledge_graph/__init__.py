"""A knowledge graph of invented people, companies, cities, countries, universities and films.

AgentBench's KG category: the agent answers questions by walking typed edges with a handful of graph
tools. Every name is invented and every edge is drawn from the task's world seed, so facts must be read
from observations, never remembered. The graph is read-only: tasks are questions, checked on the entities
and values the answer names, with no credit for hedging or enumerating.

``world``: the name pools and the seeded graphs; ``env``: the tools and the verifier; ``scoring``: what a
correct answer states and how an answer is scored; ``families``: the task families; ``phrasings``: how
users ask for them.
"""

from environments.knowledge_graph.env import KnowledgeGraphEnv

__all__ = ["KnowledgeGraphEnv"]
