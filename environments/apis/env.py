"""The web APIs environment: weather, currency conversion, country facts and a calendar as tools, the draw of
its tasks, and the verifier (the facts a correct answer states, in any wording)."""

from __future__ import annotations

import difflib
import random
from typing import Any

from environments.answers import share_mentioned
from environments.apis.families import FAMILIES
from environments.apis.world import CITIES, COUNTRIES, CURRENCIES, DATES, UNITS, Pools, _build, rate, temperature
from environments.base import TaskDraft, ToolEnvironment, ToolError, entity_pool
from environments.families import TaskFamily, Wording
from environments.record import Task


def _suggest(value: str, known: list[str], what: str) -> ToolError:
    close = difflib.get_close_matches(value, known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known {what}: {', '.join(known[:12])}..."
    return ToolError(f"unknown {what[:-1] if what.endswith('s') else what} {value!r}{hint}")


class ApisEnv(ToolEnvironment):
    name = "apis"
    description = "Weather, currency, country facts and a calendar, as web APIs: parallel and nested calls."
    task_families = FAMILIES

    # --- the world ----------------------------------------------------------------------------------------

    def _setup(self, task: Task) -> None:
        self.world = _build(task.params["world_seed"])

    # --- tools -------------------------------------------------------------------------------------------

    def get_weather(self, city: str, unit: str = "celsius") -> dict:
        """Get the current weather in a city.

        Args:
            city: The city name, e.g. Paris.
            unit: The temperature unit: celsius or fahrenheit.
        """
        if unit not in UNITS:
            raise ToolError(f"unit must be 'celsius' or 'fahrenheit', not {unit!r}")
        if city not in self.world.weather:
            raise _suggest(city, CITIES, "cities")
        report = self.world.weather[city]
        return {"city": city, "temperature": temperature(self.world, city, unit), "unit": unit, "condition": report["condition"], "humidity": report["humidity"]}

    def convert_currency(self, amount: float, source: str, target: str) -> dict:
        """Convert an amount of money between two currencies at today's rate.

        Args:
            amount: The amount of money to convert.
            source: The ISO 4217 code of the currency to convert from, e.g. USD.
            target: The ISO 4217 code of the currency to convert to, e.g. EUR.
        """
        for code in (source, target):
            if code not in self.world.usd_rates:
                raise _suggest(code, CURRENCIES, "currency codes")
        if amount < 0:
            raise ToolError("amount must not be negative")
        today = rate(self.world, source, target)
        return {"amount": amount, "source": source, "target": target, "rate": today, "result": round(amount * today, 2)}

    def get_country_info(self, country: str) -> dict:
        """Look up a country's capital city and currency.

        Args:
            country: The country name in English, e.g. Japan.
        """
        if country not in COUNTRIES:
            raise _suggest(country, sorted(COUNTRIES), "countries")
        capital, currency = COUNTRIES[country]
        return {"country": country, "capital": capital, "currency": currency}

    def list_events(self, date: str) -> list:
        """List the user's calendar events on a date.

        Args:
            date: The date as YYYY-MM-DD.
        """
        if date not in DATES:
            raise ToolError(f"date must be a day of March 2026 written YYYY-MM-DD, e.g. 2026-03-05; got {date!r}")
        return [e for e in self.world.events if e["date"] == date]

    # --- tasks and their verification --------------------------------------------------------------------

    @classmethod
    def _make_task(cls, rng: random.Random, difficulty: str, novel: bool) -> TaskDraft:
        # The world and the unit are drawn before the family (the data set was drawn in this order), and every
        # world suits every task, so apis draws its own way.
        world_seed = rng.randrange(2**31)
        pools = Pools(entity_pool(CITIES, novel), entity_pool(sorted(COUNTRIES), novel), entity_pool(CURRENCIES, novel), rng.choice(UNITS))
        family = rng.choice([f for f in cls.task_families if difficulty in f.difficulties])
        params: dict[str, Any] = {"world_seed": world_seed, "family": family.name}
        if difficulty == "recovery":
            params["fail_first"] = [family.fail_first]
        values, entities, *wording = family.draw(rng, pools)
        params.update(values)
        prompt = cls._phrase(rng, family, values, wording[0] if wording else Wording())
        return TaskDraft(family.name, prompt, params, list(family.tools), entities)

    def _score(self, family: TaskFamily, answer: str | None, expected_state: None) -> float:
        return share_mentioned(answer, family.expected(self.world, self.task.params))
