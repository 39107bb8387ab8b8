"""A virtual file tree, in the spirit of AgentBench's OS tasks: find, read, count and reorganise files.

The whole "disk" is a dict of paths -> text, plus a set of directories; nothing here touches the real file
system. Read-only tasks are checked against the answer; reorganising tasks are checked on the final tree
against the tree the expert's calls leave, with credit per file and a penalty for every unrelated file
changed.

``world``: the seeded home folders; ``env``: the tools, their path safety and the verifier; ``families``:
the task families; ``phrasings``: how users ask for them.
"""

from environments.filesystem.env import FilesystemEnv

__all__ = ["FilesystemEnv"]
