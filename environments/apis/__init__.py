"""Web-API style tools: weather, currency conversion, country facts and a personal calendar.

The place for parallel calls (several cities or currencies at once) and nested calls (one call's output is
the next call's argument: a country's capital, then its weather). Every value is drawn from the task's
world seed, so the same task always sees the same world, and answers are checked against it.

``world``: the seeded world and its conversions; ``env``: the tools, the draw and the verifier;
``families``: the task families; ``phrasings``: how users ask for them.
"""

from environments.apis.env import ApisEnv

__all__ = ["ApisEnv"]
