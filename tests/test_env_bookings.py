"""The bookings environment: tool semantics and policy on a hand-built world, the state verifier, safety,
and hand-played episodes scored by the Atropos reward."""

from __future__ import annotations

import copy
import json
import time

import pytest

from environments.base import held_out
from environments.episode import Episode
from environments.bookings import BookingsEnv
from environments.bookings.world import CITIES, NAMES, _state, _world_of
from environments.record import Task
from hermes_train.rewards import atropos_reward


def hand_world() -> dict:
    """Two passengers, four flights, three reservations; now is 2026-05-01 12:00."""

    def flight(fid, a, b, date, time_, minutes, price, left):
        return {"id": fid, "from": a, "to": b, "date": date, "time": time_, "t": minutes, "price": price, "left": left}

    flights = {
        "FL100": flight("FL100", "Boston", "Denver", "2026-05-01", "15:45", 945, 200, 3),  # in 3 h
        "FL101": flight("FL101", "Boston", "Denver", "2026-05-03", "09:05", 2 * 1440 + 545, 180, 1),
        "FL102": flight("FL102", "Boston", "Denver", "2026-05-03", "17:10", 2 * 1440 + 1030, 250, 6),
        "FL103": flight("FL103", "Denver", "Boston", "2026-05-04", "10:30", 3 * 1440 + 630, 300, 0),
    }
    routes = {("Boston", "Denver", "2026-05-01"): ["FL100"], ("Boston", "Denver", "2026-05-03"): ["FL101", "FL102"], ("Denver", "Boston", "2026-05-04"): ["FL103"]}
    passengers = {"P1000": {"id": "P1000", "name": "Ana Silva", "tier": "basic"}, "P2000": {"id": "P2000", "name": "Ben Okafor", "tier": "gold"}}
    res = {
        "R5000": {"id": "R5000", "pid": "P1000", "flight": "FL100", "seats": 2, "status": "active", "reason": None, "fee": 0},
        "R5001": {"id": "R5001", "pid": "P2000", "flight": "FL100", "seats": 1, "status": "active", "reason": None, "fee": 0},
        "R5002": {"id": "R5002", "pid": "P1000", "flight": "FL103", "seats": 1, "status": "cancelled", "reason": "other", "fee": 0},
    }
    return {"flights": flights, "routes": routes, "passengers": passengers, "by_name": {"ana silva": "P1000", "ben okafor": "P2000"}, "res": res, "next": 5003, "initial": set(res)}


@pytest.fixture
def env() -> BookingsEnv:
    env = BookingsEnv()
    env.reset(BookingsEnv.generate_task("train", "single", 0))
    env._world = hand_world()
    env._initial = _state(env._world)
    return env


def error_of(observation) -> str:
    assert isinstance(observation, dict) and "error" in observation, observation
    return observation["error"]


def call_text(name: str, arguments: dict, think: str = "") -> str:
    body = f"<think>\n{think}\n</think>\n" if think else ""
    return body + f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


# --- tools and policy ----------------------------------------------------------------------------------------


def test_lookups(env):
    assert env.find_passenger(name="Ana Silva") == {"id": "P1000", "name": "Ana Silva", "tier": "basic"}
    assert env.find_passenger(name="  ana SILVA ")["id"] == "P1000"
    assert "did you mean 'Ana Silva'" in error_of(env.find_passenger(name="Ana Silvo"))
    listed = env.list_reservations(passenger_id="p1000")
    assert [r["id"] for r in listed] == ["R5000", "R5002"]
    assert listed[0] == {"id": "R5000", "flight": "FL100", "from": "Boston", "to": "Denver", "dep": "2026-05-01 15:45", "in_h": 3, "seats": 2, "status": "active"}
    assert "find_passenger" in error_of(env.list_reservations(passenger_id="Ana Silva"))
    found = env.search_flights(origin="Boston", destination="Denver", date="2026-05-03")
    assert found == [{"id": "FL101", "time": "09:05", "price": 180, "left": 1}, {"id": "FL102", "time": "17:10", "price": 250, "left": 6}]
    assert env.search_flights(origin="boston", destination="Denver", date="2026-05-02") == []
    assert "did you mean 'Denver'" in error_of(env.search_flights(origin="Boston", destination="Denvr", date="2026-05-03"))
    assert "different" in error_of(env.search_flights(origin="Boston", destination="Boston", date="2026-05-03"))
    assert "YYYY-MM-DD" in error_of(env.search_flights(origin="Boston", destination="Denver", date="May 3"))
    assert env._world == hand_world()  # lookups change nothing


