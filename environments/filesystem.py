"""A virtual file tree, in the spirit of AgentBench's OS tasks: find, read, count and reorganise files.

The whole "disk" is a dict of normalised absolute POSIX paths -> text, plus a set of directories; nothing
here touches the real file system. The world is a small home folder (``/home/user``: notes with owners,
deadlines and project codenames, service logs with levels, code modules, CSV data, dated reports,
photos, stray ``.tmp`` files, an empty ``archive``) drawn from the task's world seed. Read-only tasks are
checked against the answer; reorganising tasks are checked on the final tree against the tree the
oracle's plan produces, with credit per file and a penalty for every unrelated file changed.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import random
import re
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from environments.base import Answer, OracleStep, TaskDraft, ToolEnvironment, ToolError, entity_pool, mentions, normalise, share_mentioned
from environments.record import Task

HOME = "/home/user"
ARCHIVE = f"{HOME}/archive"
MAX_PATH = 255  # characters in a path
MAX_PATTERN = 100  # characters in a search pattern
MAX_FILE_CHARS = 10_000  # characters in one written file
MAX_FILES = 500  # files in the tree
MAX_DIRS = 500  # directories in the tree
MAX_LIST = 20  # entries shown by list_directory / name search
MAX_MATCHES = 8  # matching lines shown by a content search
LINE_CHARS = 60  # characters of a matching line shown
COLLATERAL_PENALTY = 0.25  # per unrelated file created, changed, moved or deleted

TOPICS = [
    "roadmap", "budget", "hiring", "launch", "onboarding", "migration", "security", "pricing", "offsite", "vendors",
    "support", "research", "design", "compliance", "training", "marketing", "partners", "analytics", "outreach", "quarterly",
]
KEYWORDS = [
    "falcon", "quartz", "nebula", "juniper", "cobalt", "sierra", "orchid", "tundra", "zephyr", "glacier",
    "lotus", "meridian", "onyx", "raven", "saffron", "topaz", "willow", "beacon", "cypress", "fjord",
    "granite", "hazel", "indigo", "jasper", "kestrel", "lagoon", "magnolia", "nimbus", "opal", "pegasus",
]
PEOPLE = ["Ada", "Bo", "Chen", "Dara", "Emil", "Femi", "Gia", "Hugo", "Ines", "Jun", "Kofi", "Lena", "Mira", "Nico", "Omar", "Pia"]
SERVICES = ["api", "auth", "billing", "cron", "db", "gateway", "mailer", "queue", "scheduler", "storage", "web", "worker", "proxy", "payments", "notifier"]
MODULES = ["parser", "router", "client", "loader", "models", "utils", "render", "schema", "tokens", "plugins", "events", "store", "widgets", "helpers"]
CSV_NAMES = ["sales", "inventory", "visits", "orders", "returns", "signups", "refunds"]
REGIONS = ["north", "south", "east", "west", "central"]
TMP_NAMES = ["scratch.tmp", "old_build.tmp", "cache_dump.tmp", "session.tmp", "backup_copy.tmp", "draft_autosave.tmp"]
STATUSES = ["draft", "review", "final"]
LEVELS = ["ERROR", "WARN", "INFO", "DEBUG"]
MESSAGES = {
    "ERROR": ["connection refused by upstream", "timeout after 30s waiting for upstream", "disk quota exceeded", "failed to parse payload", "missing auth token", "process crashed with exit code 137"],
    "WARN": ["slow response (1200ms)", "retrying in 5s", "cache miss rate above 40%", "certificate expires in 12 days", "backlog growing"],
    "INFO": ["started", "health check ok", "handled call in 35ms", "settings reloaded", "user login ok", "job finished"],
    "DEBUG": ["payload size 512 bytes", "cache key computed", "retry budget 3"],
}
NOTE_LINES = [
    "Next step: collect feedback from the team.", "Open question: who signs off on the final numbers?",
    "Reminder: keep the shared folder tidy.", "Decision: move the weekly sync to Thursdays.",
    "Action item: update the checklist before Friday.", "Risk: the timeline depends on two external teams.",
]
KEYWORD_LINES = [
    "We agreed to ship project {kw} after the review.", "Project {kw} needs a sign-off from legal.",
    "Ask the team about the {kw} milestone.", "The {kw} prototype is ready for testing.",
]
SUMMARIES = ["quiet week overall", "one outage during the deploy", "slow pages on Monday", "backup job missed a night", "traffic spike after the launch"]
FUNCTIONS = ["normalise", "validate", "merge", "split_items", "to_text", "load_all", "flatten"]
DEADLINES = [f"2026-{month:02d}-{day:02d}" for month in (4, 5, 6) for day in range(1, 31)]

_NAME_RE = re.compile(r"[A-Za-z0-9._ -]+")


# --- the world ---------------------------------------------------------------------------------------------


@dataclass
class _World:
    """A seeded home folder and what it is made of (read-only once built: it is cached and shared)."""

    files: dict[str, str]
    dirs: frozenset[str]
    notes: list[dict[str, str]] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)
    modules: list[dict[str, str]] = field(default_factory=list)
    csvs: list[dict[str, Any]] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)
    tmps: list[str] = field(default_factory=list)
    config: dict[str, str] = field(default_factory=dict)


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/"


def _base(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _ancestors(path: str) -> list[str]:
    """The directories above a path, root first."""
    out, current = [], _parent(path)
    while True:
        out.append(current)
        if current == "/":
            return out[::-1]
        current = _parent(current)


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


@functools.lru_cache(maxsize=1024)
def _world(seed: int) -> _World:
    rng = random.Random(seed)
    files: dict[str, str] = {}
    world = _World(files=files, dirs=frozenset())

    files[f"{HOME}/README.md"] = "Home folder.\nNotes live in docs/, service logs in logs/, code in src/, data in data/.\n"
    files[f"{HOME}/todo.txt"] = "\n".join(rng.sample(["- renew the domain", "- back up the photos", "- clean up the downloads", "- call the bank", "- water the plants"], 3)) + "\n"

    topics = rng.sample(TOPICS, rng.randint(4, 6))
    for topic, keyword, owner, deadline in zip(topics, rng.sample(KEYWORDS, len(topics)), rng.sample(PEOPLE, len(topics)), rng.sample(DEADLINES, len(topics))):
        body = rng.sample(NOTE_LINES, 2)
        body.insert(rng.randint(0, 2), rng.choice(KEYWORD_LINES).format(kw=keyword))
        path = f"{HOME}/docs/{topic}.md"
        files[path] = "\n".join([f"# {topic.title()} notes", f"owner: {owner}", f"status: {rng.choice(STATUSES)}", f"deadline: {deadline}", *body]) + "\n"
        world.notes.append({"path": path, "topic": topic, "keyword": keyword, "owner": owner, "deadline": deadline})

    services = rng.sample(SERVICES, rng.randint(3, 4))
    for service, errors in zip(services, rng.sample(range(7), len(services))):
        levels = ["ERROR"] * errors + ["WARN"] * rng.randint(0, 4) + ["INFO"] * rng.randint(2, 5) + ["DEBUG"] * rng.randint(0, 2)
        rng.shuffle(levels)
        day, second, lines = rng.randint(1, 28), rng.randint(0, 40_000), []
        for level in levels:
            second += rng.randint(5, 900)
            lines.append(f"2026-03-{day:02d} {second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d} {level} {service}: {rng.choice(MESSAGES[level])}")
        path = f"{HOME}/logs/{service}.log"
        files[path] = "\n".join(lines) + "\n"
        world.logs.append({"path": path, "service": service})

    versions = rng.sample([f"{a}.{b}.{c}" for a in range(4) for b in range(1, 13) for c in range(10)], 4)
    for module, version in zip(rng.sample(MODULES, rng.randint(2, 4)), versions):
        function = rng.choice(FUNCTIONS)
        path = f"{HOME}/src/{module}.py"
        files[path] = f'"""The {module} module."""\n\n__version__ = "{version}"\n\n\ndef {function}(value):\n    return value\n'
        world.modules.append({"path": path, "module": module, "version": version})
    log = rng.choice(world.logs)["path"]
    files[f"{HOME}/src/config.ini"] = f"[service]\nport = {rng.randint(8000, 8999)}\nworkers = {rng.randint(1, 8)}\nlog_file = {log}\n"
    world.config = {"path": f"{HOME}/src/config.ini", "log": log}

    for name in rng.sample(CSV_NAMES, rng.randint(2, 3)):
        rows = list(zip(REGIONS, rng.sample(range(10, 500), len(REGIONS))))
        rng.shuffle(rows)
        path = f"{HOME}/data/{name}.csv"
        files[path] = "region,units\n" + "".join(f"{region},{units}\n" for region, units in rows)
        world.csvs.append({"path": path, "name": name, "rows": rows})

    for day, author in zip(sorted(rng.sample(range(1, 29), rng.randint(3, 4))), rng.sample(PEOPLE, 4)):
        date, incidents = f"2026-03-{day:02d}", rng.randint(0, 9)
        path = f"{HOME}/reports/report_{date}.md"
        files[path] = f"date: {date}\nauthor: {author}\nincidents: {incidents}\nsummary: {rng.choice(SUMMARIES)}\n"
        world.reports.append({"path": path, "date": date, "author": author, "incidents": incidents})

    for number in rng.sample(range(1000, 9999), rng.randint(3, 7)):
        files[f"{HOME}/photos/IMG_{number}.jpg"] = f"JPEG image {rng.choice([4032, 3024, 1920])}x{rng.choice([3024, 2268, 1080])}\n"

    for name in rng.sample(TMP_NAMES, rng.randint(1, 3)):
        path = f"{rng.choice([HOME, f'{HOME}/docs', f'{HOME}/src', f'{HOME}/data'])}/{name}"
        files[path] = "temporary data, safe to delete\n"
        world.tmps.append(path)

    world.dirs = frozenset({ARCHIVE, *(a for p in [*files, ARCHIVE] for a in _ancestors(p))})
    return world


def _grep(files: dict[str, str], pattern: str, root: str) -> dict[str, list[tuple[int, str]]]:
    """Lines containing ``pattern`` (case-sensitive) in the files under ``root``: path -> [(line number, text)]."""
    found: dict[str, list[tuple[int, str]]] = {}
    for path in sorted(files):
        if not _under(path, root):
            continue
        text = files[path]
        if pattern not in text:
            continue
        hits = [(i, line) for i, line in enumerate(text.split("\n"), 1) if pattern in line]
        if hits:
            found[path] = hits
    return found


def _count(files: dict[str, str], pattern: str, root: str) -> dict[str, int]:
    return {path: len(hits) for path, hits in _grep(files, pattern, root).items()}


def _show(value: str, limit: int = 60) -> str:
    """A user-supplied string, shortened, for an error message."""
    return repr(value[:limit]) + ("..." if len(value) > limit else "")


def _display(rng: random.Random, path: str) -> str:
    """How a prompt writes a path: absolute, from ~, or relative to the home folder."""
    relative = path[len(HOME) + 1 :]
    return rng.choice([path, f"~/{relative}", relative])


WRAPPERS = ["{}", "{}", "{}", "Hi! {}", "{} Thanks.", "{} Please be precise.", "I need help with my files. {}", "Quick task: {}"]


def _wrap(rng: random.Random, draft: TaskDraft | None) -> TaskDraft | None:
    """Vary how a request is framed (greetings, thanks), so every family has many phrasings in both splits."""
    if draft is not None:
        draft.prompt = rng.choice(WRAPPERS).format(draft.prompt)
    return draft


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


# --- tasks -------------------------------------------------------------------------------------------------

# The tool the oracle calls first, which a recovery task makes fail once.
FIRST_TOOL = {
    "find_keyword": "search_files", "count_level": "search_files", "csv_top": "read_file", "count_files": "list_directory",
    "rename_file": "move_path", "busiest_log": "search_files", "latest_report": "list_directory", "error_summary": "search_files",
    "clean_tmp": "search_files", "archive_error_logs": "search_files", "facts_many": "read_file", "create_many": "write_file",
    "move_many": "move_path", "keyword_field": "search_files", "config_count": "read_file", "keyword_archive": "search_files",
}
STATE_FAMILIES = {"rename_file", "error_summary", "clean_tmp", "archive_error_logs", "move_many", "create_many", "keyword_archive"}
# Where each fact a facts_many task asks for sits in its file.
FACT_RE = {
    "owner": r"^owner: (.+)$", "deadline": r"^deadline: (.+)$", "version": r'^__version__ = "(.+)"$', "author": r"^author: (.+)$", "port": r"^port = (.+)$",
}
FACT_WORDS = {"owner": "the owner named in {p}", "deadline": "the deadline in {p}", "version": "the __version__ of {p}", "author": "the author of {p}", "port": "the port set in {p}"}
NEW_FILES = ["groceries.txt", "ideas.md", "contacts.txt", "packing.txt", "reading.md", "goals.md", "gifts.txt", "chores.txt", "recipes.md", "travel.md", "birthdays.txt", "plants.txt"]
NEW_TEXTS = [
    "buy milk and eggs", "call the plumber on Monday", "pack the blue charger", "read two chapters", "run 5 km on Sunday",
    "water the fern", "book the train tickets", "send the invoice to Kofi", "renew the library card", "fix the bike light",
]


def _fact(files: dict[str, str], path: str, field: str) -> str:
    return re.search(FACT_RE[field], files[path], re.M).group(1)


def _unique_keyword_notes(world: _World, novel: bool) -> list[dict[str, str]]:
    """Notes whose codename appears in no other file, restricted to the task's entity pool."""
    pool = set(entity_pool(KEYWORDS, novel))
    return [n for n in world.notes if n["keyword"] in pool and len(_grep(world.files, n["keyword"], "/")) == 1]


