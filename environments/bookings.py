"""An airline booking desk in the tau-bench style: passengers, flights and reservations, with policy rules.

The world is drawn from the task's seed: four cities with flights between them over six days (each with
a time, a fare and the seats left), six passengers with a membership tier (basic, silver or gold), and
their reservations. The tools change that world, and enforce a small, fixed policy (stated in their
docstrings, refused with an informative error):

* at most 4 seats per booking, and never more seats than the flight has left;
* basic-tier passengers cannot cancel a reservation whose flight departs in less than 24 hours;
* a reservation can only be changed to another flight on the same route, with room for all its seats,
  for a change fee per seat of 50 (basic), 25 (silver) or 0 (gold).

The current time is fixed: 2026-05-01 12:00. Tasks that change the world are verified on the final
state: it is compared with the state the oracle's plan produces (the plan, stored in the task, applied to
a fresh copy of the world), with partial credit per changed field and a penalty for every reservation or
flight touched that the task did not ask for. Policy tasks whose right outcome is a refusal get full
credit for an unchanged world and an answer that refuses, names the reservation and gives the reason.
"""

from __future__ import annotations

import difflib
import random
from collections.abc import Generator
from typing import Any

from environments.base import Answer, OracleStep, TaskDraft, ToolEnvironment, ToolError, entity_pool, mentions, normalise, share_mentioned
from environments.record import Task

CITIES = [
    "Boston", "Denver", "Miami", "Austin", "Seattle", "Chicago", "Dallas", "Phoenix", "Atlanta", "Portland",
    "Detroit", "Orlando", "Tampa", "Reno", "Tucson", "Memphis", "Omaha", "Raleigh", "Boise", "Fresno",
    "Albany", "Spokane", "Madison", "Savannah", "Houston", "Nashville", "Buffalo", "Richmond",
]
NAMES = [
    "Ana Silva", "Ben Okafor", "Carla Mendes", "David Cohen", "Elif Yilmaz", "Farah Haddad", "Gustavo Reyes",
    "Hana Sato", "Igor Petrov", "Julia Novak", "Kwame Mensah", "Lucia Romano", "Marek Kowalski", "Nadia Rahman",
    "Oscar Lindqvist", "Priya Nair", "Quentin Moreau", "Rosa Alvarez", "Samir Aziz", "Tessa Brandt", "Umar Farouk",
    "Vera Ivanova", "Wen Li", "Ximena Torres", "Yusuf Demir", "Zoe Carter", "Aiko Tanaka", "Bruno Costa",
    "Chloe Martin", "Diego Herrera", "Esther Levi", "Finn Murphy", "Grace Kim", "Hugo Lambert", "Ingrid Berg",
    "Jonas Weber", "Keira Walsh", "Leo Fischer", "Maya Patel", "Nils Olsen",
]
DATES = [f"2026-05-{day:02d}" for day in range(1, 7)]
TIMES = ["06:15", "07:40", "09:05", "10:30", "13:20", "15:45", "17:10", "19:35", "21:50"]
NOW = "2026-05-01 12:00"
NOW_MIN = 12 * 60  # minutes since 2026-05-01 00:00
TIERS = ("basic", "silver", "gold")
CHANGE_FEE = {"basic": 50, "silver": 25, "gold": 0}  # per seat
MAX_SEATS = 4
REASONS = ("illness", "weather", "schedule", "personal", "other")
LEFT_CHOICES = (0, 1, 1, 2, 2, 3, 3, 4, 5, 6, 8, 10, 12)
WORLD_CITIES, WORLD_PASSENGERS = 4, 6
FIELDS = ("flight", "seats", "status", "reason", "fee")
COLLATERAL_PENALTY = 0.3  # per reservation or flight changed that the task did not ask to change
REFUSALS = ("cannot", "can t", "can not", "unable", "not allowed", "not permitted", "not possible", "not able", "won t", "impossible", "refuse")
STATE_FAMILIES = {"book_cheapest", "book_many", "rebook_earliest", "change_flight_at", "cancel_trip"}
REFUSAL_FAMILIES = {"cancel_refused", "change_refused"}


# --- the world ---------------------------------------------------------------------------------------------


