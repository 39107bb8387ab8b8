"""The desk's task families: for each, how a task is drawn from a world, how the expert solves it, and (for
questions and refusals) how its answer is checked: a family's ``expected`` here is that check,
``(answer, world, params) -> score`` on the untouched world. Tasks that change the world have no check of
their own: they are verified against the world the expert's calls leave (see ``BookingsEnv._score``).

A task that changes the world keeps the expert's plan in ``params["ops"]`` (what to book, change or
cancel): the draw found it, and the expert reads the request's details from it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from environments.answers import mentions, normalise, share_mentioned
from environments.base import Answer, OracleStep
from environments.bookings.phrasings import PHRASINGS
from environments.bookings.world import DATES, MAX_SEATS, REASONS, TIERS, _active_on_route, _cheapest, _hours_left, _seats, _world_of
from environments.families import Drawn, Oracle, TaskFamily, Wording

REFUSALS = ("cannot", "can t", "can not", "unable", "not allowed", "not permitted", "not possible", "not able", "won t", "impossible", "refuse")


def _listed(items: list[str]) -> str:
    return ", ".join(items[:-1]) + " and " + items[-1]


def _route(f: dict) -> dict[str, str]:
    return {"origin": f["from"], "destination": f["to"]}


def _refuses(answer: str | None) -> bool:
    text = f" {normalise(answer or '')} "
    return any(f" {phrase} " in text for phrase in REFUSALS)


def _first_word(answer: str | None, words: dict[str, str]) -> str | None:
    for word in normalise(answer or "").split():
        if word in words:
            return words[word]
    return None


def _tiers_by_name(answer: str | None, names: list[str]) -> dict[str, str | None]:
    """The tier stated after each name (up to the next name) in the answer."""
    text = f" {normalise(answer or '')} "
    found = sorted((text.find(f" {normalise(n)} "), n) for n in names if f" {normalise(n)} " in text)
    tiers: dict[str, str | None] = {}
    for i, (position, name) in enumerate(found):
        end = found[i + 1][0] if i + 1 < len(found) else len(text)
        tiers[name] = next((w for w in text[position:end].split() if w in TIERS), None)
    return tiers


# --- single: one lookup ------------------------------------------------------------------------------------

def draw_seats_left(rng: random.Random, w: dict) -> Drawn:
    f = w["flights"][rng.choice(sorted(w["flights"]))]
    return {"flight": f["id"]}, [f["from"], f["to"], f["date"]], Wording({**_route(f), "date": f["date"], "time": f["time"]})


def solve_seats_left(env: Any, p: dict) -> Oracle:
    f = _world_of(p)["flights"][p["flight"]]
    [found] = yield OracleStep(f"I will search {f['from']} to {f['to']} on {f['date']} and pick the {f['time']} flight.", [("search_flights", {"origin": f["from"], "destination": f["to"], "date": f["date"]})])
    hit = next(x for x in found if x["time"] == f["time"])
    return Answer(f"The {f['time']} flight from {f['from']} to {f['to']} on {f['date']} ({hit['id']}) has {hit['left']} seats left.")


def check_seats_left(answer: str | None, w: dict, p: dict) -> float:
    """The flight's seats left; the departure's own numbers do not count as the seat count."""
    f = w["flights"][p["flight"]]
    return share_mentioned((answer or "").replace(f["date"], " ").replace(f["time"], " "), [f["left"]])


def draw_cheapest_fare(rng: random.Random, w: dict) -> Drawn | None:
    keys = [k for k in sorted(w["routes"]) if len(w["routes"][k]) >= 2 and _cheapest(w, k)]
    if not keys:
        return None
    a, b, d = rng.choice(keys)
    return {"route": [a, b, d], "flight": _cheapest(w, (a, b, d))["id"]}, [a, b, d], Wording({"origin": a, "destination": b, "date": d})


def solve_cheapest_fare(env: Any, p: dict) -> Oracle:
    a, b, d = p["route"]
    [found] = yield OracleStep("I will search the flights of that day and take the cheapest one with free seats.", [("search_flights", {"origin": a, "destination": b, "date": d})])
    best = min((x for x in found if x["left"] > 0), key=lambda x: x["price"])
    return Answer(f"The cheapest available fare from {a} to {b} on {d} is {best['price']} on flight {best['id']} at {best['time']} ({best['left']} seats left).")


def check_cheapest_fare(answer: str | None, w: dict, p: dict) -> float:
    return share_mentioned(answer, [w["flights"][p["flight"]]["price"]])


def draw_passenger_tier(rng: random.Random, w: dict) -> Drawn:
    passenger = w["passengers"][rng.choice(sorted(w["passengers"]))]
    return {"name": passenger["name"]}, [passenger["name"]]


def solve_passenger_tier(env: Any, p: dict) -> Oracle:
    [x] = yield OracleStep("I will look the passenger up.", [("find_passenger", {"name": p["name"]})])
    return Answer(f"{x['name']} ({x['id']}) is a {x['tier']} member.")


def check_passenger_tier(answer: str | None, w: dict, p: dict) -> float:
    """Exactly the passenger's tier: naming every tier is not an answer."""
    tier = next(x["tier"] for x in w["passengers"].values() if x["name"] == p["name"])
    return float({word for word in normalise(answer or "").split() if word in TIERS} == {tier})


