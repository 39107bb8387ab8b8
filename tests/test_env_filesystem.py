"""The filesystem environment: tool semantics, path safety, the verifier, and hand-played episodes."""

from __future__ import annotations

import builtins
import io
import json
import re
import string
from pathlib import Path

import pytest

from environments import filesystem
from environments.episode import Episode
from environments.filesystem import FilesystemEnv
from environments.filesystem.env import MAX_FILE_CHARS, MAX_FILES
from environments.filesystem.phrasings import FRAMES, REQUESTS
from environments.filesystem.world import ARCHIVE, FACT_RE, HOME, _world
from environments.record import DIFFICULTIES, Task
from hermes_train.rewards import atropos_reward

SEED = 12345


def make_task(family: str, difficulty: str = "single", world_seed: int = SEED, **params) -> Task:
    return Task(
        env="filesystem", split="train", difficulty=difficulty, seed=0, family=family, prompt=f"a {family} task",
        params={"world_seed": world_seed, "family": family, **params}, relevant_tools=[], relevant_entities=["docs"],
    )


def fresh() -> FilesystemEnv:
    """An episode on the fixed world SEED (a count_files task about the photos folder)."""
    env = FilesystemEnv()
    env.reset(make_task("count_files", path=f"{HOME}/photos"))
    return env


def task_of(family: str, split: str = "train") -> Task:
    difficulty = next(d for d, fams in FilesystemEnv.families.items() if any(f.split(" ")[0] == family for f in fams))
    for seed in range(500):
        task = FilesystemEnv.generate_task(split, difficulty, seed)
        if task.params["family"] == family:
            return task
    raise AssertionError(f"no {family} task")


def call_text(name: str, arguments: dict, think: str = "step") -> str:
    return f"<think>\n{think}\n</think>\n<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


def error_of(observation) -> str:
    assert isinstance(observation, dict) and "error" in observation, observation
    return observation["error"]


# --- the world -----------------------------------------------------------------------------------------------


def test_the_world_is_seeded_small_and_varied():
    world = _world(SEED)
    assert world is _world(SEED)  # cached
    assert world.files != _world(SEED + 1).files
    assert 15 <= len(world.files) <= 40
    assert all(path.startswith(HOME + "/") for path in world.files)
    assert len({path.rsplit("/", 1)[1] for path in world.files}) == len(world.files), "file names are unique"
    assert ARCHIVE in world.dirs and not any(p.startswith(ARCHIVE + "/") for p in world.files)
    kinds = {path.rsplit(".", 1)[1] for path in world.files}
    assert {"md", "log", "py", "ini", "csv", "jpg", "tmp", "txt"} <= kinds
    assert all(len(content) < 1500 for content in world.files.values())


def test_codenames_of_generated_tasks_appear_in_exactly_one_file():
    for family in ("find_keyword", "keyword_field", "keyword_archive"):
        for split in ("train", "test"):
            task = task_of(family, split)
            files = _world(task.params["world_seed"]).files
            assert sum(task.params["keyword"] in text for text in files.values()) == 1


# --- tools -------------------------------------------------------------------------------------------------


def test_list_directory():
    env = fresh()
    home = env.list_directory()
    assert home["path"] == HOME and {"archive/", "docs/", "logs/", "src/", "data/", "reports/", "photos/"} <= set(home["dirs"])
    assert "README.md" in home["files"] and home["n_files"] == len(home["files"])
    photos = env.list_directory("photos")  # relative to /home/user
    assert photos["n_files"] == sum(p.startswith(f"{HOME}/photos/") for p in env._files) and photos["dirs"] == []
    assert env.list_directory("~/archive") == {"path": ARCHIVE, "n_dirs": 0, "n_files": 0, "dirs": [], "files": []}
    assert env.list_directory("/")["dirs"] == ["home/"]
    assert "is a file" in error_of(env.list_directory("README.md"))
    assert "no such file or directory" in error_of(env.list_directory("/home/user/nothing"))


def test_list_directory_caps_long_listings():
    env = fresh()
    for i in range(30):
        env.write_file(f"many/f{i:02d}.txt", "x")
    listing = env.list_directory("many")
    assert listing["n_files"] == 30 and len(listing["files"]) == 20 and "10 more" in listing["more"]


