"""The filesystem environment: its tools over the virtual home folder, their path safety, and the verifier.

Paths are resolved inside the virtual tree only (``..`` never climbs above ``/``, names are plain), and the
agent may change files only under ``/home/user``. Read-only tasks are checked on the answer; reorganising
tasks on the final tree against the tree the expert's calls leave, with credit per file and a penalty for
every unrelated file changed (questions pay the same penalty).
"""

from __future__ import annotations

import difflib
import fnmatch
import random
import re
from typing import Any

from environments.answers import count_numbers, mentions, share_mentioned
from environments.base import ToolEnvironment, ToolError
from environments.families import TaskFamily
from environments.filesystem.families import FAMILIES
from environments.filesystem.world import HOME, Home, _ancestors, _base, _grep, _parent, _under, _world
from environments.record import Task

MAX_PATH = 255  # characters in a path
MAX_PATTERN = 100  # characters in a search pattern
MAX_FILE_CHARS = 10_000  # characters in one written file
MAX_FILES = 500  # files in the tree
MAX_DIRS = 500  # directories in the tree
MAX_LIST = 20  # entries shown by list_directory / name search
MAX_MATCHES = 8  # matching lines shown by a content search
LINE_CHARS = 60  # characters of a matching line shown
COLLATERAL_PENALTY = 0.25  # per unrelated file created, changed, moved or deleted

_NAME_RE = re.compile(r"[A-Za-z0-9._ -]+")


def _show(value: str, limit: int = 60) -> str:
    """A user-supplied string, shortened, for an error message."""
    return repr(value[:limit]) + ("..." if len(value) > limit else "")