def _build_world(seed: int, names: list[str], cities: list[str]) -> dict[str, Any]:
    """Flights, passengers and reservations, all drawn from the seed (about 0.3 ms)."""
    rng = random.Random(seed)
    raw = []
    for a in cities:
        for b in cities:
            if a == b:
                continue
            base = rng.randint(90, 380)
            for day, date in enumerate(DATES):
                times = TIMES[4:] if day == 0 else TIMES  # nothing has departed yet
                n = rng.choice((0, 1, 1, 2, 2, 3))
                slots = sorted(rng.sample(range(len(times)), n))
                offsets = rng.sample(range(-30, 151), n)  # distinct fares on a route and day
                for slot, offset in zip(slots, offsets):
                    raw.append((a, b, date, day, times[slot], base + offset))
    flights: dict[str, dict[str, Any]] = {}
    routes: dict[tuple[str, str, str], list[str]] = {}
    for (a, b, date, day, time, price), number in zip(raw, rng.sample(range(100, 1000), len(raw))):
        fid = f"FL{number}"
        minutes = day * 1440 + int(time[:2]) * 60 + int(time[3:])
        flights[fid] = {"id": fid, "from": a, "to": b, "date": date, "time": time, "t": minutes, "price": price, "left": rng.choice(LEFT_CHOICES)}
        routes.setdefault((a, b, date), []).append(fid)
    passengers: dict[str, dict[str, Any]] = {}
    by_name: dict[str, str] = {}
    for name, number in zip(names, rng.sample(range(1000, 10000), len(names))):
        pid = f"P{number}"
        passengers[pid] = {"id": pid, "name": name, "tier": rng.choice(("basic", "basic", "silver", "gold"))}
        by_name[normalise(name)] = pid
    reservations: dict[str, dict[str, Any]] = {}
    next_id = rng.randrange(1000, 8000)
    flight_ids = list(flights)
    for pid in passengers:
        used = set()
        for _ in range(rng.randint(1, 3)):
            flight = flights[rng.choice(flight_ids)]
            if (flight["from"], flight["to"]) in used:  # one reservation per route, so "the A-B trip" is clear
                continue
            used.add((flight["from"], flight["to"]))
            cancelled = rng.random() < 0.12
            rid = f"R{next_id}"
            next_id += 1
            reservations[rid] = {"id": rid, "pid": pid, "flight": flight["id"], "seats": rng.choice((1, 1, 2, 2, 3, 4)), "status": "cancelled" if cancelled else "active", "reason": "other" if cancelled else None, "fee": 0}
    return {"flights": flights, "routes": routes, "passengers": passengers, "by_name": by_name, "res": reservations, "next": next_id, "initial": set(reservations)}


def _world_of(params: dict[str, Any]) -> dict[str, Any]:
    return _build_world(params["world_seed"], params["names"], params["cities"])


def _short(value: str) -> str:
    return repr(value[:40] + ("..." if len(value) > 40 else ""))


def _close(value: str, known: list[str]) -> str:
    close = difflib.get_close_matches(value, known, n=1, cutoff=0.6) if len(value) <= 60 else []
    return f"; did you mean {close[0]!r}?" if close else ""


def _passenger(world: dict[str, Any], pid: str) -> dict[str, Any]:
    key = pid.strip().upper()
    if key not in world["passengers"]:
        raise ToolError(f"no passenger with id {_short(pid)}; ids look like P1234: use find_passenger(name) to get one")
    return world["passengers"][key]


def _flight(world: dict[str, Any], fid: str) -> dict[str, Any]:
    key = fid.strip().upper()
    if key not in world["flights"]:
        raise ToolError(f"no flight with id {_short(fid)}; ids look like FL123: use search_flights(origin, destination, date) to find one")
    return world["flights"][key]


def _reservation(world: dict[str, Any], rid: str) -> dict[str, Any]:
    key = rid.strip().upper()
    if key not in world["res"]:
        raise ToolError(f"no reservation with id {_short(rid)}; ids look like R1234: use list_reservations(passenger_id) to find one")
    return world["res"][key]


def _city(value: str) -> str:
    for city in CITIES:
        if city.lower() == value.strip().lower():
            return city
    raise ToolError(f"unknown city {_short(value)}{_close(value, CITIES)}")


def _hours_left(flight: dict[str, Any]) -> int:
    return (flight["t"] - NOW_MIN) // 60


def _dep(flight: dict[str, Any]) -> str:
    return f"{flight['date']} {flight['time']}"


def _book(world: dict[str, Any], pid: str, fid: str, seats: int) -> dict[str, Any]:
    passenger, flight = _passenger(world, pid), _flight(world, fid)
    if not 1 <= seats <= MAX_SEATS:
        raise ToolError(f"seats must be between 1 and {MAX_SEATS} per booking; got {seats}")
    if flight["left"] < seats:
        what = "is full" if flight["left"] == 0 else f"has only {flight['left']} seat{'s' if flight['left'] != 1 else ''} left"
        raise ToolError(f"flight {flight['id']} {what}; cannot book {seats}. Search for another flight")
    rid = f"R{world['next']}"
    world["next"] += 1
    flight["left"] -= seats
    world["res"][rid] = {"id": rid, "pid": passenger["id"], "flight": flight["id"], "seats": seats, "status": "active", "reason": None, "fee": 0}
    return {"reservation": rid, "flight": flight["id"], "dep": _dep(flight), "seats": seats, "total": flight["price"] * seats}