def draw_reservation_status(rng: random.Random, w: dict) -> Drawn:
    cancelled = [r for r in w["res"].values() if r["status"] == "cancelled"]
    pool = cancelled if cancelled and rng.random() < 0.5 else list(w["res"].values())
    r = rng.choice(pool)
    return {"reservation": r["id"], "passenger": r["pid"]}, [r["id"], r["pid"]]


def solve_reservation_status(env: Any, p: dict) -> Oracle:
    [found] = yield OracleStep(f"I will list passenger {p['passenger']}'s reservations.", [("list_reservations", {"passenger_id": p["passenger"]})])
    r = next(x for x in found if x["id"] == p["reservation"])
    return Answer(f"Reservation {r['id']} ({r['from']} to {r['to']}, flight {r['flight']}) is {r['status']}.")


def check_reservation_status(answer: str | None, w: dict, p: dict) -> float:
    said = _first_word(answer, {"active": "active", "cancelled": "cancelled", "canceled": "cancelled"})
    return float(said == w["res"][p["reservation"]]["status"])


# --- multi_step: look up, then act -------------------------------------------------------------------------

def draw_book_cheapest(rng: random.Random, w: dict) -> Drawn | None:
    k = rng.randint(1, 3)
    keys = [key for key in sorted(w["routes"]) if len(w["routes"][key]) >= 2 and _cheapest(w, key, k)]
    if not keys:
        return None
    a, b, d = rng.choice(keys)
    passenger = w["passengers"][rng.choice(sorted(w["passengers"]))]
    values = {"ops": [["book", passenger["id"], _cheapest(w, (a, b, d), k)["id"], k]]}
    return values, [passenger["name"], a, b, d], Wording({"seats": _seats(k), "who": passenger["name"], "origin": a, "destination": b, "date": d})


def solve_book_cheapest(env: Any, p: dict) -> Oracle:
    w = _world_of(p)
    _, pid, fid, k = p["ops"][0]
    f, name = w["flights"][fid], w["passengers"][pid]["name"]
    x, found = yield OracleStep("I need the passenger id and the flights of that day; both lookups are independent.", [("find_passenger", {"name": name}), ("search_flights", {"origin": f["from"], "destination": f["to"], "date": f["date"]})])
    best = min((y for y in found if y["left"] >= k), key=lambda y: y["price"])
    [made] = yield OracleStep(f"The cheapest flight with at least {k} free seats is {best['id']} at {best['price']}; I will book it for {x['id']}.", [("book_flight", {"passenger_id": x["id"], "flight_id": best["id"], "seats": k})])
    return Answer(f"Booked {_seats(k)} for {name} on flight {made['flight']} ({f['from']} to {f['to']}, {made['dep']}): reservation {made['reservation']}, total {made['total']}.")


