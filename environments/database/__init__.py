"""A small shop database in SQLite: look data up, aggregate it with joins, and change it safely.

Every episode gets its own in-memory SQLite database (customers, products, orders, order_items) filled
from the task's world seed. The agent lists and describes tables and runs one SQL statement per call.
Questions are checked on the facts the answer states, against the untouched world; tasks that change
data are checked on the final database, row by row, against the database the expert's statements leave,
and every row changed that the task did not ask for costs credit.

``world``: the schema and the seeded worlds; ``env``: the tools, their safety and the verifier;
``families``: the task families; ``phrasings``: how users ask for them.
"""

from environments.database.env import DatabaseEnv

__all__ = ["DatabaseEnv"]