def _cancel(world: dict[str, Any], rid: str, reason: str) -> dict[str, Any]:
    reservation = _reservation(world, rid)
    if reason not in REASONS:
        raise ToolError(f"reason must be one of {', '.join(REASONS)}; got {_short(reason)}")
    if reservation["status"] != "active":
        raise ToolError(f"reservation {reservation['id']} is already cancelled")
    flight, passenger = world["flights"][reservation["flight"]], world["passengers"][reservation["pid"]]
    hours = _hours_left(flight)
    if passenger["tier"] == "basic" and hours < 24:
        raise ToolError(f"policy: basic-tier passengers cannot cancel within 24 hours of departure; flight {flight['id']} departs in {hours} h. Tell the passenger it cannot be cancelled")
    reservation["status"], reservation["reason"] = "cancelled", reason
    flight["left"] += reservation["seats"]
    return {"reservation": reservation["id"], "status": "cancelled", "refund": flight["price"] * reservation["seats"]}


def _change(world: dict[str, Any], rid: str, fid: str) -> dict[str, Any]:
    reservation, new = _reservation(world, rid), _flight(world, fid)
    if reservation["status"] != "active":
        raise ToolError(f"reservation {reservation['id']} is cancelled and cannot be changed")
    old = world["flights"][reservation["flight"]]
    if new["id"] == old["id"]:
        raise ToolError(f"reservation {reservation['id']} is already on flight {old['id']}")
    if (new["from"], new["to"]) != (old["from"], old["to"]):
        raise ToolError(f"policy: changes are only allowed to a flight on the same route ({old['from']} to {old['to']}); {new['id']} flies {new['from']} to {new['to']}")
    seats = reservation["seats"]
    if new["left"] < seats:
        raise ToolError(f"flight {new['id']} has {new['left']} seats left but the reservation holds {seats}; choose another flight")
    fee = CHANGE_FEE[world["passengers"][reservation["pid"]]["tier"]] * seats
    old["left"] += seats
    new["left"] -= seats
    reservation["flight"] = new["id"]
    reservation["fee"] += fee
    return {"reservation": reservation["id"], "flight": new["id"], "dep": _dep(new), "seats": seats, "fee": fee}


def _apply(world: dict[str, Any], ops: list[list[Any]]) -> None:
    for op, *args in ops:
        {"book": _book, "cancel": _cancel, "change": _change}[op](world, *args)


def _state(world: dict[str, Any]) -> dict[tuple, Any]:
    """The world as flat comparable facts: each field of each reservation, and each flight's seats left.

    Reservations made during the episode are keyed by passenger and flight (not by their id, which
    depends on booking order)."""
    state: dict[tuple, Any] = {}
    seen: dict[tuple[str, str], int] = {}
    for rid in sorted(world["res"], key=lambda r: int(r[1:])):
        r = world["res"][rid]
        if rid in world["initial"]:
            for name in FIELDS:
                state[("res", rid, name)] = r[name]
        else:
            n = seen.get((r["pid"], r["flight"]), 0)
            seen[(r["pid"], r["flight"])] = n + 1
            state[("new", r["pid"], r["flight"], n)] = (r["seats"], r["status"], r["reason"], r["fee"])
    for fid, flight in world["flights"].items():
        state[("left", fid)] = flight["left"]
    return state


def _entity(key: tuple) -> tuple:
    return key[:2] if key[0] in ("res", "left") else key


def _compare(initial: dict, expected: dict, actual: dict) -> tuple[float, int]:
    """Share of the expected changes made, and the number of entities changed that should not have been."""
    keys = initial.keys() | expected.keys() | actual.keys()
    wanted = {k for k in keys if initial.get(k) != expected.get(k)}
    made = {k for k in keys if initial.get(k) != actual.get(k)}
    share = sum(actual.get(k) == expected.get(k) for k in wanted) / len(wanted) if wanted else 1.0
    collateral = {_entity(k) for k in made} - {_entity(k) for k in wanted}
    return share, len(collateral)


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


def _seats(k: int) -> str:
    return f"{k} seat{'s' if k != 1 else ''}"


def _active_on_route(world: dict[str, Any]) -> list[tuple[dict, dict, dict]]:
    """(passenger, reservation, flight) for every active reservation."""
    out = []
    for r in world["res"].values():
        if r["status"] == "active":
            out.append((world["passengers"][r["pid"]], r, world["flights"][r["flight"]]))
    return out


# --- task drafts: each returns None when the world has no fitting case (another world is drawn) ------------


def _draft_seats_left(rng: random.Random, w: dict, p: dict) -> TaskDraft | None:
    f = w["flights"][rng.choice(sorted(w["flights"]))]
    p.update(flight=f["id"])
    prompt = rng.choice([
        "How many seats are left on the {t} flight from {a} to {b} on {d}?",
        "Is there room on the {a} to {b} flight leaving {d} at {t}? How many seats are free?",
        "Check availability for me: {a} to {b}, {d}, departing {t}. How many seats remain?",
    ]).format(a=f["from"], b=f["to"], d=f["date"], t=f["time"])
    return TaskDraft("seats_left", prompt, p, ["search_flights"], [f["from"], f["to"], f["date"]])


