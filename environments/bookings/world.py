"""The booking desk's world: passengers, flights and reservations drawn from a seed, the policy the tools
enforce (booking, cancelling and changing reservations), and the world as comparable state."""

from __future__ import annotations

import difflib
import random
from typing import Any

from environments.answers import normalise
from environments.base import ToolError

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


# --- the policy: what the tools change ---------------------------------------------------------------------


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


# --- the world as comparable state -------------------------------------------------------------------------


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


# --- what tasks are drawn from -----------------------------------------------------------------------------


def _seats(k: int) -> str:
    return f"{k} seat{'s' if k != 1 else ''}"


def _active_on_route(world: dict[str, Any]) -> list[tuple[dict, dict, dict]]:
    """(passenger, reservation, flight) for every active reservation."""
    out = []
    for r in world["res"].values():
        if r["status"] == "active":
            out.append((world["passengers"][r["pid"]], r, world["flights"][r["flight"]]))
    return out


def _cheapest(w: dict, key: tuple, seats: int = 1) -> dict | None:
    fitting = [w["flights"][fid] for fid in w["routes"].get(key, []) if w["flights"][fid]["left"] >= seats]
    return min(fitting, key=lambda f: f["price"]) if fitting else None