def test_book_flight_policy(env):
    made = env.book_flight(passenger_id="P2000", flight_id="FL102", seats=2)
    assert made == {"reservation": "R5003", "flight": "FL102", "dep": "2026-05-03 17:10", "seats": 2, "total": 500}
    assert env._world["flights"]["FL102"]["left"] == 4
    assert env.list_reservations(passenger_id="P2000")[-1]["id"] == "R5003"
    assert "between 1 and 4" in error_of(env.book_flight(passenger_id="P2000", flight_id="FL102", seats=5))
    assert "between 1 and 4" in error_of(env.book_flight(passenger_id="P2000", flight_id="FL102", seats=0))
    assert "only 1 seat left" in error_of(env.book_flight(passenger_id="P2000", flight_id="FL101", seats=2))
    assert "is full" in error_of(env.book_flight(passenger_id="P2000", flight_id="FL103"))
    assert "search_flights" in error_of(env.book_flight(passenger_id="P2000", flight_id="FL999"))
    assert [c.status for c in env.record.calls][-5:] == ["error"] * 5
    assert env._world["flights"]["FL101"]["left"] == 1 and env._world["next"] == 5004


def test_cancel_policy(env):
    refused = error_of(env.cancel_reservation(reservation_id="R5000", reason="illness"))
    assert "basic-tier" in refused and "24 hours" in refused and "3 h" in refused
    assert env._world == hand_world()  # the refusal changed nothing
    # A gold member may cancel on the same flight, even 3 hours before departure.
    assert env.cancel_reservation(reservation_id="R5001", reason="weather") == {"reservation": "R5001", "status": "cancelled", "refund": 200}
    assert env._world["res"]["R5001"]["status"] == "cancelled" and env._world["res"]["R5001"]["reason"] == "weather"
    assert env._world["flights"]["FL100"]["left"] == 4
    assert "already cancelled" in error_of(env.cancel_reservation(reservation_id="R5001", reason="weather"))
    assert "illness, weather" in error_of(env.cancel_reservation(reservation_id="R5000", reason="bored"))
    # Further than 24 hours away, a basic member may cancel too.
    env._world["flights"]["FL100"]["t"] = 2 * 1440
    assert env.cancel_reservation(reservation_id="R5000", reason="illness")["refund"] == 400


def test_change_policy(env):
    assert "same route" in error_of(env.change_flight(reservation_id="R5000", new_flight_id="FL103"))
    assert "1 seats left but the reservation holds 2" in error_of(env.change_flight(reservation_id="R5000", new_flight_id="FL101"))
    assert "already on flight" in error_of(env.change_flight(reservation_id="R5000", new_flight_id="FL100"))
    assert "cancelled" in error_of(env.change_flight(reservation_id="R5002", new_flight_id="FL103"))
    assert env._world == hand_world()
    # Basic pays 50 per seat, gold nothing.
    assert env.change_flight(reservation_id="R5000", new_flight_id="FL102")["fee"] == 100
    assert env.change_flight(reservation_id="R5001", new_flight_id="FL101")["fee"] == 0
    flights = env._world["flights"]
    assert (flights["FL100"]["left"], flights["FL101"]["left"], flights["FL102"]["left"]) == (6, 0, 4)
    assert env._world["res"]["R5000"]["flight"] == "FL102" and env._world["res"]["R5000"]["fee"] == 100


def test_policy_is_stated_in_the_tool_schemas():
    described = {s["function"]["name"]: s["function"]["description"] for s in BookingsEnv.tool_schemas()}
    assert set(described) == {"find_passenger", "list_reservations", "search_flights", "book_flight", "cancel_reservation", "change_flight"}
    assert "4 seats" in described["book_flight"]
    assert "24 hours" in described["cancel_reservation"]
    assert "same route" in described["change_flight"] and "gold 0" in described["change_flight"]
    assert "2026-05-01 12:00" in described["list_reservations"]


# --- tasks and the verifier -----------------------------------------------------------------------------------


def task_of(family: str, difficulty: str, split: str = "train") -> Task:
    for seed in range(200):
        task = BookingsEnv.generate_task(split, difficulty, seed)
        if task.family == family:
            return task
    raise AssertionError(f"no {family} task")