def _cheapest(w: dict, key: tuple, seats: int = 1) -> dict | None:
    fitting = [w["flights"][fid] for fid in w["routes"].get(key, []) if w["flights"][fid]["left"] >= seats]
    return min(fitting, key=lambda f: f["price"]) if fitting else None


def _draft_cheapest_fare(rng: random.Random, w: dict, p: dict) -> TaskDraft | None:
    keys = [k for k in sorted(w["routes"]) if len(w["routes"][k]) >= 2 and _cheapest(w, k)]
    if not keys:
        return None
    a, b, d = rng.choice(keys)
    p.update(route=[a, b, d], flight=_cheapest(w, (a, b, d))["id"])
    prompt = rng.choice([
        "What is the cheapest fare I can still book from {a} to {b} on {d}?",
        "Find the lowest price for a seat that is still available from {a} to {b} on {d}.",
        "I want to fly {a} to {b} on {d}. What does the cheapest flight with free seats cost?",
    ]).format(a=a, b=b, d=d)
    return TaskDraft("cheapest_fare", prompt, p, ["search_flights"], [a, b, d])


def _draft_passenger_tier(rng: random.Random, w: dict, p: dict) -> TaskDraft | None:
    passenger = w["passengers"][rng.choice(sorted(w["passengers"]))]
    p.update(name=passenger["name"])
    prompt = rng.choice(["What membership tier does {n} have?", "Is {n} a basic, silver or gold member?", "Look up {n}'s membership tier."]).format(n=passenger["name"])
    return TaskDraft("passenger_tier", prompt, p, ["find_passenger"], [passenger["name"]])


def _draft_reservation_status(rng: random.Random, w: dict, p: dict) -> TaskDraft | None:
    cancelled = [r for r in w["res"].values() if r["status"] == "cancelled"]
    pool = cancelled if cancelled and rng.random() < 0.5 else list(w["res"].values())
    r = rng.choice(pool)
    p.update(reservation=r["id"], passenger=r["pid"])
    prompt = rng.choice([
        "What is the status of reservation {r}? It belongs to passenger {p}.",
        "Passenger {p} wants to know whether reservation {r} is still active.",
        "Is booking {r} of passenger {p} active or cancelled?",
    ]).format(r=r["id"], p=r["pid"])
    return TaskDraft("reservation_status", prompt, p, ["list_reservations"], [r["id"], r["pid"]])


def _draft_fares_many(rng: random.Random, w: dict, p: dict) -> TaskDraft | None:
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
    p.update(routes=chosen)
    parts = [f"from {a} to {b} on {d}" for a, b, d in chosen]
    listed = ", ".join(parts[:-1]) + " and " + parts[-1]
    prompt = rng.choice(["What is the cheapest fare with free seats {l}?", "Compare prices for me: the cheapest bookable flight {l}."]).format(l=listed)
    return TaskDraft("fares_many", prompt, p, ["search_flights"], sorted({x for key in chosen for x in key}))


def _draft_tiers_many(rng: random.Random, w: dict, p: dict) -> TaskDraft | None:
    names = rng.sample(sorted(x["name"] for x in w["passengers"].values()), rng.choice((2, 3)))
    p.update(names_asked=names)
    listed = ", ".join(names[:-1]) + " and " + names[-1]
    prompt = rng.choice(["What membership tiers do {l} have?", "Tell me the membership tier of each of these passengers: {l}."]).format(l=listed)
    return TaskDraft("tiers_many", prompt, p, ["find_passenger"], names)


def _draft_book_many(rng: random.Random, w: dict, p: dict) -> TaskDraft | None:
    pid = rng.choice(sorted(w["passengers"]))
    k1, k2 = rng.randint(1, MAX_SEATS), rng.randint(1, MAX_SEATS)
    candidates = sorted(fid for fid, f in w["flights"].items() if f["left"] >= max(k1, k2))
    if len(candidates) < 2:
        return None
    f1, f2 = rng.sample(candidates, 2)
    p.update(ops=[["book", pid, f1, k1], ["book", pid, f2, k2]])
    prompt = rng.choice([
        "For passenger {p}, book {s1} on flight {f1} and {s2} on flight {f2}.",
        "Passenger {p} wants {s1} on {f1} and {s2} on {f2}. Please book both.",
    ]).format(p=pid, f1=f1, f2=f2, s1=_seats(k1), s2=_seats(k2))
    return TaskDraft("book_many", prompt, p, ["book_flight"], [pid, f1, f2])