def draw_rebook_earliest(rng: random.Random, w: dict) -> Drawn | None:
    cases = []
    for passenger, r, f in _active_on_route(w):
        for d in DATES:
            if d != f["date"]:
                fitting = [w["flights"][x] for x in w["routes"].get((f["from"], f["to"], d), []) if w["flights"][x]["left"] >= r["seats"]]
                if fitting:
                    cases.append((passenger, r, f, d, fitting[0]))
    if not cases:
        return None
    passenger, r, f, d, target = rng.choice(cases)
    return {"ops": [["change", r["id"], target["id"]]]}, [passenger["name"], f["from"], f["to"], d], Wording({"who": passenger["name"], **_route(f), "date": d})


def _draw_change(rng: random.Random, w: dict, refuse: bool) -> Drawn | None:
    """A change to a named flight on another day: one with room for the reservation's seats, or (``refuse``)
    one without, which the expert must refuse."""
    cases = []
    for passenger, r, f in _active_on_route(w):
        for d in DATES:
            if d != f["date"]:
                for x in w["routes"].get((f["from"], f["to"], d), []):
                    if (w["flights"][x]["left"] < r["seats"]) == refuse:
                        cases.append((passenger, r, f, w["flights"][x]))
    if not cases:
        return None
    passenger, r, f, target = rng.choice(cases)
    values = {"refuse": True, "reservation": r["id"], "flight": target["id"], "left": target["left"]} if refuse else {"ops": [["change", r["id"], target["id"]]]}
    return values, [passenger["name"], f["from"], f["to"], target["date"]], Wording({"who": passenger["name"], **_route(f), "date": target["date"], "time": target["time"]})


def draw_change_flight_at(rng: random.Random, w: dict) -> Drawn | None:
    return _draw_change(rng, w, refuse=False)


def draw_change_refused(rng: random.Random, w: dict) -> Drawn | None:
    return _draw_change(rng, w, refuse=True)


def _solve_change(p: dict, rid: str, target_id: str, earliest: bool) -> Oracle:
    """Move a reservation to the target flight's day: to the earliest flight there with room (``earliest``), or
    to the flight at the target's time, refusing when it has too few seats."""
    w = _world_of(p)
    target = w["flights"][target_id]
    old = w["flights"][w["res"][rid]["flight"]]
    name = w["passengers"][w["res"][rid]["pid"]]["name"]
    x, found = yield OracleStep("I need the passenger id and the flights on the new day; both lookups are independent.", [("find_passenger", {"name": name}), ("search_flights", {"origin": old["from"], "destination": old["to"], "date": target["date"]})])
    [mine] = yield OracleStep(f"Now {name}'s reservations, to find the {old['from']} to {old['to']} one and its seats.", [("list_reservations", {"passenger_id": x["id"]})])
    r = next(y for y in mine if y["from"] == old["from"] and y["to"] == old["to"] and y["status"] == "active")
    if earliest:
        new = next(y for y in found if y["left"] >= r["seats"])
    else:
        new = next(y for y in found if y["time"] == target["time"])
    if new["left"] < r["seats"]:
        return Answer(
            f"I cannot move {name}'s reservation {r['id']} to flight {new['id']}: it has only {_seats(new['left'])} left and the reservation holds {_seats(r['seats'])}. Nothing was changed.",
            think=f"Flight {new['id']} has {new['left']} seats left but {r['id']} holds {r['seats']}, so the change is not possible.",
        )
    [made] = yield OracleStep(f"Reservation {r['id']} holds {r['seats']} seats; flight {new['id']} has {new['left']} left, on the same route. I will change it.", [("change_flight", {"reservation_id": r["id"], "new_flight_id": new["id"]})])
    return Answer(f"Moved {name}'s reservation {made['reservation']} to flight {made['flight']} ({old['from']} to {old['to']}, {made['dep']}); change fee {made['fee']}.")