def solved(task: Task) -> BookingsEnv:
    """An environment after the oracle's plan, with its final answer."""
    env = BookingsEnv()
    result = BookingsEnv.oracle(task)
    env.reset(task)
    for call in result.record.calls:
        if call.status != "transient":
            getattr(env, call.name)(**call.arguments)
    env._answer = result.record.final_answer
    return env


def test_worlds_are_deterministic_and_novel_tasks_use_held_out_entities():
    task = BookingsEnv.generate_task("train", "nested", 3)
    assert _world_of(task.params) == _world_of(copy.deepcopy(task.params))
    novel = [t for t in BookingsEnv.tasks("test", "multi_step", 40) if t.novel]
    assert novel
    for t in novel:
        assert set(t.params["names"]) <= set(held_out(NAMES)) and set(t.params["cities"]) <= set(held_out(CITIES))
    for t in BookingsEnv.tasks("train", "multi_step", 20):
        assert not set(t.params["names"]) & set(held_out(NAMES))


def test_every_family_is_drawn():
    for difficulty, families in BookingsEnv.families.items():
        drawn = {t.family for t in BookingsEnv.tasks("train", difficulty, 60)}
        assert drawn == {f.split(" ")[0] for f in families}, difficulty


def test_cancel_verifier_partial_credit_and_collateral():
    task = task_of("cancel_trip", "nested")
    rid, reason = task.params["ops"][0][1:]
    env = solved(task)
    assert env._verify(env._answer) == 1.0
    assert env._verify("Done.") == 0.75  # right state, but the answer does not name the reservation
    assert env._verify(None) == 0.75

    wrong_reason = BookingsEnv()
    wrong_reason.reset(task)
    wrong_reason.cancel_reservation(reservation_id=rid, reason="other" if reason != "other" else "illness")
    assert wrong_reason._verify(f"Cancelled {rid}.") == pytest.approx(2 / 3)  # status and seats right, reason wrong

    collateral = solved(task)
    other = next(r for r in collateral._world["res"].values() if r["id"] != rid and r["status"] == "active" and collateral._world["passengers"][r["pid"]]["tier"] != "basic")
    collateral.cancel_reservation(reservation_id=other["id"], reason="other")
    assert collateral._verify(collateral._answer) == pytest.approx(1.0 - 0.3 * 2)  # another reservation and its flight touched

    nothing = BookingsEnv()
    nothing.reset(task)
    assert nothing._verify(f"Cancelled {rid}.") == 0.0  # saying so is not doing it


def test_booking_verifier():
    task = task_of("book_cheapest", "multi_step")
    _, pid, fid, seats = task.params["ops"][0]
    env = solved(task)
    assert env._verify(env._answer) == 1.0
    wrong = BookingsEnv()
    wrong.reset(task)
    other = next(f for f in wrong._world["flights"].values() if f["id"] != fid and f["left"] >= seats)
    made = wrong.book_flight(passenger_id=pid, flight_id=other["id"], seats=seats)
    assert wrong._verify(f"Booked {made['reservation']}.") == 0.0
    fewer = BookingsEnv()
    fewer.reset(task)
    fewer.book_flight(passenger_id=pid, flight_id=fid, seats=seats + 1 if seats < 4 else seats - 1)
    assert fewer._verify("Booked.") == 0.0  # wrong seat count: neither the reservation nor the flight's seats match


def test_parallel_bookings_match_in_any_order():
    task = task_of("book_many", "parallel")
    env = BookingsEnv()
    env.reset(task)
    made = [env.book_flight(passenger_id=pid, flight_id=fid, seats=k) for _, pid, fid, k in reversed(task.params["ops"])]
    assert env._verify(" and ".join(m["reservation"] for m in made)) == 1.0
    assert env._verify(made[0]["reservation"]) == pytest.approx(0.75 + 0.25 / 2)


def test_changes_are_verified_against_the_world_the_expert_leaves():
    task = task_of("book_many", "parallel")
    expected = BookingsEnv._expert_state(task)  # the expert's calls replayed on a fresh world: no hand-written reference
    assert expected != _state(_world_of(task.params))
    env = solved(task)
    assert env._state() == expected and env._verify(env._answer) == 1.0
    half = BookingsEnv()
    half.reset(task)
    _, pid, fid, seats = task.params["ops"][0]
    made = half.book_flight(passenger_id=pid, flight_id=fid, seats=seats)
    assert half._verify(made["reservation"]) == pytest.approx(0.5)  # one of the two bookings is missing