def _draft_book_cheapest(rng: random.Random, w: dict, p: dict) -> TaskDraft | None:
    k = rng.randint(1, 3)
    keys = [key for key in sorted(w["routes"]) if len(w["routes"][key]) >= 2 and _cheapest(w, key, k)]
    if not keys:
        return None
    a, b, d = rng.choice(keys)
    passenger = w["passengers"][rng.choice(sorted(w["passengers"]))]
    p.update(ops=[["book", passenger["id"], _cheapest(w, (a, b, d), k)["id"], k]])
    prompt = rng.choice([
        "Book {s} for {n} on the cheapest flight from {a} to {b} on {d} that has enough free seats.",
        "{n} needs {s} from {a} to {b} on {d}. Book the cheapest flight with room for that.",
        "Please book the lowest-priced {a} to {b} flight on {d} that still has {s} free, for {n}.",
    ]).format(s=_seats(k), n=passenger["name"], a=a, b=b, d=d)
    return TaskDraft("book_cheapest", prompt, p, ["find_passenger", "search_flights", "book_flight"], [passenger["name"], a, b, d])


def _draft_rebook_earliest(rng: random.Random, w: dict, p: dict) -> TaskDraft | None:
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
    p.update(ops=[["change", r["id"], target["id"]]])
    prompt = rng.choice([
        "Move {n}'s {a} to {b} reservation to the earliest flight on {d} that has enough seats.",
        "{n} wants to fly {a} to {b} on {d} instead. Change the reservation to the earliest flight that day with room for all its seats.",
    ]).format(n=passenger["name"], a=f["from"], b=f["to"], d=d)
    return TaskDraft("rebook_earliest", prompt, p, ["find_passenger", "search_flights", "list_reservations", "change_flight"], [passenger["name"], f["from"], f["to"], d])


def _draft_change(rng: random.Random, w: dict, p: dict, refuse: bool) -> TaskDraft | None:
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
    if refuse:
        p.update(refuse=True, reservation=r["id"], flight=target["id"], left=target["left"])
    else:
        p.update(ops=[["change", r["id"], target["id"]]])
    prompt = rng.choice([
        "Move {n}'s reservation from {a} to {b} to the {t} flight on {d}.",
        "Please change {n}'s {a}-{b} booking to the {d} flight that departs at {t}.",
    ]).format(n=passenger["name"], a=f["from"], b=f["to"], d=target["date"], t=target["time"])
    tools = ["find_passenger", "search_flights", "list_reservations"] + ([] if refuse else ["change_flight"])
    family = "change_refused" if refuse else "change_flight_at"
    return TaskDraft(family, prompt, p, tools, [passenger["name"], f["from"], f["to"], target["date"]])


def _draft_cancel(rng: random.Random, w: dict, p: dict, refuse: bool) -> TaskDraft | None:
    cases = [(x, r, f) for x, r, f in _active_on_route(w) if (x["tier"] == "basic" and _hours_left(f) < 24) == refuse]
    if not cases:
        return None
    passenger, r, f = rng.choice(cases)
    reason = rng.choice(REASONS[:4])
    if refuse:
        p.update(refuse=True, reservation=r["id"])
    else:
        p.update(ops=[["cancel", r["id"], reason]])
    prompt = rng.choice([
        "Please cancel {n}'s reservation for the flight from {a} to {b}. Reason: {r}.",
        "{n} will not make the {a} to {b} trip (reason: {r}). Cancel that reservation, please.",
        "Cancel the {a}-{b} booking of {n}; the reason is {r}.",
    ]).format(n=passenger["name"], a=f["from"], b=f["to"], r=reason)
    tools = ["find_passenger", "list_reservations"] + ([] if refuse else ["cancel_reservation"])
    return TaskDraft("cancel_refused" if refuse else "cancel_trip", prompt, p, tools, [passenger["name"], f["from"], f["to"]])


def _draft_my_flight_seats(rng: random.Random, w: dict, p: dict) -> TaskDraft | None:
    cases = _active_on_route(w)
    if not cases:
        return None
    passenger, r, f = rng.choice(cases)
    p.update(flight=f["id"], name=passenger["name"])
    prompt = rng.choice([
        "How many seats are still free on the flight {n} is booked on from {a} to {b}?",
        "{n} has a reservation from {a} to {b}. How many seats are left on that flight?",
    ]).format(n=passenger["name"], a=f["from"], b=f["to"])
    return TaskDraft("my_flight_seats", prompt, p, ["find_passenger", "list_reservations", "search_flights"], [passenger["name"], f["from"], f["to"]])