def test_read_file_and_helpful_errors():
    env = fresh()
    note = _world(SEED).notes[0]
    read = env.read_file(note["path"].replace(HOME, "~"))
    assert read["path"] == note["path"] and read["content"] == _world(SEED).files[note["path"]]
    assert read["lines"] == read["content"].count("\n")
    assert f"owner: {note['owner']}" in read["content"]
    assert "is a directory" in error_of(env.read_file("docs"))
    wrong_folder = f"{HOME}/{note['path'].rsplit('/', 1)[1]}"
    assert f"did you mean {note['path']}" in error_of(env.read_file(wrong_folder))
    assert "list_directory or search_files" in error_of(env.read_file("/home/user/docs/zzzzzzzz.qq"))


def test_search_files_by_content_and_name():
    env = fresh()
    world = _world(SEED)
    errors = env.search_files("ERROR", "logs")
    per_file = {p: sum(" ERROR " in line for line in world.files[p].split("\n")) for p in world.files if p.endswith(".log")}
    assert errors["count"] == sum(per_file.values())
    assert errors["files"] == {p: n for p, n in sorted(per_file.items()) if n}
    assert all(re.fullmatch(r"[a-z]+\.log:\d+: .*ERROR.*", line) for line in errors["matches"])
    assert len(errors["matches"]) <= 8 and (errors["count"] <= 8 or "more" in errors)
    one = world.logs[0]["path"]
    single = env.search_files("INFO", one)
    assert single["count"] == per_file_count(world.files[one], "INFO") and all(m.startswith(one.rsplit("/", 1)[1] + ":") for m in single["matches"])
    logs = env.search_files("*.log", mode="name")
    assert sorted(logs["matches"]) == sorted(lg["path"] for lg in world.logs) and logs["count"] == len(world.logs)
    assert env.search_files("README", "/", mode="name")["matches"] == [f"{HOME}/README.md"]
    assert env.search_files("no such text anywhere", HOME) == {"pattern": "no such text anywhere", "count": 0, "files": {}, "matches": []}
    assert "non-empty" in error_of(env.search_files("", HOME))
    assert "too long" in error_of(env.search_files("x" * 101, HOME))
    assert env.record.calls[-1].status == "error"


def per_file_count(text: str, pattern: str) -> int:
    return sum(pattern in line for line in text.split("\n"))


def test_search_mode_is_an_enum():
    env = fresh()
    env.search_files("ERROR", HOME, "grep")
    assert env.record.calls[-1].status == "invalid"


def test_write_file_creates_overwrites_and_caps():
    env = fresh()
    assert env.write_file("notes/new/today.txt", "hello") == {"path": f"{HOME}/notes/new/today.txt", "chars": 5, "created": True}
    assert f"{HOME}/notes/new" in env._dirs and env.list_directory("notes")["dirs"] == ["new/"]
    assert env.write_file("~/notes/new/today.txt", "bye")["created"] is False
    assert env.read_file("notes/new/today.txt")["content"] == "bye"
    assert "too long" in error_of(env.write_file("big.txt", "x" * (MAX_FILE_CHARS + 1)))
    assert "is a directory" in error_of(env.write_file("docs", "x"))
    assert "is a file" in error_of(env.write_file("README.md/inner.txt", "x"))
    while len(env._files) < MAX_FILES:
        env.write_file(f"bulk/{len(env._files)}.txt", "x")
    assert "too many files" in error_of(env.write_file("one_more.txt", "x"))
    env.write_file("README.md", "overwriting an existing file is still allowed")


def test_move_path_renames_moves_and_refuses():
    env = fresh()
    world = _world(SEED)
    log = world.logs[0]["path"]
    name = log.rsplit("/", 1)[1]
    assert env.move_path(log, "archive") == {"moved": log, "to": f"{ARCHIVE}/{name}"}
    assert log not in env._files and env._files[f"{ARCHIVE}/{name}"] == world.files[log]
    assert env.move_path(f"{ARCHIVE}/{name}", f"{ARCHIVE}/renamed.log")["to"] == f"{ARCHIVE}/renamed.log"
    assert env.move_path("~/archive/renamed.log", "old/logs/")["to"] == f"{HOME}/old/logs/renamed.log"  # trailing slash: into a new folder
    other = world.logs[1]["path"]
    assert "already exists" in error_of(env.move_path(other, f"{HOME}/old/logs/renamed.log"))
    assert "no such file" in error_of(env.move_path(log, ARCHIVE))
    # Directories move with everything inside them.
    docs = sorted(p for p in env._files if p.startswith(f"{HOME}/docs/"))
    assert env.move_path("docs", "archive/docs_2025")["to"] == f"{ARCHIVE}/docs_2025"
    assert sorted(p for p in env._files if p.startswith(f"{ARCHIVE}/docs_2025/")) == [p.replace(f"{HOME}/docs", f"{ARCHIVE}/docs_2025") for p in docs]
    assert f"{HOME}/docs" not in env._dirs and f"{ARCHIVE}/docs_2025" in env._dirs
    assert "into itself" in error_of(env.move_path("archive", "archive/inner"))
    assert "cannot be moved" in error_of(env.move_path(HOME, "~/elsewhere"))