def test_change_verifier():
    task = task_of("rebook_earliest", "multi_step")
    env = solved(task)
    assert env._verify(env._answer) == 1.0
    rid, fid = task.params["ops"][0][1:]
    wrong = BookingsEnv()
    wrong.reset(task)
    old = wrong._world["res"][rid]["flight"]
    route = (wrong._world["flights"][old]["from"], wrong._world["flights"][old]["to"])
    others = [f for f in wrong._world["flights"].values() if (f["from"], f["to"]) == route and f["id"] not in (fid, old) and f["left"] >= wrong._world["res"][rid]["seats"]]
    assert others
    wrong.change_flight(reservation_id=rid, new_flight_id=others[0]["id"])
    # The reservation's old flight got its seats back and the fee is right, but the wrong flight lost seats.
    assert 0.0 <= wrong._verify(rid) < 0.5


def test_refusal_verifier():
    task = task_of("cancel_refused", "nested")
    rid = task.params["reservation"]
    env = solved(task)
    assert env._verify(env._answer) == 1.0
    assert "cannot" in env._answer and rid in env._answer
    assert env._verify(f"I cannot cancel {rid}: basic-tier reservations cannot be cancelled within 24 hours.") == 1.0
    assert env._verify("I cannot cancel it within 24 hours.") == pytest.approx(0.7)  # no reservation named
    assert env._verify(f"I cannot do {rid}.") == pytest.approx(0.7)  # no reason given
    assert env._verify(f"Reservation {rid} is cancelled.") == 0.0  # not a refusal
    assert env._verify("I think the answer is probably 42, but I am not sure.") == 0.0

    change = task_of("change_refused", "multi_step")
    env = solved(change)
    assert env._verify(env._answer) == 1.0 and "cannot" in env._answer


def test_information_verifiers():
    task = task_of("tiers_many", "parallel")
    env = solved(task)
    assert env._verify(env._answer) == 1.0
    tiers = {x["name"]: x["tier"] for x in env._world["passengers"].values()}
    names = task.params["names_asked"]
    flipped = {"basic": "gold", "silver": "basic", "gold": "silver"}
    answer = "; ".join(f"{n}: {tiers[n] if i else flipped[tiers[n]]}" for i, n in enumerate(names))
    assert env._verify(answer) == pytest.approx((len(names) - 1) / len(names))
    assert env._verify("basic silver gold") == 0.0  # listing every tier names no passenger

    task = task_of("passenger_tier", "single")
    env = solved(task)
    assert env._verify(env._answer) == 1.0
    assert env._verify(f"{task.params['name']} is basic, silver or gold.") == 0.0

    task = task_of("seats_left", "single")
    env = solved(task)
    assert env._verify(env._answer) == 1.0
    f = env._world["flights"][task.params["flight"]]
    assert env._verify(f"The {f['time']} flight on {f['date']} has {f['left'] + 1} seats left.") == 0.0

    task = task_of("reservation_status", "single")
    env = solved(task)
    assert env._verify(env._answer) == 1.0
    status = env._world["res"][task.params["reservation"]]["status"]
    assert env._verify(f"It is {'active' if status == 'cancelled' else 'cancelled'}.") == 0.0


def test_information_tasks_penalise_state_changes():
    task = task_of("cheapest_fare", "single")
    env = solved(task)
    assert env._verify(env._answer) == 1.0
    gold = [r for r in env._world["res"].values() if r["status"] == "active" and env._world["passengers"][r["pid"]]["tier"] == "gold"]
    assert gold
    env.cancel_reservation(reservation_id=gold[0]["id"], reason="other")
    assert env._verify(env._answer) == pytest.approx(0.4)  # a reservation and its flight changed unasked


# --- safety and speed --------------------------------------------------------------------------------------


def test_hostile_arguments_change_nothing_and_are_quick(env):
    before = copy.deepcopy(env._world)
    hostile = ["A" * 200_000, "'; DROP TABLE reservations; --", "../../etc/passwd", "\x00\udcff" * 50, "R5000 OR 1=1", "FL100; FL101"]
    start = time.perf_counter()
    for value in hostile:
        for name, arguments in [
            ("find_passenger", {"name": value}),
            ("list_reservations", {"passenger_id": value}),
            ("search_flights", {"origin": value, "destination": value, "date": value}),
            ("book_flight", {"passenger_id": value, "flight_id": value, "seats": 10**30}),
            ("cancel_reservation", {"reservation_id": value, "reason": value}),
            ("change_flight", {"reservation_id": value, "new_flight_id": value}),
        ]:
            message = error_of(getattr(env, name)(**arguments))
            assert len(message) < 400
    assert time.perf_counter() - start < 1.0
    assert env.book_flight(passenger_id="P2000", flight_id="FL102", seats=-(10**30))["error"]
    assert env._world == before
    assert all(c.status in ("error", "invalid") for c in env.record.calls)