def _draft(family: str, rng: random.Random, world: _World, novel: bool) -> TaskDraft | None:
    """A task of ``family`` on ``world``, or None when this world does not suit it (the caller redraws)."""
    files = world.files
    docs, logs_dir, archive = f"{HOME}/docs", f"{HOME}/logs", ARCHIVE
    if family == "find_keyword":
        notes = _unique_keyword_notes(world, novel)
        if not notes:
            return None
        note = rng.choice(notes)
        kw, root = note["keyword"], rng.choice([docs, docs, HOME])
        where = _display(rng, root) if root != HOME else rng.choice(["my home folder", HOME, "~"])
        prompt = rng.choice([
            "Which file under {d} contains the word '{k}'?", "One of my files in {d} mentions {k}. Which file is it?",
            "Find the file in {d} that talks about {k} and give me its path.",
        ]).format(d=where, k=kw)
        return TaskDraft(family, prompt, {"keyword": kw, "root": root}, ["search_files"], [kw, "docs"])
    if family == "count_level":
        logs = [lg for lg in world.logs if lg["service"] in entity_pool(SERVICES, novel)]
        if not logs:
            return None
        path, level = rng.choice(logs)["path"], rng.choice(["ERROR", "ERROR", "WARN", "INFO"])
        prompt = rng.choice(["How many lines in {p} contain {l}?", "Count the {l} lines in {p}.", "How many {l} entries does {p} have?"]).format(p=_display(rng, path), l=level)
        return TaskDraft(family, prompt, {"path": path, "level": level}, ["search_files", "read_file"], [_base(path), level])
    if family == "csv_top":
        csvs = [c for c in world.csvs if c["name"] in entity_pool(CSV_NAMES, novel)]
        if not csvs:
            return None
        path, most = rng.choice(csvs)["path"], rng.choice(["highest", "lowest"])
        prompt = rng.choice(["Which region has the {m} units in {p}?", "Look at {p}: which region has the {m} number of units?"]).format(m=most, p=_display(rng, path))
        return TaskDraft(family, prompt, {"path": path, "most": most}, ["read_file"], [_base(path)])
    if family == "count_files":
        folder = f"{HOME}/{rng.choice(['photos', 'photos', 'reports', 'logs', 'data', 'docs'])}"
        prompt = rng.choice(["How many files are in {d}?", "Count the files directly inside {d}.", "How many files does the folder {d} hold?"]).format(d=_display(rng, folder))
        return TaskDraft(family, prompt, {"path": folder}, ["list_directory"], [_base(folder)])
    if family == "rename_file":
        notes = [n for n in world.notes if n["topic"] in entity_pool(TOPICS, novel)]
        if not notes:
            return None
        note = rng.choice(notes)
        source = note["path"]
        target = f"{docs}/{rng.choice(['{t}_final.md', '{t}_v2.md', '{t}_old.md', 'archived_{t}.md']).format(t=note['topic'])}"
        if target in files:
            return None
        prompt = rng.choice([
            "Rename {s} to {d}.", "Please rename the file {s} to {n}, keeping it in the same folder.", "Change the name of {s} to {n} (same directory).",
        ]).format(s=_display(rng, source), d=_display(rng, target), n=_base(target))
        return TaskDraft(family, prompt, {"source": source, "destination": target}, ["move_path"], [_base(source), _base(target)])
    if family == "busiest_log":
        second = rng.choice(["WARN", "INFO", "DEBUG"])
        prompt = rng.choice([
            "Which log file in {d} has the most ERROR lines, and how many {l} lines does that file have?",
            "Find the log in {d} with the most ERROR lines. How many {l} lines are in it?",
            "Among the logs in {d}, take the one with the most ERROR lines: which is it, and how many of its lines are {l}?",
        ]).format(d=_display(rng, logs_dir), l=second)
        return TaskDraft(family, prompt, {"level": second}, ["search_files"], ["logs", "ERROR", second])
    if family == "latest_report":
        prompt = rng.choice([
            "Who wrote the most recent report in {d}, and how many incidents does it list?",
            "Open the latest report in {d} (the file names carry the date). Who is its author and how many incidents were there?",
            "Find the newest report in {d}: I need its author and its number of incidents.",
        ]).format(d=_display(rng, f"{HOME}/reports"))
        return TaskDraft(family, prompt, {}, ["list_directory", "read_file"], ["reports", "report"])
    if family == "error_summary":
        level = rng.choice(["ERROR", "WARN"])
        out = f"{HOME}/{rng.choice(['reports/{l}_total.txt', 'reports/{l}_count.txt', '{l}s.txt'])}".format(l=level.lower())
        prompt = rng.choice([
            "Count all {l} lines across the logs in {d} and write just that number to {o}.",
            "Save the total number of {l} lines in {d} to {o} (the file should contain only the number).",
        ]).format(l=level, d=_display(rng, logs_dir), o=_display(rng, out))
        return TaskDraft(family, prompt, {"level": level, "output": out}, ["search_files", "write_file"], [_base(out), "logs", level])
    if family == "clean_tmp":
        prompt = rng.choice([
            "Delete every .tmp file under {h}.", "Find all temporary files (*.tmp) anywhere in {h} and delete them.",
            "Clean up: remove all files ending in .tmp anywhere under {h}.", "There are stray .tmp files somewhere in {h}. Delete all of them and nothing else.",
            "Get rid of every temporary file (name ending in .tmp) under {h}, wherever it is.",
        ]).format(h=rng.choice([HOME, "~", "my home folder", HOME + "/"]))
        return TaskDraft(family, prompt, {}, ["search_files", "delete_path"], ["tmp"])
    if family == "archive_error_logs":
        counts = [_count(files, "ERROR", lg["path"]).get(lg["path"], 0) for lg in world.logs]
        thresholds = [t for t in range(1, 6) if 0 < sum(c >= t for c in counts) < len(counts)]
        if not thresholds:
            return None
        threshold = rng.choice(thresholds)
        prompt = rng.choice([
            "Move every log in {d} that has at least {t} ERROR lines into {a}.",
            "Archive the noisy logs: any file in {d} with {t} or more ERROR lines goes to {a}.",
        ]).format(d=_display(rng, logs_dir), t=threshold, a=_display(rng, archive))
        return TaskDraft(family, prompt, {"threshold": threshold}, ["search_files", "move_path"], ["archive", "logs", "ERROR"])
    if family == "facts_many":
        notes = [n for n in world.notes if n["topic"] in entity_pool(TOPICS, novel)]
        modules = [m for m in world.modules if m["module"] in entity_pool(MODULES, novel)]
        if not notes or not modules:
            return None
        # Facts from different kinds of file, so no single search finds them all: one read per file.
        first = rng.choice(["note", "module"])
        kinds = [first, *rng.sample(["module" if first == "note" else "note", "report", "config"], rng.randint(1, 2))]
        facts = []
        for kind in kinds:
            if kind == "note":
                facts.append({"path": rng.choice(notes)["path"], "field": rng.choice(["owner", "deadline"])})
            elif kind == "module":
                facts.append({"path": rng.choice(modules)["path"], "field": "version"})
            elif kind == "report":
                facts.append({"path": rng.choice(world.reports)["path"], "field": "author"})
            else:
                facts.append({"path": world.config["path"], "field": "port"})
        rng.shuffle(facts)
        asked = _join([FACT_WORDS[f["field"]].format(p=_display(rng, f["path"])) for f in facts])
        prompt = rng.choice(["Tell me {a}.", "I need a few facts: {a}.", "Please look up {a}."]).format(a=asked)
        return TaskDraft(family, prompt, {"facts": facts}, ["read_file"], [_base(f["path"]) for f in facts])
    if family == "create_many":
        first = rng.choice(entity_pool(NEW_FILES, novel))
        names = [first, *rng.sample([n for n in NEW_FILES if n != first], rng.randint(1, 2))]
        folder = f"{HOME}/{rng.choice(['notes', 'personal', 'docs/personal'])}"
        files_new = [{"path": f"{folder}/{name}", "content": text} for name, text in zip(names, rng.sample(NEW_TEXTS, len(names)))]
        items = _join([f"{_display(rng, f['path'])} containing \"{f['content']}\"" for f in files_new])
        prompt = rng.choice(["Create {i}.", "Please make these files: {i}.", "Write {i} (exactly that text in each)."]).format(i=items)
        return TaskDraft(family, prompt, {"files": files_new}, ["write_file"], [*names, _base(folder)])
    if family == "move_many":
        candidates = [n["path"] for n in world.notes if n["topic"] in entity_pool(TOPICS, novel)]
        candidates += [lg["path"] for lg in world.logs if lg["service"] in entity_pool(SERVICES, novel)]
        candidates += [m["path"] for m in world.modules if m["module"] in entity_pool(MODULES, novel)]
        if len(candidates) < 2:
            return None
        paths = rng.sample(candidates, rng.randint(2, min(3, len(candidates))))
        prompt = rng.choice(["Move {f} into {a}.", "Please put {f} in the archive folder ({a})."]).format(f=_join([_display(rng, p) for p in paths]), a=_display(rng, archive))
        return TaskDraft(family, prompt, {"paths": paths}, ["move_path"], [*(_base(p) for p in paths), "archive"])
    if family == "keyword_field":
        notes = _unique_keyword_notes(world, novel)
        if not notes:
            return None
        kw, what = rng.choice(notes)["keyword"], rng.choice(["owner", "deadline"])
        prompt = rng.choice([
            "Who owns the note in {d} that mentions {k}?" if what == "owner" else "What deadline is given in the note in {d} that talks about {k}?",
            "Find the document in {d} that mentions {k} and tell me its {w}.",
        ]).format(d=_display(rng, docs), k=kw, w=what)
        return TaskDraft(family, prompt, {"keyword": kw, "field": what}, ["search_files", "read_file"], [kw])
    if family == "config_count":
        if world.config["log"] not in [lg["path"] for lg in world.logs if lg["service"] in entity_pool(SERVICES, novel)]:
            return None
        level = rng.choice(["ERROR", "ERROR", "WARN", "INFO"])
        prompt = rng.choice([
            "My service's settings are in {c}. How many {l} lines are in the log file it writes to?",
            "Check which log file {c} points to (log_file) and count the {l} lines in it.",
            "The log_file setting in {c} names a log. How many of that log's lines contain {l}?",
        ]).format(c=_display(rng, world.config["path"]), l=level)
        return TaskDraft(family, prompt, {"level": level}, ["read_file", "search_files"], ["config.ini", level])
    if family == "keyword_archive":
        notes = _unique_keyword_notes(world, novel)
        if not notes:
            return None
        kw = rng.choice(notes)["keyword"]
        prompt = rng.choice([
            "Find the note in {d} that mentions {k} and move it into {a}.", "Archive the document about {k}: move it from {d} to {a}.",
        ]).format(d=_display(rng, docs), k=kw, a=_display(rng, archive))
        return TaskDraft(family, prompt, {"keyword": kw}, ["search_files", "move_path"], [kw, "archive"])
    raise ValueError(f"filesystem: no task family {family!r}")