def test_delete_path():
    env = fresh()
    tmp = _world(SEED).tmps[0]
    assert env.delete_path(tmp) == {"deleted": tmp} and tmp not in env._files
    assert "no such file" in error_of(env.delete_path(tmp))
    assert "not empty" in error_of(env.delete_path("logs"))
    assert env.delete_path("archive") == {"deleted": ARCHIVE} and ARCHIVE not in env._dirs
    assert "cannot be deleted" in error_of(env.delete_path("~"))


# --- safety -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("../../../../etc/passwd", "above the root"),
        ("/home/user/../../..", "above the root"),
        ("docs/\x00evil", "NUL"),
        ("a" * 300, "too long"),
        ("$(touch /tmp/pwned)", "invalid name"),
        ("docs/`id`", "invalid name"),
        ("   ", "empty"),
    ],
)
def test_bad_paths_are_refused_by_every_tool(path, message):
    env = fresh()
    before = dict(env._files)
    for observation in (
        env.read_file(path), env.list_directory(path), env.search_files("x", path), env.write_file(path, "x"),
        env.move_path(path, "archive"), env.move_path("README.md", path), env.delete_path(path),
    ):
        assert message in error_of(observation)
    assert env._files == before


def test_writes_are_confined_to_the_home_folder():
    env = fresh()
    assert "permission denied" in error_of(env.write_file("/etc/passwd", "root::0:0"))
    assert "permission denied" in error_of(env.move_path("README.md", "/tmp/README.md"))
    assert "permission denied" in error_of(env.delete_path("/home"))
    assert "no such file" in error_of(env.read_file("/etc/passwd"))  # the virtual tree has no /etc
    assert "already at that path" in error_of(env.move_path("docs/../README.md", "~"))
    assert env.move_path("docs/../README.md", "~/archive")["to"] == f"{ARCHIVE}/README.md"


def test_the_module_never_uses_the_real_file_system():
    for module in Path(filesystem.__file__).parent.glob("*.py"):
        assert not re.search(r"^\s*(import|from)\s+(os|pathlib|io|tempfile|glob)\b", module.read_text(), re.M), module.name


def test_episodes_run_with_the_real_file_system_locked(monkeypatch):
    tasks = [task_of(f) for f in ("error_summary", "archive_error_logs", "clean_tmp", "move_many", "keyword_archive", "rename_file")]
    FilesystemEnv.tool_schemas()  # schemas are built once, from source; afterwards nothing may touch the disk

    def refuse(*args, **kwargs):
        raise AssertionError(f"real file access: {args[:1]}")

    monkeypatch.setattr(builtins, "open", refuse)
    monkeypatch.setattr(io, "open", refuse)
    for task in tasks:
        result = FilesystemEnv.oracle(task)
        assert result.record.task_completion == 1.0, task.prompt


# --- verifier -----------------------------------------------------------------------------------------------


def test_answer_scoring_wrong_answers_and_guessing():
    task = task_of("keyword_field")
    env = FilesystemEnv()
    env.reset(task)
    note = next(n for n in env._world_data.notes if n["keyword"] == task.params["keyword"])
    value = note[task.params["field"]]
    others = [n[task.params["field"]] for n in env._world_data.notes if n is not note]
    assert env._verify(f"The {task.params['field']} is {value}.") == 1.0
    assert env._verify(f"The {task.params['field']} is {others[0]}.") == 0.0
    assert env._verify(f"It is one of {value}, {others[0]}.") == 0.0  # listing the alternatives earns nothing
    assert env._verify(None) == 0.0 and env._verify("") == 0.0


def test_count_answers_that_list_many_numbers_score_zero():
    env = fresh()
    n = sum(p.startswith(f"{HOME}/photos/") for p in env._files)
    assert env._verify(f"There are {n} photos.") == 1.0
    assert env._verify(f"There are {n + 1} photos.") == 0.0
    assert env._verify("It is 1, 2, 3, 4, 5, 6, 7 or 8.") == 0.0