def test_tool_calls_are_fast():
    task = BookingsEnv.generate_task("train", "multi_step", 1)
    env = BookingsEnv()
    env.reset(task)
    pid = next(iter(env._world["passengers"]))
    name = env._world["passengers"][pid]["name"]
    a, b, d = next(iter(env._world["routes"]))
    for _ in range(50):  # warm up
        env.find_passenger(name=name)
    start = time.perf_counter()
    for _ in range(300):
        env.find_passenger(name=name)
        env.list_reservations(passenger_id=pid)
        env.search_flights(origin=a, destination=b, date=d)
    per_call = (time.perf_counter() - start) / 900
    assert per_call < 2e-3  # about 0.05 ms in practice; loose for slow CI machines
    start = time.perf_counter()
    for _ in range(20):
        env.reset(task)
    assert (time.perf_counter() - start) / 20 < 20e-3


# --- whole episodes through the parser ----------------------------------------------------------------------


def test_hand_played_cancel_episode():
    task = task_of("cancel_trip", "nested")
    rid, reason = task.params["ops"][0][1:]
    world = _world_of(task.params)
    name = world["passengers"][world["res"][rid]["pid"]]["name"]
    pid = world["res"][rid]["pid"]
    env = BookingsEnv()
    episode = Episode(env, task)
    [message] = episode.step(call_text("find_passenger", {"name": name}, think="Find the passenger first."))
    assert message["content"]["id"] == pid
    [message] = episode.step(call_text("list_reservations", {"passenger_id": pid}))
    assert rid in [r["id"] for r in message["content"]]
    [message] = episode.step(call_text("cancel_reservation", {"reservation_id": rid, "reason": reason}))
    assert message["content"]["status"] == "cancelled"
    assert episode.step(f"Done: reservation {rid} of {name} is cancelled.") == []
    record = episode.record
    assert record.finished and [c.status for c in record.calls] == ["ok", "ok", "ok"]
    assert record.task_completion == 1.0 and record.min_calls == 3
    reward = atropos_reward(record)
    assert reward.total == pytest.approx(1.0)


def test_hand_played_refusal_episode_with_a_refused_call():
    task = task_of("cancel_refused", "nested")
    rid = task.params["reservation"]
    world = _world_of(task.params)
    pid = world["res"][rid]["pid"]
    name = world["passengers"][pid]["name"]
    env = BookingsEnv()
    episode = Episode(env, task)
    episode.step(call_text("find_passenger", {"name": name}))
    episode.step(call_text("list_reservations", {"passenger_id": pid}))
    [message] = episode.step(call_text("cancel_reservation", {"reservation_id": rid, "reason": "illness"}))
    assert "24 hours" in message["content"]["error"]
    episode.step(f"Sorry, I cannot cancel {rid}: {name} is basic tier and the flight leaves within 24 hours.")
    record = episode.record
    assert [c.status for c in record.calls] == ["ok", "ok", "error"]
    assert record.task_completion == 1.0  # the world is unchanged and the refusal is explained
    reward = atropos_reward(record)
    assert reward.dimensions["efficiency"] == pytest.approx(2 / 3)  # the oracle never tries the forbidden call
    assert reward.dimensions["error_recovery"] == 0.0
    assert 0.6 < reward.total < 0.95


def test_hand_played_parallel_episode_with_an_invalid_call():
    task = task_of("tiers_many", "parallel")
    names = task.params["names_asked"]
    env = BookingsEnv()
    episode = Episode(env, task)
    episode.step(call_text("find_passenger", {"full_name": names[0]}))
    messages = episode.step("\n".join(call_text("find_passenger", {"name": n}) for n in names))
    tiers = {m["content"]["name"]: m["content"]["tier"] for m in messages}
    episode.step("; ".join(f"{n}: {tiers[n]}" for n in names))
    record = episode.record
    assert [c.status for c in record.calls] == ["invalid"] + ["ok"] * len(names)
    assert record.task_completion == 1.0
    reward = atropos_reward(record)
    assert reward.dimensions["tool_accuracy"] == pytest.approx(0.8)
    assert reward.dimensions["error_recovery"] == pytest.approx(0.3)
    assert reward.counts["recoveries"] == 1