def solve_rebook_earliest(env: Any, p: dict) -> Oracle:
    return _solve_change(p, p["ops"][0][1], p["ops"][0][2], earliest=True)


def solve_change_flight_at(env: Any, p: dict) -> Oracle:
    return _solve_change(p, p["ops"][0][1], p["ops"][0][2], earliest=False)


def solve_change_refused(env: Any, p: dict) -> Oracle:
    return _solve_change(p, p["reservation"], p["flight"], earliest=False)


def check_change_refused(answer: str | None, w: dict, p: dict) -> float:
    """A refusal that names the reservation and the reason (the seats left)."""
    if not _refuses(answer):
        return 0.0
    why = mentions(answer, p["left"]) and ("seat" in normalise(answer).split() or "seats" in normalise(answer).split())
    return 0.4 + 0.3 * mentions(answer, p["reservation"]) + 0.3 * why


# --- parallel: independent calls in one turn ---------------------------------------------------------------

def draw_fares_many(rng: random.Random, w: dict) -> Drawn | None:
    keys = [k for k in sorted(w["routes"]) if _cheapest(w, k)]
    rng.shuffle(keys)
    chosen, routes, n = [], set(), rng.choice((2, 3))
    for key in keys:
        if key[:2] not in routes:
            chosen.append(list(key))
            routes.add(key[:2])
        if len(chosen) == n:
            break
    if len(chosen) < 2:
        return None
    return {"routes": chosen}, sorted({x for key in chosen for x in key}), Wording({"listed": _listed([f"from {a} to {b} on {d}" for a, b, d in chosen])})


def solve_fares_many(env: Any, p: dict) -> Oracle:
    found = yield OracleStep(f"I will search the {len(p['routes'])} routes at once.", [("search_flights", {"origin": a, "destination": b, "date": d}) for a, b, d in p["routes"]])
    parts = []
    for (a, b, d), flights in zip(p["routes"], found):
        best = min((x for x in flights if x["left"] > 0), key=lambda x: x["price"])
        parts.append(f"{a} to {b}: {best['price']} ({best['id']})")
    return Answer("Cheapest fares with free seats: " + "; ".join(parts) + ".")


def check_fares_many(answer: str | None, w: dict, p: dict) -> float:
    return share_mentioned(answer, [_cheapest(w, tuple(key))["price"] for key in p["routes"]])


def draw_tiers_many(rng: random.Random, w: dict) -> Drawn:
    names = rng.sample(sorted(x["name"] for x in w["passengers"].values()), rng.choice((2, 3)))
    return {"names_asked": names}, names, Wording({"listed": _listed(names)})


def solve_tiers_many(env: Any, p: dict) -> Oracle:
    found = yield OracleStep("I will look up all of them at once.", [("find_passenger", {"name": n}) for n in p["names_asked"]])
    return Answer("; ".join(f"{x['name']}: {x['tier']}" for x in found) + ".")


def check_tiers_many(answer: str | None, w: dict, p: dict) -> float:
    tier_of = {x["name"]: x["tier"] for x in w["passengers"].values()}
    stated = _tiers_by_name(answer, p["names_asked"])
    return sum(stated.get(n) == tier_of[n] for n in p["names_asked"]) / len(p["names_asked"])


def draw_book_many(rng: random.Random, w: dict) -> Drawn | None:
    pid = rng.choice(sorted(w["passengers"]))
    k1, k2 = rng.randint(1, MAX_SEATS), rng.randint(1, MAX_SEATS)
    candidates = sorted(fid for fid, f in w["flights"].items() if f["left"] >= max(k1, k2))
    if len(candidates) < 2:
        return None
    f1, f2 = rng.sample(candidates, 2)
    words = {"passenger": pid, "flight1": f1, "flight2": f2, "seats1": _seats(k1), "seats2": _seats(k2)}
    return {"ops": [["book", pid, f1, k1], ["book", pid, f2, k2]]}, [pid, f1, f2], Wording(words)


