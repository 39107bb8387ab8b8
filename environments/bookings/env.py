"""The booking desk environment: its tools (which enforce the policy), the draw of its worlds, and the
verifier."""

from __future__ import annotations

import random
from typing import Any

from environments.answers import mentions, normalise, share_mentioned
from environments.base import TaskDraft, ToolEnvironment, ToolError, entity_pool
from environments.bookings.families import FAMILIES
from environments.bookings.world import (
    CITIES, DATES, NAMES, WORLD_CITIES, WORLD_PASSENGERS, _book, _cancel, _change, _city, _close, _compare, _dep, _hours_left, _passenger, _short,
    _state, _world_of,
)
from environments.families import TaskFamily
from environments.record import Task

COLLATERAL_PENALTY = 0.3  # per reservation or flight changed that the task did not ask to change


class BookingsEnv(ToolEnvironment):
    name = "bookings"
    description = "An airline booking desk with policy rules: look up passengers, flights and reservations; book, cancel, change or refuse."
    task_families = FAMILIES

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

    # --- tasks and their verification --------------------------------------------------------------------

    @classmethod
    def _draw_world(cls, rng: random.Random, novel: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        params = {
            "world_seed": rng.randrange(2**31),
            "names": rng.sample(entity_pool(NAMES, novel), WORLD_PASSENGERS),
            "cities": rng.sample(entity_pool(CITIES, novel), WORLD_CITIES),
        }
        return params, _world_of(params)

    @classmethod
    def _make_task(cls, rng: random.Random, difficulty: str, novel: bool) -> TaskDraft:
        draft = super()._make_task(rng, difficulty, novel)
        if difficulty == "recovery":  # any of the task's tools may fail first: drawn last, after the phrasing
            draft.params["fail_first"] = [rng.choice(draft.relevant_tools)]
        return draft

    def _state(self) -> dict[tuple, Any]:
        return _state(self._world)

    def _score(self, family: TaskFamily, answer: str | None, expected_state: dict[tuple, Any] | None) -> float:
        """Changes are compared with the world the expert's calls leave (partial credit per changed field), and the
        answer must name what was done; questions and refusals are checked on their answer and must leave the
        world as it was. Every reservation or flight changed unasked costs COLLATERAL_PENALTY."""
        share, collateral = _compare(self._initial, expected_state if family.writes else self._initial, self._state())
        penalty = COLLATERAL_PENALTY * collateral
        if family.writes:
            return max(0.0, share * (0.75 + 0.25 * self._reported(answer, expected_state)) - penalty)
        return max(0.0, family.expected(answer, _world_of(self.task.params), self.task.params) - penalty)

    def _reported(self, answer: str | None, expected: dict[tuple, Any]) -> float:
        """How far the answer names what was done: the share of the new reservations it names (by the ids they got
        in this episode), or whether it names the reservation that was changed or cancelled."""
        booked = {key[1:3] for key in expected if key[0] == "new"}
        if booked:
            made = [r["id"] for r in self._world["res"].values() if r["id"] not in self._world["initial"] and (r["pid"], r["flight"]) in booked]
            return share_mentioned(answer, made) if made else 0.0
        [changed] = {key[1] for key in expected if key[0] == "res" and expected[key] != self._initial[key]}
        return float(mentions(answer, changed))
