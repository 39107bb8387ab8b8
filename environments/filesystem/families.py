"""The filesystem's task families: for each, how a task is drawn from a home folder, how the expert solves
it, and (for questions) what a correct answer states. Reorganising tasks have no hand-written expected tree:
they are verified against the tree the expert's calls leave (see ``ToolEnvironment._verify``).

Each draw picks its request's phrasing itself, where the draw order has always put it (often before the
paths are written out); the family's phrasing proper is the frame around the request, picked last.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import Any

from environments.base import Answer, OracleStep
from environments.families import Drawn, Oracle, TaskFamily, Wording
from environments.filesystem.phrasings import FACT_WORDS, FRAMES, HOME_NAMES, REQUESTS, TMP_HOME_NAMES
from environments.filesystem.world import (
    ARCHIVE, CSV_NAMES, DOCS, HOME, LOGS, MODULES, REGIONS, REPORTS, SERVICES, TOPICS, Home, _base, _count, _fact, _parent, _World,
)

NEW_FILES = ["groceries.txt", "ideas.md", "contacts.txt", "packing.txt", "reading.md", "goals.md", "gifts.txt", "chores.txt", "recipes.md", "travel.md", "birthdays.txt", "plants.txt"]
NEW_TEXTS = [
    "buy milk and eggs", "call the plumber on Monday", "pack the blue charger", "read two chapters", "run 5 km on Sunday",
    "water the fern", "book the train tickets", "send the invoice to Kofi", "renew the library card", "fix the bike light",
]
# What a correct answer to a question states: its values, the wrong alternatives it must not name, and the
# most numbers it may list (None: no cap).
Expected = tuple[list[Any], list[Any], int | None]


def _display(rng: random.Random, path: str) -> str:
    """How a request writes a path: absolute, from ~, or relative to the home folder."""
    relative = path[len(HOME) + 1 :]
    return rng.choice([path, f"~/{relative}", relative])


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def framed(values: dict[str, Any], entities: list[str], request: str) -> Drawn:
    """A draw's result: the task's values and entities, and the request its frame is filled with."""
    return values, entities, Wording({"request": request})


# --- single: one call ----------------------------------------------------------------------------------------

def draw_find_keyword(rng: random.Random, home: Home) -> Drawn | None:
    notes = home.keyword_notes()
    if not notes:
        return None
    note = rng.choice(notes)
    kw, root = note["keyword"], rng.choice([DOCS, DOCS, HOME])
    where = _display(rng, root) if root != HOME else rng.choice(HOME_NAMES)
    return framed({"keyword": kw, "root": root}, [kw, "docs"], rng.choice(REQUESTS["find_keyword"]).format(d=where, k=kw))


def solve_find_keyword(env: Any, p: dict) -> Oracle:
    [found] = yield OracleStep(f"I will search the files under {p['root']} for '{p['keyword']}'.", [("search_files", {"pattern": p["keyword"], "path": p["root"]})])
    path = next(iter(found["files"]))
    return Answer(f"The file that mentions {p['keyword']} is {path}.")


def expect_find_keyword(world: _World, p: dict) -> Expected:
    [target] = _count(world.files, p["keyword"], p["root"])
    return [_base(target)], [b for b in sorted({_base(path) for path in world.files}) if b != _base(target)], None


def draw_count_level(rng: random.Random, home: Home) -> Drawn | None:
    logs = [lg for lg in home.world.logs if lg["service"] in home.pool(SERVICES)]
    if not logs:
        return None
    path, level = rng.choice(logs)["path"], rng.choice(["ERROR", "ERROR", "WARN", "INFO"])
    request = rng.choice(REQUESTS["count_level"]).format(p=_display(rng, path), l=level)
    return framed({"path": path, "level": level}, [_base(path), level], request)


def solve_count_level(env: Any, p: dict) -> Oracle:
    [found] = yield OracleStep(f"A content search for {p['level']} in that file counts the lines.", [("search_files", {"pattern": p["level"], "path": p["path"]})])
    return Answer(f"{_base(p['path'])} has {found['count']} {p['level']} lines.")


def expect_count_level(world: _World, p: dict) -> Expected:
    return [_count(world.files, p["level"], p["path"]).get(p["path"], 0)], [], 4


def draw_csv_top(rng: random.Random, home: Home) -> Drawn | None:
    csvs = [c for c in home.world.csvs if c["name"] in home.pool(CSV_NAMES)]
    if not csvs:
        return None
    path, most = rng.choice(csvs)["path"], rng.choice(["highest", "lowest"])
    return framed({"path": path, "most": most}, [_base(path)], rng.choice(REQUESTS["csv_top"]).format(m=most, p=_display(rng, path)))


def solve_csv_top(env: Any, p: dict) -> Oracle:
    [data] = yield OracleStep("I will read the CSV file.", [("read_file", {"path": p["path"]})])
    rows = [line.split(",") for line in data["content"].strip().split("\n")[1:]]
    pick = max if p["most"] == "highest" else min
    region, units = pick(rows, key=lambda r: int(r[1]))
    return Answer(f"In {_base(p['path'])}, {region} has the {p['most']} units ({units}).")


def expect_csv_top(world: _World, p: dict) -> Expected:
    [csv] = [c for c in world.csvs if c["path"] == p["path"]]
    pick = max if p["most"] == "highest" else min
    region = pick(csv["rows"], key=lambda r: r[1])[0]
    return [region], [r for r in REGIONS if r != region], None


def draw_count_files(rng: random.Random, home: Home) -> Drawn:
    folder = f"{HOME}/{rng.choice(['photos', 'photos', 'reports', 'logs', 'data', 'docs'])}"
    return framed({"path": folder}, [_base(folder)], rng.choice(REQUESTS["count_files"]).format(d=_display(rng, folder)))


def solve_count_files(env: Any, p: dict) -> Oracle:
    [listing] = yield OracleStep("I will list the folder.", [("list_directory", {"path": p["path"]})])
    return Answer(f"There are {listing['n_files']} files in {p['path']}.")


def expect_count_files(world: _World, p: dict) -> Expected:
    return [sum(_parent(path) == p["path"] for path in world.files)], [], 4


def draw_rename_file(rng: random.Random, home: Home) -> Drawn | None:
    notes = [n for n in home.world.notes if n["topic"] in home.pool(TOPICS)]
    if not notes:
        return None
    note = rng.choice(notes)
    source = note["path"]
    target = f"{DOCS}/{rng.choice(['{t}_final.md', '{t}_v2.md', '{t}_old.md', 'archived_{t}.md']).format(t=note['topic'])}"
    if target in home.world.files:
        return None
    request = rng.choice(REQUESTS["rename_file"]).format(s=_display(rng, source), d=_display(rng, target), n=_base(target))
    return framed({"source": source, "destination": target}, [_base(source), _base(target)], request)


def solve_rename_file(env: Any, p: dict) -> Oracle:
    [moved] = yield OracleStep("Renaming is a move within the same folder.", [("move_path", {"source": p["source"], "destination": p["destination"]})])
    return Answer(f"Renamed {_base(moved['moved'])} to {_base(moved['to'])} in {_parent(moved['to'])}.")


# --- multi-step: one call after another -------------------------------------------------------------------

def draw_busiest_log(rng: random.Random, home: Home) -> Drawn:
    second = rng.choice(["WARN", "INFO", "DEBUG"])
    return framed({"level": second}, ["logs", "ERROR", second], rng.choice(REQUESTS["busiest_log"]).format(d=_display(rng, LOGS), l=second))


def solve_busiest_log(env: Any, p: dict) -> Oracle:
    [errors] = yield OracleStep("First I count the ERROR lines per log file.", [("search_files", {"pattern": "ERROR", "path": LOGS})])
    top, count = max(errors["files"].items(), key=lambda kv: kv[1])
    [second] = yield OracleStep(f"{_base(top)} has the most ERROR lines ({count}); now its {p['level']} lines.", [("search_files", {"pattern": p["level"], "path": top})])
    return Answer(f"{_base(top)} has the most ERROR lines ({count}); it has {second['count']} {p['level']} lines.")


def expect_busiest_log(world: _World, p: dict) -> Expected:
    counts = _count(world.files, "ERROR", LOGS)
    top = max(counts, key=counts.get)
    second = _count(world.files, p["level"], top).get(top, 0)
    return [_base(top), second], [_base(lg["path"]) for lg in world.logs if lg["path"] != top], 5


def draw_latest_report(rng: random.Random, home: Home) -> Drawn:
    return framed({}, ["reports", "report"], rng.choice(REQUESTS["latest_report"]).format(d=_display(rng, REPORTS)))


def solve_latest_report(env: Any, p: dict) -> Oracle:
    [listing] = yield OracleStep("I will list the reports; their names carry the date.", [("list_directory", {"path": REPORTS})])
    latest = f"{REPORTS}/{max(listing['files'])}"
    [report] = yield OracleStep(f"The latest is {_base(latest)}; I will read it.", [("read_file", {"path": latest})])
    fields = dict(line.split(": ", 1) for line in report["content"].strip().split("\n"))
    return Answer(f"The latest report, {_base(latest)}, was written by {fields['author']} and lists {fields['incidents']} incidents.")


def expect_latest_report(world: _World, p: dict) -> Expected:
    latest = world.reports[-1]
    return [latest["author"], latest["incidents"]], [r["author"] for r in world.reports[:-1]], 7


def draw_error_summary(rng: random.Random, home: Home) -> Drawn:
    level = rng.choice(["ERROR", "WARN"])
    out = f"{HOME}/{rng.choice(['reports/{l}_total.txt', 'reports/{l}_count.txt', '{l}s.txt'])}".format(l=level.lower())
    request = rng.choice(REQUESTS["error_summary"]).format(l=level, d=_display(rng, LOGS), o=_display(rng, out))
    return framed({"level": level, "output": out}, [_base(out), "logs", level], request)


def solve_error_summary(env: Any, p: dict) -> Oracle:
    [found] = yield OracleStep(f"I will count the {p['level']} lines across the logs.", [("search_files", {"pattern": p["level"], "path": LOGS})])
    [written] = yield OracleStep(f"There are {found['count']}; now I save the number.", [("write_file", {"path": p["output"], "content": f"{found['count']}\n"})])
    return Answer(f"There are {found['count']} {p['level']} lines in the logs; I wrote the number to {written['path']}.")


def draw_clean_tmp(rng: random.Random, home: Home) -> Drawn:
    return framed({}, ["tmp"], rng.choice(REQUESTS["clean_tmp"]).format(h=rng.choice(TMP_HOME_NAMES)))


def solve_clean_tmp(env: Any, p: dict) -> Oracle:
    [found] = yield OracleStep("I will find the .tmp files by name.", [("search_files", {"pattern": "*.tmp", "path": HOME, "mode": "name"})])
    yield OracleStep(f"I will delete the {found['count']} .tmp files.", [("delete_path", {"path": path}) for path in found["matches"]])
    return Answer(f"Deleted {found['count']} .tmp files: {', '.join(found['matches'])}.")


def draw_archive_error_logs(rng: random.Random, home: Home) -> Drawn | None:
    counts = [_count(home.world.files, "ERROR", lg["path"]).get(lg["path"], 0) for lg in home.world.logs]
    thresholds = [t for t in range(1, 6) if 0 < sum(c >= t for c in counts) < len(counts)]
    if not thresholds:
        return None
    threshold = rng.choice(thresholds)
    request = rng.choice(REQUESTS["archive_error_logs"]).format(d=_display(rng, LOGS), t=threshold, a=_display(rng, ARCHIVE))
    return framed({"threshold": threshold}, ["archive", "logs", "ERROR"], request)


def solve_archive_error_logs(env: Any, p: dict) -> Oracle:
    [errors] = yield OracleStep("First I count the ERROR lines per log file.", [("search_files", {"pattern": "ERROR", "path": LOGS})])
    noisy = [path for path, n in errors["files"].items() if n >= p["threshold"]]
    yield OracleStep(f"{len(noisy)} logs have at least {p['threshold']} ERROR lines; I will move them to the archive.", [("move_path", {"source": path, "destination": ARCHIVE}) for path in noisy])
    return Answer(f"Moved {', '.join(_base(x) for x in noisy)} into {ARCHIVE}.")


# --- parallel: independent calls, all at once --------------------------------------------------------------

def draw_facts_many(rng: random.Random, home: Home) -> Drawn | None:
    world = home.world
    notes = [n for n in world.notes if n["topic"] in home.pool(TOPICS)]
    modules = [m for m in world.modules if m["module"] in home.pool(MODULES)]
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
    return framed({"facts": facts}, [_base(f["path"]) for f in facts], rng.choice(REQUESTS["facts_many"]).format(a=asked))


def solve_facts_many(env: Any, p: dict) -> Oracle:
    reads = yield OracleStep(f"The {len(p['facts'])} facts are in different files; I will read them at once.", [("read_file", {"path": f["path"]}) for f in p["facts"]])
    content = {r["path"]: r["content"] for r in reads}
    values = [_fact(content, f["path"], f["field"]) for f in p["facts"]]
    return Answer("; ".join(f"{_base(f['path'])}: {f['field']} {v}" for f, v in zip(p["facts"], values)))


def expect_facts_many(world: _World, p: dict) -> Expected:
    return [_fact(world.files, f["path"], f["field"]) for f in p["facts"]], [], None


def draw_move_many(rng: random.Random, home: Home) -> Drawn | None:
    world = home.world
    candidates = [n["path"] for n in world.notes if n["topic"] in home.pool(TOPICS)]
    candidates += [lg["path"] for lg in world.logs if lg["service"] in home.pool(SERVICES)]
    candidates += [m["path"] for m in world.modules if m["module"] in home.pool(MODULES)]
    if len(candidates) < 2:
        return None
    paths = rng.sample(candidates, rng.randint(2, min(3, len(candidates))))
    request = rng.choice(REQUESTS["move_many"]).format(f=_join([_display(rng, p) for p in paths]), a=_display(rng, ARCHIVE))
    return framed({"paths": paths}, [*(_base(p) for p in paths), "archive"], request)


def solve_move_many(env: Any, p: dict) -> Oracle:
    yield OracleStep(f"I will move the {len(p['paths'])} files at once.", [("move_path", {"source": path, "destination": ARCHIVE}) for path in p["paths"]])
    return Answer(f"Moved {', '.join(_base(x) for x in p['paths'])} into {ARCHIVE}.")


def draw_create_many(rng: random.Random, home: Home) -> Drawn:
    first = rng.choice(home.pool(NEW_FILES))
    names = [first, *rng.sample([n for n in NEW_FILES if n != first], rng.randint(1, 2))]
    folder = f"{HOME}/{rng.choice(['notes', 'personal', 'docs/personal'])}"
    files = [{"path": f"{folder}/{name}", "content": text} for name, text in zip(names, rng.sample(NEW_TEXTS, len(names)))]
    items = _join([f"{_display(rng, f['path'])} containing \"{f['content']}\"" for f in files])
    return framed({"files": files}, [*names, _base(folder)], rng.choice(REQUESTS["create_many"]).format(i=items))


def solve_create_many(env: Any, p: dict) -> Oracle:
    yield OracleStep(f"I will write the {len(p['files'])} files at once.", [("write_file", {"path": f["path"], "content": f["content"] + "\n"}) for f in p["files"]])
    return Answer(f"Created {_join([f['path'] for f in p['files']])}.")


# --- nested: a later call needs what an earlier one returned -----------------------------------------------

def draw_keyword_field(rng: random.Random, home: Home) -> Drawn | None:
    notes = home.keyword_notes()
    if not notes:
        return None
    kw, what = rng.choice(notes)["keyword"], rng.choice(["owner", "deadline"])
    request = rng.choice(REQUESTS["keyword_field"][what]).format(d=_display(rng, DOCS), k=kw, w=what)
    return framed({"keyword": kw, "field": what}, [kw], request)


def find_note(p: dict) -> OracleStep:
    return OracleStep(f"I need the file that mentions {p['keyword']} first.", [("search_files", {"pattern": p["keyword"], "path": DOCS})])


def solve_keyword_field(env: Any, p: dict) -> Oracle:
    [found] = yield find_note(p)
    path = next(iter(found["files"]))
    [note] = yield OracleStep(f"It is {path}; now I read it.", [("read_file", {"path": path})])
    value = re.search(rf"^{p['field']}: (.+)$", note["content"], re.M).group(1)
    return Answer(f"{_base(path)} mentions {p['keyword']}; its {p['field']} is {value}.")


def expect_keyword_field(world: _World, p: dict) -> Expected:
    [note] = [n for n in world.notes if n["keyword"] == p["keyword"]]
    return [note[p["field"]]], [n[p["field"]] for n in world.notes if n is not note], None


def draw_config_count(rng: random.Random, home: Home) -> Drawn | None:
    config = home.world.config
    if config["log"] not in [lg["path"] for lg in home.world.logs if lg["service"] in home.pool(SERVICES)]:
        return None
    level = rng.choice(["ERROR", "ERROR", "WARN", "INFO"])
    return framed({"level": level}, ["config.ini", level], rng.choice(REQUESTS["config_count"]).format(c=_display(rng, config["path"]), l=level))


def solve_config_count(env: Any, p: dict) -> Oracle:
    [config] = yield OracleStep("I will read the settings to find the log file.", [("read_file", {"path": env._world_data.config["path"]})])
    log = re.search(r"^log_file = (.+)$", config["content"], re.M).group(1)
    [found] = yield OracleStep(f"It writes to {log}; now I count the {p['level']} lines there.", [("search_files", {"pattern": p["level"], "path": log})])
    return Answer(f"config.ini points to {log}, which has {found['count']} {p['level']} lines.")


def expect_config_count(world: _World, p: dict) -> Expected:
    log = world.config["log"]
    return [_count(world.files, p["level"], log).get(log, 0)], [], 4


def draw_keyword_archive(rng: random.Random, home: Home) -> Drawn | None:
    notes = home.keyword_notes()
    if not notes:
        return None
    kw = rng.choice(notes)["keyword"]
    request = rng.choice(REQUESTS["keyword_archive"]).format(d=_display(rng, DOCS), k=kw, a=_display(rng, ARCHIVE))
    return framed({"keyword": kw}, [kw, "archive"], request)


def solve_keyword_archive(env: Any, p: dict) -> Oracle:
    [found] = yield find_note(p)
    path = next(iter(found["files"]))
    [moved] = yield OracleStep(f"It is {path}; now I move it to the archive.", [("move_path", {"source": path, "destination": ARCHIVE})])
    return Answer(f"The note about {p['keyword']} was {_base(path)}; I moved it to {moved['to']}.")


# --- the registry: the order is the draw order within each difficulty -------------------------------------

def _family(name: str, difficulties: tuple[str, ...], tools: tuple[str, ...], draw: Callable[..., Drawn | None], solve: Callable[..., Oracle],
            expected: Callable[..., Expected] | None = None) -> TaskFamily:
    """A question states ``expected`` values; a task without them reorganises files. Every expert starts with
    the first of its tools, which a recovery task makes fail once."""
    return TaskFamily(name, difficulties, FRAMES, tools, draw, solve, expected, writes=expected is None, fail_first=tools[0])


FAMILIES = (
    _family("find_keyword", ("single", "recovery"), ("search_files",), draw_find_keyword, solve_find_keyword, expect_find_keyword),
    _family("count_level", ("single", "recovery"), ("search_files", "read_file"), draw_count_level, solve_count_level, expect_count_level),
    _family("csv_top", ("single",), ("read_file",), draw_csv_top, solve_csv_top, expect_csv_top),
    _family("count_files", ("single",), ("list_directory",), draw_count_files, solve_count_files, expect_count_files),
    _family("rename_file", ("single",), ("move_path",), draw_rename_file, solve_rename_file),
    _family("busiest_log", ("multi_step", "recovery"), ("search_files",), draw_busiest_log, solve_busiest_log, expect_busiest_log),
    _family("latest_report", ("multi_step",), ("list_directory", "read_file"), draw_latest_report, solve_latest_report, expect_latest_report),
    _family("error_summary", ("multi_step",), ("search_files", "write_file"), draw_error_summary, solve_error_summary),
    _family("clean_tmp", ("multi_step",), ("search_files", "delete_path"), draw_clean_tmp, solve_clean_tmp),
    _family("facts_many", ("parallel", "recovery"), ("read_file",), draw_facts_many, solve_facts_many, expect_facts_many),
    _family("move_many", ("parallel",), ("move_path",), draw_move_many, solve_move_many),
    _family("create_many", ("parallel",), ("write_file",), draw_create_many, solve_create_many),
    _family("keyword_field", ("nested", "recovery"), ("search_files", "read_file"), draw_keyword_field, solve_keyword_field, expect_keyword_field),
    _family("config_count", ("nested",), ("read_file", "search_files"), draw_config_count, solve_config_count, expect_config_count),
    _family("keyword_archive", ("nested",), ("search_files", "move_path"), draw_keyword_archive, solve_keyword_archive),
    # last: the last multi_step family, and the recovery families draw it after keyword_field
    _family("archive_error_logs", ("multi_step", "recovery"), ("search_files", "move_path"), draw_archive_error_logs, solve_archive_error_logs),
)