def solve_book_many(env: Any, p: dict) -> Oracle:
    made = yield OracleStep("The two bookings are independent; I will make both at once.", [("book_flight", {"passenger_id": pid, "flight_id": fid, "seats": k}) for _, pid, fid, k in p["ops"]])
    return Answer("Booked for passenger " + p["ops"][0][1] + ": " + "; ".join(f"reservation {m['reservation']}, {_seats(m['seats'])} on {m['flight']} (total {m['total']})" for m in made) + ".")


# --- nested: a later call needs what an earlier one returned -----------------------------------------------

def _draw_cancel(rng: random.Random, w: dict, refuse: bool) -> Drawn | None:
    """A cancellation the policy allows, or (``refuse``) one it forbids: a basic-tier passenger's reservation
    that departs within 24 hours."""
    cases = [(x, r, f) for x, r, f in _active_on_route(w) if (x["tier"] == "basic" and _hours_left(f) < 24) == refuse]
    if not cases:
        return None
    passenger, r, f = rng.choice(cases)
    reason = rng.choice(REASONS[:4])
    values = {"refuse": True, "reservation": r["id"]} if refuse else {"ops": [["cancel", r["id"], reason]]}
    return values, [passenger["name"], f["from"], f["to"]], Wording({"who": passenger["name"], **_route(f), "reason": reason})


def draw_cancel_trip(rng: random.Random, w: dict) -> Drawn | None:
    return _draw_cancel(rng, w, refuse=False)


def draw_cancel_refused(rng: random.Random, w: dict) -> Drawn | None:
    return _draw_cancel(rng, w, refuse=True)


def _solve_cancel(p: dict, rid: str) -> Oracle:
    """Cancel a reservation where the policy allows it; otherwise refuse and say why."""
    w = _world_of(p)
    old = w["flights"][w["res"][rid]["flight"]]
    name = w["passengers"][w["res"][rid]["pid"]]["name"]
    [x] = yield OracleStep(f"I need {name}'s passenger id and tier first.", [("find_passenger", {"name": name})])
    [mine] = yield OracleStep(f"{name} is {x['tier']} tier; now the reservations of {x['id']}.", [("list_reservations", {"passenger_id": x["id"]})])
    r = next(y for y in mine if y["from"] == old["from"] and y["to"] == old["to"] and y["status"] == "active")
    if x["tier"] == "basic" and r["in_h"] < 24:
        return Answer(
            f"I cannot cancel reservation {r['id']}: {name} is a basic-tier member and flight {r['flight']} departs in {r['in_h']} hours. Basic-tier reservations cannot be cancelled within 24 hours of departure, so nothing was changed.",
            think=f"{name} is basic tier and the flight departs in {r['in_h']} h, under 24 h: the policy forbids cancelling.",
        )
    reason = p["ops"][0][2]
    [made] = yield OracleStep(f"Reservation {r['id']} departs in {r['in_h']} h and {name} is {x['tier']} tier, so the policy allows it. I will cancel it.", [("cancel_reservation", {"reservation_id": r["id"], "reason": reason})])
    return Answer(f"Cancelled {name}'s reservation {made['reservation']} ({old['from']} to {old['to']}, reason: {reason}); refund {made['refund']}.")


def solve_cancel_trip(env: Any, p: dict) -> Oracle:
    return _solve_cancel(p, p["ops"][0][1])


def solve_cancel_refused(env: Any, p: dict) -> Oracle:
    return _solve_cancel(p, p["reservation"])


def check_cancel_refused(answer: str | None, w: dict, p: dict) -> float:
    """A refusal that names the reservation and the reason (the tier or the 24 hours)."""
    if not _refuses(answer):
        return 0.0
    why = mentions(answer, "24") or mentions(answer, "basic")
    return 0.4 + 0.3 * mentions(answer, p["reservation"]) + 0.3 * why