class FilesystemEnv(ToolEnvironment):
    name = "filesystem"
    description = "A virtual home folder (notes, logs, code, data): find, read, count, and reorganise files."
    task_families = FAMILIES

    # --- the world ----------------------------------------------------------------------------------------

    def _setup(self, task: Task) -> None:
        world = _world(task.params["world_seed"])
        self._world_data = world
        self._files: dict[str, str] = dict(world.files)
        self._dirs: set[str] = set(world.dirs)

    def _resolve(self, path: str, writable: bool = False) -> str:
        """A normalised absolute path inside the virtual tree, or a ToolError that says what is wrong."""
        if "\x00" in path:
            raise ToolError("the path contains a NUL byte; give a plain path like /home/user/docs/budget.md")
        if len(path) > MAX_PATH:
            raise ToolError(f"the path is too long ({len(path)} characters; the limit is {MAX_PATH})")
        text = path.strip()
        if not text:
            raise ToolError("the path is empty; give a path like /home/user/docs")
        if text == "~" or text.startswith("~/"):
            text = HOME + text[1:]
        elif not text.startswith("/"):
            text = f"{HOME}/{text}"  # relative paths start at the working directory, /home/user
        parts: list[str] = []
        for part in text.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if not parts:
                    raise ToolError(f"the path {_show(path)} goes above the root directory /")
                parts.pop()
                continue
            if not _NAME_RE.fullmatch(part):
                raise ToolError(f"invalid name {_show(part)} in the path: names may use letters, digits, '.', '_', '-' and spaces")
            parts.append(part)
        resolved = "/" + "/".join(parts)
        if writable and resolved != HOME and not resolved.startswith(HOME + "/"):
            raise ToolError(f"permission denied: you can only change files inside {HOME} (not {_show(resolved)})")
        return resolved

    def _missing(self, path: str) -> ToolError:
        """A not-found error with a hint: the same name elsewhere, or a close name."""
        same = [p for p in sorted(self._files) if _base(p) == _base(path)]
        if same:
            return ToolError(f"no such file or directory: {path}; did you mean {same[0]}?")
        nearby = [p for p in self._files if _parent(p) == _parent(path)] + sorted(self._dirs)[:100]
        close = difflib.get_close_matches(path, nearby, n=1, cutoff=0.75)
        hint = f"did you mean {close[0]}?" if close else "use list_directory or search_files to find it"
        return ToolError(f"no such file or directory: {path}; {hint}")

    def _check_parents(self, path: str) -> None:
        for directory in _ancestors(path):
            if directory in self._files:
                raise ToolError(f"{directory} is a file, so {path} cannot be created under it")

    def _add_dirs(self, path: str) -> None:
        new = [d for d in _ancestors(path) if d not in self._dirs]
        if len(self._dirs) + len(new) > MAX_DIRS:
            raise ToolError(f"too many directories (the limit is {MAX_DIRS})")
        self._dirs.update(new)

    # --- tools --------------------------------------------------------------------------------------------

    def list_directory(self, path: str = HOME) -> dict:
        """List the files and subdirectories directly inside a directory.

        Args:
            path: The directory (default /home/user, the working directory; relative paths start there).
        """
        directory = self._resolve(path)
        if directory in self._files:
            raise ToolError(f"{directory} is a file, not a directory; use read_file to see its content")
        if directory not in self._dirs:
            raise self._missing(directory)
        dirs = sorted(_base(d) + "/" for d in self._dirs if d != "/" and _parent(d) == directory)
        names = sorted(_base(p) for p in self._files if _parent(p) == directory)
        out: dict[str, Any] = {"path": directory, "n_dirs": len(dirs), "n_files": len(names), "dirs": dirs[:MAX_LIST], "files": names[: max(0, MAX_LIST - min(len(dirs), MAX_LIST))]}
        hidden = len(dirs) + len(names) - len(out["dirs"]) - len(out["files"])
        if hidden:
            out["more"] = f"{hidden} more entries not shown; use search_files to narrow down"
        return out

    def read_file(self, path: str) -> dict:
        """Read a text file.

        Args:
            path: The file, e.g. /home/user/logs/api.log.
        """
        resolved = self._resolve(path)
        if resolved in self._dirs:
            raise ToolError(f"{resolved} is a directory; use list_directory to see what it holds")
        if resolved not in self._files:
            raise self._missing(resolved)
        content = self._files[resolved]
        return {"path": resolved, "lines": content.count("\n") + (not content.endswith("\n") and bool(content)), "content": content}

    def search_files(self, pattern: str, path: str = HOME, mode: str = "content") -> dict:
        """Search files under a directory (recursively) or in one file, like grep (content) or find (name).

        Args:
            pattern: Content: case-sensitive text to find in lines, e.g. ERROR. Name: a file-name glob, e.g. *.log.
            path: The directory or file to search (default /home/user).
            mode: content (line counts and first matching lines) or name (matching file paths). (choices: ["content", "name"])
        """
        if not pattern or "\x00" in pattern:
            raise ToolError("the pattern must be a non-empty string without NUL bytes, e.g. ERROR or *.log")
        if len(pattern) > MAX_PATTERN:
            raise ToolError(f"the pattern is too long ({len(pattern)} characters; the limit is {MAX_PATTERN})")
        root = self._resolve(path)
        if root not in self._dirs and root not in self._files:
            raise self._missing(root)
        if mode == "name":
            glob = any(c in pattern for c in "*?[")
            found = [p for p in sorted(self._files) if _under(p, root) and (fnmatch.fnmatchcase(_base(p), pattern) if glob else pattern in _base(p))]
            out: dict[str, Any] = {"pattern": pattern, "count": len(found), "matches": found[:MAX_LIST]}
            if len(found) > MAX_LIST:
                out["more"] = f"{len(found) - MAX_LIST} more files not shown"
            return out
        hits = _grep(self._files, pattern, root)
        total = sum(len(h) for h in hits.values())
        cut = len(root.rstrip("/")) + 1
        lines = [f"{p[cut:] or _base(p)}:{n}: {text[:LINE_CHARS]}" for p, found in hits.items() for n, text in found]
        out = {"pattern": pattern, "count": total, "files": {p: len(h) for p, h in list(hits.items())[:MAX_LIST]}, "matches": lines[:MAX_MATCHES]}
        if len(hits) > MAX_LIST:
            out["more_files"] = len(hits) - MAX_LIST
        if total > MAX_MATCHES:
            out["more"] = f"{total - MAX_MATCHES} more matching lines not shown"
        return out

    def write_file(self, path: str, content: str) -> dict:
        """Create a text file or replace its content (missing directories are created).

        Args:
            path: The file to write, inside /home/user.
            content: The full new text of the file.
        """
        resolved = self._resolve(path, writable=True)
        if resolved in self._dirs:
            raise ToolError(f"{resolved} is a directory; write to a file path inside it instead")
        if len(content) > MAX_FILE_CHARS:
            raise ToolError(f"the content is too long ({len(content)} characters; the limit is {MAX_FILE_CHARS})")
        if "\x00" in content:
            raise ToolError("the content contains NUL bytes; only text files can be written")
        created = resolved not in self._files
        if created and len(self._files) >= MAX_FILES:
            raise ToolError(f"too many files (the limit is {MAX_FILES}); delete some first")
        self._check_parents(resolved)
        self._add_dirs(resolved)
        self._files[resolved] = content
        return {"path": resolved, "chars": len(content), "created": created}

    def move_path(self, source: str, destination: str) -> dict:
        """Move or rename a file or directory, like mv.

        Args:
            source: The file or directory to move, inside /home/user.
            destination: The new path, or an existing directory to move it into (keeping its name).
        """
        src = self._resolve(source, writable=True)
        dst = self._resolve(destination, writable=True)
        if src == HOME:
            raise ToolError(f"{HOME} itself cannot be moved")
        is_dir = src in self._dirs
        if not is_dir and src not in self._files:
            raise self._missing(src)
        if dst in self._dirs or destination.rstrip().endswith("/"):
            dst = f"{dst.rstrip('/')}/{_base(src)}"
        if dst == src:
            raise ToolError(f"{src} is already at that path")
        if dst in self._files or dst in self._dirs:
            raise ToolError(f"{dst} already exists; choose another name or delete it first")
        if is_dir and _under(dst, src):
            raise ToolError(f"cannot move the directory {src} into itself")
        self._check_parents(dst)
        if is_dir:
            moved = {p: dst + p[len(src) :] for p in self._files if _under(p, src)}
            dirs = {d: dst + d[len(src) :] for d in self._dirs if _under(d, src)}
            self._add_dirs(dst + "/x")
            self._dirs.difference_update(dirs)
            self._dirs.update(dirs.values())
            for old, new in moved.items():
                self._files[new] = self._files.pop(old)
        else:
            self._add_dirs(dst)
            self._files[dst] = self._files.pop(src)
        return {"moved": src, "to": dst}

    def delete_path(self, path: str) -> dict:
        """Delete a file, or an empty directory.

        Args:
            path: The file or empty directory to delete, inside /home/user.
        """
        resolved = self._resolve(path, writable=True)
        if resolved in self._files:
            del self._files[resolved]
        elif resolved in self._dirs:
            if resolved == HOME:
                raise ToolError(f"{HOME} itself cannot be deleted")
            if any(_parent(p) == resolved for p in self._files) or any(_parent(d) == resolved for d in self._dirs):
                raise ToolError(f"the directory {resolved} is not empty; delete the files inside it first")
            self._dirs.discard(resolved)
        else:
            raise self._missing(resolved)
        return {"deleted": resolved}

    # --- tasks and their verification ---------------------------------------------------------------------

    @classmethod
    def _draw_world(cls, rng: random.Random, novel: bool) -> tuple[dict[str, Any], Home]:
        seed = rng.randrange(2**31)
        return {"world_seed": seed}, Home(seed, novel)

    def _state(self) -> dict[str, str]:
        return dict(self._files)

    def _score(self, family: TaskFamily, answer: str | None, expected_state: dict[str, str] | None) -> float:
        """A reorganising task earns the share of the expert's changes made (per file); a question earns the
        share of the expected values its answer states, 0 if it names a wrong alternative or lists too many
        numbers. Every file changed that the expert left alone costs a quarter."""
        initial = self._world_data.files
        expected = initial if expected_state is None else expected_state
        units = _units(initial, expected)
        touched = {path for unit in units for path in unit}
        collateral = sum(1 for path in set(expected) | set(self._files) if path not in touched and expected.get(path) != self._files.get(path))
        if family.writes:
            score = sum(all(_same(self._files.get(path), content) for path, content in unit.items()) for unit in units) / len(units)
        else:
            values, wrong, max_numbers = family.expected(self._world_data, self.task.params)
            score = share_mentioned(answer, values)
            if any(mentions(answer, w) for w in wrong):
                score = 0.0  # naming the alternatives is not an answer
            if max_numbers is not None and count_numbers(answer) > max_numbers:
                score = 0.0  # a count answer that lists many numbers is a guess
        return max(0.0, score - COLLATERAL_PENALTY * collateral)


def _units(initial: dict[str, str], expected: dict[str, str]) -> list[dict[str, str | None]]:
    """The changes from ``initial`` to ``expected`` as units of work, one per file: path -> content (None:
    gone). A file that moved is one unit, the path it left and the path it reached, so a copy is no move."""
    gone = [path for path in sorted(initial) if path not in expected]
    units: list[dict[str, str | None]] = []
    for path in sorted(expected):
        if initial.get(path) == expected[path]:
            continue
        unit: dict[str, str | None] = {path: expected[path]}
        source = None if path in initial else next((g for g in gone if initial[g] == expected[path]), None)
        if source is not None:  # the new file is one that left its old path
            gone.remove(source)
            unit[source] = None
        units.append(unit)
    return units + [{path: None} for path in gone]


def _same(actual: str | None, expected: str | None) -> bool:
    if expected is None:
        return actual is None
    return actual is not None and actual.strip() == expected.strip()