_DRAFTS = {
    "seats_left": _draft_seats_left,
    "cheapest_fare": _draft_cheapest_fare,
    "passenger_tier": _draft_passenger_tier,
    "reservation_status": _draft_reservation_status,
    "fares_many": _draft_fares_many,
    "tiers_many": _draft_tiers_many,
    "book_many": _draft_book_many,
    "book_cheapest": _draft_book_cheapest,
    "rebook_earliest": _draft_rebook_earliest,
    "change_flight_at": lambda rng, w, p: _draft_change(rng, w, p, refuse=False),
    "change_refused": lambda rng, w, p: _draft_change(rng, w, p, refuse=True),
    "cancel_trip": lambda rng, w, p: _draft_cancel(rng, w, p, refuse=False),
    "cancel_refused": lambda rng, w, p: _draft_cancel(rng, w, p, refuse=True),
    "my_flight_seats": _draft_my_flight_seats,
}


class BookingsEnv(ToolEnvironment):
    name = "bookings"
    description = "An airline booking desk with policy rules: look up passengers, flights and reservations; book, cancel, change or refuse."
    families = {
        "single": ["seats_left", "cheapest_fare", "passenger_tier", "reservation_status"],
        "multi_step": ["book_cheapest", "rebook_earliest", "change_flight_at", "change_refused"],
        "parallel": ["fares_many", "tiers_many", "book_many"],
        "nested": ["cancel_trip", "cancel_refused", "my_flight_seats"],
        "recovery": ["seats_left (503 first)", "tiers_many (503 first)", "book_cheapest (503 first)", "cancel_trip (503 first)", "my_flight_seats (503 first)"],
    }

    # --- the world ----------------------------------------------------------------------------------------

    def _setup(self, task: Task) -> None:
        self._world = _world_of(task.params)
        self._initial = _state(self._world)

    # --- tools -------------------------------------------------------------------------------------------

    def find_passenger(self, name: str) -> dict:
        """Find a passenger by full name: their id and membership tier (basic, silver or gold).

        Args:
            name: The passenger's full name, e.g. Ana Silva.
        """
        pid = self._world["by_name"].get(normalise(name[:100]))
        if pid is None:
            known = [x["name"] for x in self._world["passengers"].values()]
            raise ToolError(f"no passenger named {_short(name)}{_close(name, known)}; give the full name")
        passenger = self._world["passengers"][pid]
        return {"id": pid, "name": passenger["name"], "tier": passenger["tier"]}

    def list_reservations(self, passenger_id: str) -> list:
        """List a passenger's reservations. in_h is the hours until departure (now is 2026-05-01 12:00).

        Args:
            passenger_id: The passenger id from find_passenger, e.g. P1234.
        """
        pid = _passenger(self._world, passenger_id)["id"]
        out = []
        for r in self._world["res"].values():
            if r["pid"] == pid:
                f = self._world["flights"][r["flight"]]
                out.append({"id": r["id"], "flight": f["id"], "from": f["from"], "to": f["to"], "dep": _dep(f), "in_h": _hours_left(f), "seats": r["seats"], "status": r["status"]})
        return out[:20]

    def search_flights(self, origin: str, destination: str, date: str) -> list:
        """Search the flights on a route and day: id, departure time, fare per seat and seats left.

        Args:
            origin: The departure city, e.g. Boston.
            destination: The arrival city, e.g. Denver.
            date: The day as YYYY-MM-DD, from 2026-05-01 to 2026-05-06.
        """
        a, b = _city(origin), _city(destination)
        if a == b:
            raise ToolError("origin and destination must be different cities")
        if date.strip() not in DATES:
            raise ToolError(f"date must be a day from {DATES[0]} to {DATES[-1]} written YYYY-MM-DD; got {_short(date)}")
        flights = self._world["flights"]
        return [{"id": fid, "time": flights[fid]["time"], "price": flights[fid]["price"], "left": flights[fid]["left"]} for fid in self._world["routes"].get((a, b, date.strip()), [])]

    def book_flight(self, passenger_id: str, flight_id: str, seats: int = 1) -> dict:
        """Book seats on a flight for a passenger. Policy: 1 to 4 seats per booking, and no more than the flight has left.

        Args:
            passenger_id: The passenger id, e.g. P1234.
            flight_id: The flight id from search_flights, e.g. FL123.
            seats: How many seats to book (1 to 4).
        """
        return _book(self._world, passenger_id, flight_id, seats)

    def cancel_reservation(self, reservation_id: str, reason: str) -> dict:
        """Cancel a reservation and refund it. Policy: basic-tier passengers cannot cancel within 24 hours of departure.

        Args:
            reservation_id: The reservation id, e.g. R1234.
            reason: Why: illness, weather, schedule, personal or other.
        """
        return _cancel(self._world, reservation_id, reason)

    def change_flight(self, reservation_id: str, new_flight_id: str) -> dict:
        """Move a reservation to another flight. Policy: same route only, with room for all its seats; fee per seat: basic 50, silver 25, gold 0.

        Args:
            reservation_id: The reservation id, e.g. R1234.
            new_flight_id: The id of the flight to move to, e.g. FL123.
        """
        return _change(self._world, reservation_id, new_flight_id)

    # --- tasks -------------------------------------------------------------------------------------------

    @classmethod
    def _make_task(cls, rng: random.Random, difficulty: str, novel: bool) -> TaskDraft:
        family = rng.choice(cls.families[difficulty]).split(" ")[0]
        names, cities = entity_pool(NAMES, novel), entity_pool(CITIES, novel)
        for _ in range(200):
            params: dict[str, Any] = {
                "world_seed": rng.randrange(2**31),
                "names": rng.sample(names, WORLD_PASSENGERS),
                "cities": rng.sample(cities, WORLD_CITIES),
                "family": family,
            }
            draft = _DRAFTS[family](rng, _world_of(params), params)
            if draft is not None:
                if difficulty == "recovery":
                    params["fail_first"] = [rng.choice(draft.relevant_tools)]
                return draft
        raise RuntimeError(f"bookings: no world fits family {family!r}")

    # --- oracle -------------------------------------------------------------------------------------------

    def _solve(self, task: Task) -> Generator[OracleStep, list[Any], Answer]:
        p, family = task.params, task.params["family"]
        w = _world_of(p)  # only to read the request's details (route, date, names) as the prompt states them
        if family == "seats_left":
            f = w["flights"][p["flight"]]
            [found] = yield OracleStep(f"I will search {f['from']} to {f['to']} on {f['date']} and pick the {f['time']} flight.", [("search_flights", {"origin": f["from"], "destination": f["to"], "date": f["date"]})])
            hit = next(x for x in found if x["time"] == f["time"])
            return Answer(f"The {f['time']} flight from {f['from']} to {f['to']} on {f['date']} ({hit['id']}) has {hit['left']} seats left.")
        if family == "cheapest_fare":
            a, b, d = p["route"]
            [found] = yield OracleStep("I will search the flights of that day and take the cheapest one with free seats.", [("search_flights", {"origin": a, "destination": b, "date": d})])
            best = min((x for x in found if x["left"] > 0), key=lambda x: x["price"])
            return Answer(f"The cheapest available fare from {a} to {b} on {d} is {best['price']} on flight {best['id']} at {best['time']} ({best['left']} seats left).")
        if family == "fares_many":
            found = yield OracleStep(f"I will search the {len(p['routes'])} routes at once.", [("search_flights", {"origin": a, "destination": b, "date": d}) for a, b, d in p["routes"]])
            parts = []
            for (a, b, d), flights in zip(p["routes"], found):
                best = min((x for x in flights if x["left"] > 0), key=lambda x: x["price"])
                parts.append(f"{a} to {b}: {best['price']} ({best['id']})")
            return Answer("Cheapest fares with free seats: " + "; ".join(parts) + ".")
        if family == "passenger_tier":
            [x] = yield OracleStep("I will look the passenger up.", [("find_passenger", {"name": p["name"]})])
            return Answer(f"{x['name']} ({x['id']}) is a {x['tier']} member.")
        if family == "tiers_many":
            found = yield OracleStep("I will look up all of them at once.", [("find_passenger", {"name": n}) for n in p["names_asked"]])
            return Answer("; ".join(f"{x['name']}: {x['tier']}" for x in found) + ".")
        if family == "reservation_status":
            [found] = yield OracleStep(f"I will list passenger {p['passenger']}'s reservations.", [("list_reservations", {"passenger_id": p["passenger"]})])
            r = next(x for x in found if x["id"] == p["reservation"])
            return Answer(f"Reservation {r['id']} ({r['from']} to {r['to']}, flight {r['flight']}) is {r['status']}.")
        if family == "book_many":
            made = yield OracleStep("The two bookings are independent; I will make both at once.", [("book_flight", {"passenger_id": pid, "flight_id": fid, "seats": k}) for _, pid, fid, k in p["ops"]])
            return Answer("Booked for passenger " + p["ops"][0][1] + ": " + "; ".join(f"reservation {m['reservation']}, {_seats(m['seats'])} on {m['flight']} (total {m['total']})" for m in made) + ".")
        if family == "book_cheapest":
            _, pid, fid, k = p["ops"][0]
            f, name = w["flights"][fid], w["passengers"][pid]["name"]
            x, found = yield OracleStep("I need the passenger id and the flights of that day; both lookups are independent.", [("find_passenger", {"name": name}), ("search_flights", {"origin": f["from"], "destination": f["to"], "date": f["date"]})])
            best = min((y for y in found if y["left"] >= k), key=lambda y: y["price"])
            [made] = yield OracleStep(f"The cheapest flight with at least {k} free seats is {best['id']} at {best['price']}; I will book it for {x['id']}.", [("book_flight", {"passenger_id": x["id"], "flight_id": best["id"], "seats": k})])
            return Answer(f"Booked {_seats(k)} for {name} on flight {made['flight']} ({f['from']} to {f['to']}, {made['dep']}): reservation {made['reservation']}, total {made['total']}.")
        if family in ("rebook_earliest", "change_flight_at", "change_refused"):
            if family == "change_refused":
                rid, target = p["reservation"], w["flights"][p["flight"]]
            else:
                rid, target = p["ops"][0][1], w["flights"][p["ops"][0][2]]
            old = w["flights"][w["res"][rid]["flight"]]
            name = w["passengers"][w["res"][rid]["pid"]]["name"]
            x, found = yield OracleStep("I need the passenger id and the flights on the new day; both lookups are independent.", [("find_passenger", {"name": name}), ("search_flights", {"origin": old["from"], "destination": old["to"], "date": target["date"]})])
            [mine] = yield OracleStep(f"Now {name}'s reservations, to find the {old['from']} to {old['to']} one and its seats.", [("list_reservations", {"passenger_id": x["id"]})])
            r = next(y for y in mine if y["from"] == old["from"] and y["to"] == old["to"] and y["status"] == "active")
            if family == "rebook_earliest":
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
        if family in ("cancel_trip", "cancel_refused"):
            rid = p["reservation"] if family == "cancel_refused" else p["ops"][0][1]
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
        if family == "my_flight_seats":
            f = w["flights"][p["flight"]]
            name = p["name"]
            [x] = yield OracleStep("First the passenger id.", [("find_passenger", {"name": name})])
            [mine] = yield OracleStep(f"Now the reservations of {x['id']}.", [("list_reservations", {"passenger_id": x["id"]})])
            r = next(y for y in mine if y["from"] == f["from"] and y["to"] == f["to"] and y["status"] == "active")
            date, time = r["dep"].split(" ")
            [found] = yield OracleStep(f"The reservation is on flight {r['flight']} on {date}; I will search that day for its seats.", [("search_flights", {"origin": r["from"], "destination": r["to"], "date": date})])
            hit = next(y for y in found if y["id"] == r["flight"])
            return Answer(f"{name}'s flight {hit['id']} from {r['from']} to {r['to']} on {date} at {time} has {hit['left']} seats left.")
        raise ValueError(f"bookings: no oracle for family {family!r}")

    # --- verifier -----------------------------------------------------------------------------------------

    def _verify(self, answer: str | None) -> float:
        p, family = self.task.params, self.task.params["family"]
        expected = _world_of(p)  # a fresh copy of the world, with the oracle's plan applied
        _apply(expected, p.get("ops", []))
        share, collateral = _compare(self._initial, _state(expected), _state(self._world))
        penalty = COLLATERAL_PENALTY * collateral
        if family in STATE_FAMILIES:
            if family in ("book_many", "book_cheapest"):
                made = [r["id"] for r in self._world["res"].values() if r["id"] not in self._world["initial"] and any(r["pid"] == op[1] and r["flight"] == op[2] for op in p["ops"])]
                said = share_mentioned(answer, made) if made else 0.0
            else:
                said = float(mentions(answer, p["ops"][0][1]))
            return max(0.0, share * (0.75 + 0.25 * said) - penalty)
        if family in REFUSAL_FAMILIES:
            if not _refuses(answer):
                return 0.0
            if family == "cancel_refused":
                why = mentions(answer, "24") or mentions(answer, "basic")
            else:
                why = mentions(answer, p["left"]) and ("seat" in normalise(answer).split() or "seats" in normalise(answer).split())
            return max(0.0, 0.4 + 0.3 * mentions(answer, p["reservation"]) + 0.3 * why - penalty)
        return max(0.0, self._answer_score(answer, expected) - penalty)  # no plan: the initial world

    def _answer_score(self, answer: str | None, w: dict[str, Any]) -> float:
        p, family = self.task.params, self.task.params["family"]
        if family in ("seats_left", "my_flight_seats"):
            f = w["flights"][p["flight"]]  # the departure's own numbers do not count as the seat count
            return share_mentioned((answer or "").replace(f["date"], " ").replace(f["time"], " "), [f["left"]])
        if family == "cheapest_fare":
            return share_mentioned(answer, [w["flights"][p["flight"]]["price"]])
        if family == "fares_many":
            return share_mentioned(answer, [_cheapest(w, tuple(key))["price"] for key in p["routes"]])
        tier_of = {x["name"]: x["tier"] for x in w["passengers"].values()}
        if family == "passenger_tier":
            stated = {word for word in normalise(answer or "").split() if word in TIERS}
            return float(stated == {tier_of[p["name"]]})
        if family == "tiers_many":
            stated = _tiers_by_name(answer, p["names_asked"])
            return sum(stated.get(n) == tier_of[n] for n in p["names_asked"]) / len(p["names_asked"])
        if family == "reservation_status":
            said = _first_word(answer, {"active": "active", "cancelled": "cancelled", "canceled": "cancelled"})
            return float(said == w["res"][p["reservation"]]["status"])
        raise ValueError(f"bookings: no verifier for family {family!r}")