def draw_my_flight_seats(rng: random.Random, w: dict) -> Drawn | None:
    cases = _active_on_route(w)
    if not cases:
        return None
    passenger, r, f = rng.choice(cases)
    return {"flight": f["id"], "name": passenger["name"]}, [passenger["name"], f["from"], f["to"]], Wording(_route(f))


def solve_my_flight_seats(env: Any, p: dict) -> Oracle:
    f = _world_of(p)["flights"][p["flight"]]
    name = p["name"]
    [x] = yield OracleStep("First the passenger id.", [("find_passenger", {"name": name})])
    [mine] = yield OracleStep(f"Now the reservations of {x['id']}.", [("list_reservations", {"passenger_id": x["id"]})])
    r = next(y for y in mine if y["from"] == f["from"] and y["to"] == f["to"] and y["status"] == "active")
    date, time = r["dep"].split(" ")
    [found] = yield OracleStep(f"The reservation is on flight {r['flight']} on {date}; I will search that day for its seats.", [("search_flights", {"origin": r["from"], "destination": r["to"], "date": date})])
    hit = next(y for y in found if y["id"] == r["flight"])
    return Answer(f"{name}'s flight {hit['id']} from {r['from']} to {r['to']} on {date} at {time} has {hit['left']} seats left.")


# --- the registry: the order is the draw order within each difficulty --------------------------------------

def _family(name: str, difficulties: tuple[str, ...], tools: tuple[str, ...], draw: Callable[..., Drawn | None], solve: Callable[..., Oracle],
            check: Callable[..., float] | None = None) -> TaskFamily:
    """A question or a refusal has its ``check``; a task without one changes the world. In recovery tasks any of
    the task's tools may fail first (``BookingsEnv._make_task`` draws which)."""
    return TaskFamily(name, difficulties, PHRASINGS[name], tools, draw, solve, check, writes=check is None)


FIND_SEARCH, FIND_LIST = ("find_passenger", "search_flights"), ("find_passenger", "list_reservations")
FIND_SEARCH_LIST = (*FIND_SEARCH, "list_reservations")
FAMILIES = (
    _family("seats_left", ("single", "recovery"), ("search_flights",), draw_seats_left, solve_seats_left, check_seats_left),
    _family("cheapest_fare", ("single",), ("search_flights",), draw_cheapest_fare, solve_cheapest_fare, check_cheapest_fare),
    _family("passenger_tier", ("single",), ("find_passenger",), draw_passenger_tier, solve_passenger_tier, check_passenger_tier),
    _family("reservation_status", ("single",), ("list_reservations",), draw_reservation_status, solve_reservation_status, check_reservation_status),
    _family("fares_many", ("parallel",), ("search_flights",), draw_fares_many, solve_fares_many, check_fares_many),
    _family("tiers_many", ("parallel", "recovery"), ("find_passenger",), draw_tiers_many, solve_tiers_many, check_tiers_many),
    _family("book_many", ("parallel",), ("book_flight",), draw_book_many, solve_book_many),
    _family("book_cheapest", ("multi_step", "recovery"), (*FIND_SEARCH, "book_flight"), draw_book_cheapest, solve_book_cheapest),
    _family("rebook_earliest", ("multi_step",), (*FIND_SEARCH_LIST, "change_flight"), draw_rebook_earliest, solve_rebook_earliest),
    _family("change_flight_at", ("multi_step",), (*FIND_SEARCH_LIST, "change_flight"), draw_change_flight_at, solve_change_flight_at),
    _family("change_refused", ("multi_step",), FIND_SEARCH_LIST, draw_change_refused, solve_change_refused, check_change_refused),
    _family("cancel_trip", ("nested", "recovery"), (*FIND_LIST, "cancel_reservation"), draw_cancel_trip, solve_cancel_trip),
    _family("cancel_refused", ("nested",), FIND_LIST, draw_cancel_refused, solve_cancel_refused, check_cancel_refused),
    _family("my_flight_seats", ("nested", "recovery"), (*FIND_LIST, "search_flights"), draw_my_flight_seats, solve_my_flight_seats, check_seats_left),
)