# --- the environment ---------------------------------------------------------------------------------------


class FilesystemEnv(ToolEnvironment):
    name = "filesystem"
    description = "A virtual home folder (notes, logs, code, data): find, read, count, and reorganise files."
    families = {
        "single": ["find_keyword", "count_level", "csv_top", "count_files", "rename_file"],
        "multi_step": ["busiest_log", "latest_report", "error_summary", "clean_tmp", "archive_error_logs"],
        "parallel": ["facts_many", "move_many", "create_many"],
        "nested": ["keyword_field", "config_count", "keyword_archive"],
        "recovery": [
            "find_keyword (503 first)", "count_level (503 first)", "busiest_log (503 first)", "facts_many (503 first)",
            "keyword_field (503 first)", "archive_error_logs (503 first)",
        ],
    }

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

    # --- tasks --------------------------------------------------------------------------------------------

    @classmethod
    def _make_task(cls, rng: random.Random, difficulty: str, novel: bool) -> TaskDraft:
        family = rng.choice(cls.families[difficulty]).split(" ")[0]
        for _ in range(200):
            world_seed = rng.randrange(2**31)
            draft = _wrap(rng, _draft(family, rng, _world(world_seed), novel))
            if draft is not None:
                draft.params = {"world_seed": world_seed, "family": family, **draft.params}
                if difficulty == "recovery":
                    draft.params["fail_first"] = [FIRST_TOOL[family]]
                return draft
        raise RuntimeError(f"filesystem: no world suits a {family} task")

    # --- the oracle ---------------------------------------------------------------------------------------

    def _solve(self, task: Task) -> Generator[OracleStep, list[Any], Answer]:
        p, family, world = task.params, task.params["family"], self._world_data
        if family == "find_keyword":
            [found] = yield OracleStep(f"I will search the files under {p['root']} for '{p['keyword']}'.", [("search_files", {"pattern": p["keyword"], "path": p["root"]})])
            path = next(iter(found["files"]))
            return Answer(f"The file that mentions {p['keyword']} is {path}.")
        if family == "count_level":
            [found] = yield OracleStep(f"A content search for {p['level']} in that file counts the lines.", [("search_files", {"pattern": p["level"], "path": p["path"]})])
            return Answer(f"{_base(p['path'])} has {found['count']} {p['level']} lines.")
        if family == "csv_top":
            [data] = yield OracleStep("I will read the CSV file.", [("read_file", {"path": p["path"]})])
            rows = [line.split(",") for line in data["content"].strip().split("\n")[1:]]
            pick = max if p["most"] == "highest" else min
            region, units = pick(rows, key=lambda r: int(r[1]))
            return Answer(f"In {_base(p['path'])}, {region} has the {p['most']} units ({units}).")
        if family == "count_files":
            [listing] = yield OracleStep("I will list the folder.", [("list_directory", {"path": p["path"]})])
            return Answer(f"There are {listing['n_files']} files in {p['path']}.")
        if family == "rename_file":
            [moved] = yield OracleStep("Renaming is a move within the same folder.", [("move_path", {"source": p["source"], "destination": p["destination"]})])
            return Answer(f"Renamed {_base(moved['moved'])} to {_base(moved['to'])} in {_parent(moved['to'])}.")
        if family == "busiest_log":
            [errors] = yield OracleStep("First I count the ERROR lines per log file.", [("search_files", {"pattern": "ERROR", "path": f"{HOME}/logs"})])
            top, count = max(errors["files"].items(), key=lambda kv: kv[1])
            [second] = yield OracleStep(f"{_base(top)} has the most ERROR lines ({count}); now its {p['level']} lines.", [("search_files", {"pattern": p["level"], "path": top})])
            return Answer(f"{_base(top)} has the most ERROR lines ({count}); it has {second['count']} {p['level']} lines.")
        if family == "latest_report":
            [listing] = yield OracleStep("I will list the reports; their names carry the date.", [("list_directory", {"path": f"{HOME}/reports"})])
            latest = f"{HOME}/reports/{max(listing['files'])}"
            [report] = yield OracleStep(f"The latest is {_base(latest)}; I will read it.", [("read_file", {"path": latest})])
            fields = dict(line.split(": ", 1) for line in report["content"].strip().split("\n"))
            return Answer(f"The latest report, {_base(latest)}, was written by {fields['author']} and lists {fields['incidents']} incidents.")
        if family == "error_summary":
            [found] = yield OracleStep(f"I will count the {p['level']} lines across the logs.", [("search_files", {"pattern": p["level"], "path": f"{HOME}/logs"})])
            [written] = yield OracleStep(f"There are {found['count']}; now I save the number.", [("write_file", {"path": p["output"], "content": f"{found['count']}\n"})])
            return Answer(f"There are {found['count']} {p['level']} lines in the logs; I wrote the number to {written['path']}.")
        if family == "clean_tmp":
            [found] = yield OracleStep("I will find the .tmp files by name.", [("search_files", {"pattern": "*.tmp", "path": HOME, "mode": "name"})])
            yield OracleStep(f"I will delete the {found['count']} .tmp files.", [("delete_path", {"path": path}) for path in found["matches"]])
            return Answer(f"Deleted {found['count']} .tmp files: {', '.join(found['matches'])}.")
        if family == "archive_error_logs":
            [errors] = yield OracleStep("First I count the ERROR lines per log file.", [("search_files", {"pattern": "ERROR", "path": f"{HOME}/logs"})])
            noisy = [path for path, n in errors["files"].items() if n >= p["threshold"]]
            yield OracleStep(f"{len(noisy)} logs have at least {p['threshold']} ERROR lines; I will move them to the archive.", [("move_path", {"source": path, "destination": ARCHIVE}) for path in noisy])
            return Answer(f"Moved {', '.join(_base(x) for x in noisy)} into {ARCHIVE}.")
        if family == "facts_many":
            reads = yield OracleStep(f"The {len(p['facts'])} facts are in different files; I will read them at once.", [("read_file", {"path": f["path"]}) for f in p["facts"]])
            content = {r["path"]: r["content"] for r in reads}
            values = [_fact(content, f["path"], f["field"]) for f in p["facts"]]
            return Answer("; ".join(f"{_base(f['path'])}: {f['field']} {v}" for f, v in zip(p["facts"], values)))
        if family == "create_many":
            yield OracleStep(f"I will write the {len(p['files'])} files at once.", [("write_file", {"path": f["path"], "content": f["content"] + "\n"}) for f in p["files"]])
            return Answer(f"Created {_join([f['path'] for f in p['files']])}.")
        if family == "move_many":
            yield OracleStep(f"I will move the {len(p['paths'])} files at once.", [("move_path", {"source": path, "destination": ARCHIVE}) for path in p["paths"]])
            return Answer(f"Moved {', '.join(_base(x) for x in p['paths'])} into {ARCHIVE}.")
        if family in ("keyword_field", "keyword_archive"):
            [found] = yield OracleStep(f"I need the file that mentions {p['keyword']} first.", [("search_files", {"pattern": p["keyword"], "path": f"{HOME}/docs"})])
            path = next(iter(found["files"]))
            if family == "keyword_archive":
                [moved] = yield OracleStep(f"It is {path}; now I move it to the archive.", [("move_path", {"source": path, "destination": ARCHIVE})])
                return Answer(f"The note about {p['keyword']} was {_base(path)}; I moved it to {moved['to']}.")
            [note] = yield OracleStep(f"It is {path}; now I read it.", [("read_file", {"path": path})])
            value = re.search(rf"^{p['field']}: (.+)$", note["content"], re.M).group(1)
            return Answer(f"{_base(path)} mentions {p['keyword']}; its {p['field']} is {value}.")
        if family == "config_count":
            [config] = yield OracleStep("I will read the settings to find the log file.", [("read_file", {"path": world.config["path"]})])
            log = re.search(r"^log_file = (.+)$", config["content"], re.M).group(1)
            [found] = yield OracleStep(f"It writes to {log}; now I count the {p['level']} lines there.", [("search_files", {"pattern": p["level"], "path": log})])
            return Answer(f"config.ini points to {log}, which has {found['count']} {p['level']} lines.")
        raise ValueError(f"filesystem: no oracle for family {family!r}")

    # --- the verifier -------------------------------------------------------------------------------------

    def _plan(self) -> list[dict[str, str | None]]:
        """What a reorganising task should do, as units of work (path -> expected content, None = gone)."""
        p, family, world = self.task.params, self.task.params["family"], self._world_data
        initial = world.files
        if family == "rename_file":
            return [{p["source"]: None, p["destination"]: initial[p["source"]]}]
        if family == "create_many":
            return [{f["path"]: f["content"]} for f in p["files"]]
        if family == "error_summary":
            return [{p["output"]: str(sum(_count(initial, p["level"], f"{HOME}/logs").values()))}]
        if family == "clean_tmp":
            return [{path: None} for path in sorted(initial) if path.endswith(".tmp")]
        if family in ("archive_error_logs", "move_many", "keyword_archive"):
            if family == "archive_error_logs":
                paths = [path for path, n in _count(initial, "ERROR", f"{HOME}/logs").items() if n >= p["threshold"]]
            elif family == "move_many":
                paths = p["paths"]
            else:
                paths = list(_count(initial, p["keyword"], f"{HOME}/docs"))
            return [{path: None, f"{ARCHIVE}/{_base(path)}": initial[path]} for path in paths]
        return []

    def _expected_answer(self) -> tuple[list[Any], list[str], int | None]:
        """The facts a correct answer states, wrong alternatives it must not name, and a cap on numbers in it."""
        p, family, world = self.task.params, self.task.params["family"], self._world_data
        initial = world.files
        basenames = sorted({_base(path) for path in initial})
        if family == "find_keyword":
            [target] = _count(initial, p["keyword"], p["root"])
            return [_base(target)], [b for b in basenames if b != _base(target)], None
        if family == "count_level":
            return [_count(initial, p["level"], p["path"]).get(p["path"], 0)], [], 4
        if family == "csv_top":
            [csv] = [c for c in world.csvs if c["path"] == p["path"]]
            pick = max if p["most"] == "highest" else min
            region = pick(csv["rows"], key=lambda r: r[1])[0]
            return [region], [r for r in REGIONS if r != region], None
        if family == "count_files":
            return [sum(_parent(path) == p["path"] for path in initial)], [], 4
        if family == "busiest_log":
            counts = _count(initial, "ERROR", f"{HOME}/logs")
            top = max(counts, key=counts.get)
            second = _count(initial, p["level"], top).get(top, 0)
            return [_base(top), second], [_base(lg["path"]) for lg in world.logs if lg["path"] != top], 5
        if family == "latest_report":
            latest = world.reports[-1]
            return [latest["author"], latest["incidents"]], [r["author"] for r in world.reports[:-1]], 7
        if family == "facts_many":
            return [_fact(initial, f["path"], f["field"]) for f in p["facts"]], [], None
        if family == "keyword_field":
            [note] = [n for n in world.notes if n["keyword"] == p["keyword"]]
            return [note[p["field"]]], [n[p["field"]] for n in world.notes if n is not note], None
        if family == "config_count":
            log = world.config["log"]
            return [_count(initial, p["level"], log).get(log, 0)], [], 4
        raise ValueError(f"filesystem: no verifier for family {family!r}")

    def _verify(self, answer: str | None) -> float:
        plan = self._plan()
        expected = dict(self._world_data.files)
        for unit in plan:
            for path, content in unit.items():
                if content is None:
                    expected.pop(path, None)
                else:
                    expected[path] = content
        touched = {path for unit in plan for path in unit}
        collateral = sum(1 for path in set(expected) | set(self._files) if path not in touched and expected.get(path) != self._files.get(path))
        if self.task.params["family"] in STATE_FAMILIES:
            score = sum(all(_same(self._files.get(path), content) for path, content in unit.items()) for unit in plan) / len(plan)
        else:
            values, wrong, max_numbers = self._expected_answer()
            score = share_mentioned(answer, values)
            if any(mentions(answer, w) for w in wrong):
                score = 0.0  # naming the alternatives is not an answer
            if max_numbers is not None and sum(w[0].isdigit() for w in normalise(answer).split()) > max_numbers:
                score = 0.0  # a count answer that lists many numbers is a guess
        return max(0.0, score - COLLATERAL_PENALTY * collateral)


def _same(actual: str | None, expected: str | None) -> bool:
    if expected is None:
        return actual is None
    return actual is not None and actual.strip() == expected.strip()
