"""The home folder a filesystem task is set in: its seeded content, path helpers, and searching text.

The whole "disk" is a dict of normalised absolute POSIX paths -> text, plus a set of directories; nothing
here touches the real file system. A world is a small home folder (``/home/user``: notes with owners,
deadlines and project codenames, service logs with levels, code modules, CSV data, dated reports, photos,
stray ``.tmp`` files, an empty ``archive``) drawn from the task's world seed.
"""

from __future__ import annotations

import functools
import random
import re
from dataclasses import dataclass, field
from typing import Any

from environments.base import entity_pool

HOME = "/home/user"
ARCHIVE = f"{HOME}/archive"
DOCS, LOGS, REPORTS = f"{HOME}/docs", f"{HOME}/logs", f"{HOME}/reports"

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

# Where each fact a facts_many task asks for sits in its file.
FACT_RE = {
    "owner": r"^owner: (.+)$", "deadline": r"^deadline: (.+)$", "version": r'^__version__ = "(.+)"$', "author": r"^author: (.+)$", "port": r"^port = (.+)$",
}


def _fact(files: dict[str, str], path: str, field: str) -> str:
    return re.search(FACT_RE[field], files[path], re.M).group(1)


class Home:
    """What a task is drawn from: one world, and the entities a task may be about (the held-out ones for
    novel test tasks)."""

    def __init__(self, seed: int, novel: bool):
        self.world = _world(seed)
        self.novel = novel

    def pool(self, names: list[str]) -> list[str]:
        return entity_pool(names, self.novel)

    def keyword_notes(self) -> list[dict[str, str]]:
        """Notes whose codename appears in no other file, restricted to the task's entity pool."""
        pool = set(self.pool(KEYWORDS))
        return [n for n in self.world.notes if n["keyword"] in pool and len(_grep(self.world.files, n["keyword"], "/")) == 1]