def test_parallel_answers_get_partial_credit():
    task = task_of("facts_many")
    env = FilesystemEnv()
    env.reset(task)
    files = env._world_data.files
    values = [re.search(FACT_RE[f["field"]], files[f["path"]], re.M).group(1) for f in task.params["facts"]]
    assert len({f["path"].rsplit(".", 1)[1] for f in task.params["facts"]}) == len(values) >= 2, "facts come from different kinds of file"
    assert env._verify("; ".join(values)) == 1.0
    assert env._verify(values[0]) == pytest.approx(1 / len(values))
    assert env._verify("no idea") == 0.0


def test_create_many_checks_every_file():
    task = task_of("create_many")
    env = FilesystemEnv()
    env.reset(task)
    wanted = task.params["files"]
    env.write_file(wanted[0]["path"], wanted[0]["content"])
    assert env._verify("done") == pytest.approx(1 / len(wanted))
    env.write_file(wanted[1]["path"], "something else")
    assert env._verify("done") == pytest.approx(1 / len(wanted))
    for f in wanted:
        env.write_file(f["path"], f["content"] + "\n")
    assert env._verify("done") == 1.0


def test_state_tasks_get_credit_per_file_and_pay_for_collateral_damage():
    task = task_of("move_many")
    paths = task.params["paths"]
    env = FilesystemEnv()
    env.reset(task)
    assert env._verify("done") == 0.0  # nothing moved
    env.move_path(paths[0], ARCHIVE)
    assert env._verify("done") == pytest.approx(1 / len(paths))
    for path in paths[1:]:
        env.move_path(path, ARCHIVE)
    assert env._verify("done") == 1.0
    env.delete_path(f"{HOME}/README.md")  # an unrelated file
    assert env._verify("done") == pytest.approx(0.75)
    env.write_file("junk.txt", "x")
    assert env._verify("done") == pytest.approx(0.5)


def test_moving_to_the_wrong_place_or_copying_is_not_credited():
    task = task_of("keyword_archive")
    env = FilesystemEnv()
    env.reset(task)
    [source] = [n["path"] for n in env._world_data.notes if n["keyword"] == task.params["keyword"]]
    content = env._files[source]
    env.write_file(f"{ARCHIVE}/{source.rsplit('/', 1)[1]}", content)  # a copy, not a move
    assert env._verify("moved") == 0.0
    env.reset(task)
    env.move_path(source, f"{HOME}/elsewhere")  # wrong place: not done, and a stray file
    assert env._verify("moved") == 0.0


def test_summary_file_must_hold_just_the_number():
    task = task_of("error_summary")
    env = FilesystemEnv()
    env.reset(task)
    total = env.search_files(task.params["level"], "logs")["count"]
    env.write_file(task.params["output"], f"{total}\n")
    assert env._verify("ok") == 1.0
    env.write_file(task.params["output"], f"{total + 1}")
    assert env._verify("ok") == 0.0
    env.write_file(task.params["output"], f"total: {total} lines")
    assert env._verify("ok") == 0.0


def test_reorganising_is_verified_against_the_experts_calls_replayed():
    task = task_of("move_many")  # two or three moves in one turn
    oracle = FilesystemEnv.oracle(task)
    assert oracle.record.task_completion == 1.0
    moves = [c for c in oracle.record.calls if c.name == "move_path"]
    assert len(moves) == len(task.params["paths"]) >= 2
    env = FilesystemEnv()
    env.reset(task)
    for call in moves[:-1]:  # one of the expert's moves is missing
        env.move_path(**call.arguments)
    assert env._verify("done") == pytest.approx((len(moves) - 1) / len(moves))  # below 1
    # The expected tree is the one the expert's calls leave, not a second hand-written plan.
    expert, files = FilesystemEnv._expert_state(task), _world(task.params["world_seed"]).files
    assert all(path not in expert and expert[f"{ARCHIVE}/{path.rsplit('/', 1)[1]}"] == files[path] for path in task.params["paths"])
    task = next(t for t in FilesystemEnv.tasks("test", "recovery", 60) if t.family == "archive_error_logs")  # a 503 on search_files
    archived = [path for path in FilesystemEnv._expert_state(task) if path.startswith(ARCHIVE + "/")]
    assert archived  # the scheduled failure did not stop the replay


def test_clean_tmp_penalises_deleting_other_files():
    task = task_of("clean_tmp")
    env = FilesystemEnv()
    env.reset(task)
    for path in env._world_data.tmps:
        env.delete_path(path)
    assert env._verify("deleted") == 1.0
    env.delete_path(f"{HOME}/todo.txt")
    assert env._verify("deleted") == 0.75


# --- episodes -----------------------------------------------------------------------------------------------


def test_hand_played_nested_episode():
    task = task_of("keyword_field")
    world = _world(task.params["world_seed"])
    note = next(n for n in world.notes if n["keyword"] == task.params["keyword"])
    env = FilesystemEnv()
    episode = Episode(env, task)
    [found] = episode.step(call_text("search_files", {"pattern": task.params["keyword"], "path": "docs"}, "Find the note first."))
    assert found["content"]["files"] == {note["path"]: 1}
    path = next(iter(found["content"]["files"]))
    [read] = episode.step(call_text("read_file", {"path": path}, "Now read it."))
    assert read["content"]["path"] == note["path"]
    assert episode.step(f"The note {path} mentions {task.params['keyword']}; its {task.params['field']} is {note[task.params['field']]}.") == []
    record = episode.record
    assert record.finished and record.task_completion == 1.0 and record.min_calls == 2
    assert [c.status for c in record.calls] == ["ok", "ok"]
    reward = atropos_reward(record)
    assert reward.total >= 0.95 and reward.dimensions["goal_alignment"] == 1.0


def test_hand_played_episode_with_a_mistake_and_a_recovery():
    task = task_of("rename_file")
    source, destination = task.params["source"], task.params["destination"]
    episode = Episode(FilesystemEnv(), task)
    [bad] = episode.step(call_text("move_path", {"source": source.replace("/docs/", "/doc/"), "destination": destination}))
    assert "no such file" in bad["content"]["error"]
    [parallel_bad] = episode.step(call_text("move_path", {"source": source, "destination": 7}))
    assert "invalid arguments" in parallel_bad["content"]["error"]
    [good] = episode.step(call_text("move_path", {"source": source, "destination": destination}))
    assert good["content"] == {"moved": source, "to": destination}
    episode.step(f"Renamed {source} to {destination}.")
    record = episode.record
    assert [c.status for c in record.calls] == ["error", "invalid", "ok"]
    assert record.task_completion == 1.0
    reward = atropos_reward(record)
    assert reward.dimensions["tool_accuracy"] == pytest.approx(0.8)
    assert reward.dimensions["efficiency"] == pytest.approx(1 / 3)
    assert reward.dimensions["error_recovery"] == pytest.approx(0.3)
    assert 0.6 < reward.total < 0.95


def test_a_wrong_answer_after_good_calls_scores_zero_completion():
    task = task_of("busiest_log")
    episode = Episode(FilesystemEnv(), task)
    [errors] = episode.step(call_text("search_files", {"pattern": "ERROR", "path": "logs"}))
    counts = errors["content"]["files"]
    least = min(counts, key=counts.get)
    episode.step(call_text("search_files", {"pattern": task.params["level"], "path": least}))
    episode.step(f"{least.rsplit('/', 1)[1]} has the most ERROR lines.")
    assert episode.record.task_completion == 0.0
    assert atropos_reward(episode.record).total < 0.6


def test_recovery_tasks_fail_the_oracles_first_tool_once():
    for task in FilesystemEnv.tasks("train", "recovery", 12):
        record = FilesystemEnv.oracle(task).record
        assert record.calls[0].status == "transient" and record.calls[0].name == task.params["fail_first"][0]
        assert record.task_completion == 1.0


def test_prompts_are_a_frame_around_one_of_the_familys_requests():
    def pattern(template: str) -> str:  # the template with any text in its fields (paths as the user writes them)
        return "".join(re.escape(literal) + (".+" if field is not None else "") for literal, field, _, _ in string.Formatter().parse(template))

    for difficulty in DIFFICULTIES:
        for task in FilesystemEnv.tasks("test", difficulty, 30):
            requests = REQUESTS[task.family]
            requests = [r for variant in requests.values() for r in variant] if isinstance(requests, dict) else requests
            assert any(re.fullmatch(pattern(frame.format(request=r)), task.prompt, re.S) for frame in FRAMES for r in requests), task.prompt


def test_every_family_is_drawn_and_solved_with_compact_observations():
    seen = set()
    for difficulty in DIFFICULTIES:
        for task in FilesystemEnv.tasks("train", difficulty, 40):
            seen.add(task.params["family"])
            result = FilesystemEnv.oracle(task)
            assert result.record.task_completion == 1.0
            for call in result.record.calls:
                assert len(json.dumps(call.observation)) < 1500, (task.family, call.name)
            if difficulty == "parallel":
                assert len(result.record.turns[0].calls) >= 2  # the calls go out together
    assert seen == {f.split(" ")[0] for fams in FilesystemEnv.families.values() for f in fams}
