"""Web-API style tools: weather, currency conversion, country facts and a personal calendar.

The place for parallel calls (several cities or currencies at once) and nested calls (one call's output is
the next call's argument: a country's capital, then its weather). Every value is drawn from the task's
world seed, so the same task always sees the same world, and answers are checked against it.
"""

from __future__ import annotations

import difflib
import random
from collections.abc import Generator
from typing import Any

from environments.base import Answer, OracleStep, TaskDraft, ToolEnvironment, ToolError, entity_pool, share_mentioned
from environments.record import Task

# country -> (capital, currency); capitals double as the cities with weather.
COUNTRIES = {
    "France": ("Paris", "EUR"), "Japan": ("Tokyo", "JPY"), "Peru": ("Lima", "PEN"), "Norway": ("Oslo", "NOK"),
    "Egypt": ("Cairo", "EGP"), "Kenya": ("Nairobi", "KES"), "Chile": ("Santiago", "CLP"), "India": ("New Delhi", "INR"),
    "Brazil": ("Brasilia", "BRL"), "Canada": ("Ottawa", "CAD"), "Mexico": ("Mexico City", "MXN"), "Poland": ("Warsaw", "PLN"),
    "Vietnam": ("Hanoi", "VND"), "Ghana": ("Accra", "GHS"), "Sweden": ("Stockholm", "SEK"), "Turkey": ("Ankara", "TRY"),
    "Australia": ("Canberra", "AUD"), "Morocco": ("Rabat", "MAD"), "Thailand": ("Bangkok", "THB"), "Portugal": ("Lisbon", "EUR"),
    "Argentina": ("Buenos Aires", "ARS"), "Nigeria": ("Abuja", "NGN"), "Iceland": ("Reykjavik", "ISK"), "Colombia": ("Bogota", "COP"),
    "Hungary": ("Budapest", "HUF"), "Indonesia": ("Jakarta", "IDR"), "Denmark": ("Copenhagen", "DKK"), "Czechia": ("Prague", "CZK"),
    "United Kingdom": ("London", "GBP"), "Switzerland": ("Bern", "CHF"), "South Korea": ("Seoul", "KRW"), "Philippines": ("Manila", "PHP"),
}
CITIES = sorted({capital for capital, _ in COUNTRIES.values()} | {"Osaka", "Bergen", "Porto", "Lyon", "Cusco", "Mombasa", "Perth", "Quito"})
CURRENCIES = sorted({currency for _, currency in COUNTRIES.values()} | {"USD"})
CONDITIONS = ["sunny", "cloudy", "rainy", "windy", "snowy", "foggy", "stormy"]
PEOPLE = ["Ada", "Bo", "Chen", "Dara", "Emil", "Femi", "Gia", "Hugo", "Ines", "Jun", "Kofi", "Lena", "Mira", "Nico", "Omar", "Pia"]
TOPICS = ["budget review", "design sync", "lunch", "interview", "planning", "retro", "demo", "1:1"]
DATES = [f"2026-03-{day:02d}" for day in range(1, 29)]


def _suggest(value: str, known: list[str], what: str) -> ToolError:
    close = difflib.get_close_matches(value, known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known {what}: {', '.join(known[:12])}..."
    return ToolError(f"unknown {what[:-1] if what.endswith('s') else what} {value!r}{hint}")


class ApisEnv(ToolEnvironment):
    name = "apis"
    description = "Weather, currency, country facts and a calendar, as web APIs: parallel and nested calls."
    families = {
        "single": ["weather", "convert", "capital"],
        "multi_step": ["convert_then_weather"],
        "parallel": ["weather_many", "convert_many"],
        "nested": ["capital_weather", "local_currency", "meeting_weather"],
        "recovery": ["weather (503 first)", "capital_weather (503 first)"],
    }

    # --- the world ----------------------------------------------------------------------------------------

    def _setup(self, task: Task) -> None:
        rng = random.Random(task.params["world_seed"])
        self.weather = {city: {"temperature_c": rng.randint(-8, 36), "condition": rng.choice(CONDITIONS), "humidity": rng.randint(20, 95)} for city in CITIES}
        self.usd_rates = {code: round(rng.uniform(0.2, 5.0) * (100 if code in ("JPY", "KRW", "CLP", "COP", "IDR", "VND", "HUF") else 1), 4) for code in CURRENCIES}
        self.usd_rates["USD"] = 1.0
        self.events = []
        for date in rng.sample(DATES, 6):
            for _ in range(rng.randint(1, 2)):
                self.events.append({"date": date, "time": f"{rng.randint(8, 17):02d}:{rng.choice(['00', '30'])}", "title": rng.choice(TOPICS), "with": rng.choice(PEOPLE), "city": rng.choice(CITIES)})
        self.events.sort(key=lambda e: (e["date"], e["time"]))

    # --- tools -------------------------------------------------------------------------------------------

    def get_weather(self, city: str, unit: str = "celsius") -> dict:
        """Get the current weather in a city.

        Args:
            city: The city name, e.g. Paris.
            unit: The temperature unit: celsius or fahrenheit.
        """
        if unit not in ("celsius", "fahrenheit"):
            raise ToolError(f"unit must be 'celsius' or 'fahrenheit', not {unit!r}")
        if city not in self.weather:
            raise _suggest(city, CITIES, "cities")
        report = self.weather[city]
        temperature = report["temperature_c"] if unit == "celsius" else round(report["temperature_c"] * 9 / 5 + 32)
        return {"city": city, "temperature": temperature, "unit": unit, "condition": report["condition"], "humidity": report["humidity"]}

    def convert_currency(self, amount: float, source: str, target: str) -> dict:
        """Convert an amount of money between two currencies at today's rate.

        Args:
            amount: The amount of money to convert.
            source: The ISO 4217 code of the currency to convert from, e.g. USD.
            target: The ISO 4217 code of the currency to convert to, e.g. EUR.
        """
        for code in (source, target):
            if code not in self.usd_rates:
                raise _suggest(code, CURRENCIES, "currency codes")
        if amount < 0:
            raise ToolError("amount must not be negative")
        rate = round(self.usd_rates[target] / self.usd_rates[source], 6)
        return {"amount": amount, "source": source, "target": target, "rate": rate, "result": round(amount * rate, 2)}

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
        return [e for e in self.events if e["date"] == date]

    # --- tasks -------------------------------------------------------------------------------------------

    @classmethod
    def _make_task(cls, rng: random.Random, difficulty: str, novel: bool) -> TaskDraft:
        world_seed = rng.randrange(2**31)
        cities = entity_pool(CITIES, novel)
        countries = entity_pool(sorted(COUNTRIES), novel)
        currencies = entity_pool(CURRENCIES, novel)
        unit = rng.choice(["celsius", "fahrenheit"])
        family = rng.choice(cls.families[difficulty]).split(" ")[0]
        params: dict[str, Any] = {"world_seed": world_seed, "family": family}
        if difficulty == "recovery":
            params["fail_first"] = ["get_weather"] if family == "weather" else ["get_country_info"]

        if family == "weather":
            city = rng.choice(cities)
            params.update(cities=[city], unit=unit)
            prompt = rng.choice(["What is the weather in {c} right now, in {u}?", "How warm is it in {c}? Give me {u}.", "Tell me the current temperature in {c} ({u})."]).format(c=city, u=unit)
            return TaskDraft("weather", prompt, params, ["get_weather"], [city])
        if family == "convert":
            amount = rng.choice([rng.randint(5, 999), round(rng.uniform(1, 500), 2)])
            source, target = rng.sample(currencies, 2)
            params.update(amount=amount, source=source, target=target)
            prompt = rng.choice(["How much is {a} {s} in {t}?", "Convert {a} {s} to {t}, please.", "I have {a} {s}. What is that in {t}?"]).format(a=amount, s=source, t=target)
            return TaskDraft("convert", prompt, params, ["convert_currency"], [source, target])
        if family == "capital":
            country = rng.choice(countries)
            params.update(country=country)
            prompt = rng.choice(["What is the capital of {c}?", "Which city is the capital of {c}?"]).format(c=country)
            return TaskDraft("capital", prompt, params, ["get_country_info"], [country])
        if family == "convert_then_weather":
            amount, (source, target), city = rng.randint(10, 900), rng.sample(currencies, 2), rng.choice(cities)
            params.update(amount=amount, source=source, target=target, cities=[city], unit=unit)
            prompt = f"First convert {amount} {source} to {target}. Then tell me the weather in {city} in {unit}."
            return TaskDraft(family, prompt, params, ["convert_currency", "get_weather"], [source, target, city])
        if family == "weather_many":
            chosen = rng.sample(cities, rng.randint(2, 4))
            params.update(cities=chosen, unit=unit)
            prompt = f"What is the temperature in {', '.join(chosen[:-1])} and {chosen[-1]} in {unit}?"
            return TaskDraft(family, prompt, params, ["get_weather"], chosen)
        if family == "convert_many":
            amount, source = rng.randint(10, 900), rng.choice(currencies)
            targets = rng.sample([c for c in currencies if c != source], rng.randint(2, 3))
            params.update(amount=amount, source=source, targets=targets)
            prompt = f"Convert {amount} {source} into each of {', '.join(targets)}."
            return TaskDraft(family, prompt, params, ["convert_currency"], [source, *targets])
        if family == "capital_weather":
            country = rng.choice(countries)
            params.update(country=country, unit=unit)
            prompt = rng.choice(["What is the weather in the capital of {c}, in {u}?", "How warm is it in {c}'s capital city ({u})?"]).format(c=country, u=unit)
            return TaskDraft(family, prompt, params, ["get_country_info", "get_weather"], [country, COUNTRIES[country][0]])
        if family == "local_currency":
            country, amount = rng.choice(countries), rng.randint(10, 900)
            target = rng.choice([c for c in currencies if c != COUNTRIES[country][1]])
            params.update(country=country, amount=amount, target=target)
            prompt = f"How much is {amount} in the local currency of {country} worth in {target}?"
            return TaskDraft(family, prompt, params, ["get_country_info", "convert_currency"], [country, target])
        if family == "meeting_weather":
            date = rng.choice(DATES)
            params.update(date=date, unit=unit)
            prompt = f"Look at my calendar for {date}. What is the weather ({unit}) in the city of my first meeting that day? If I have no meetings, say so."
            return TaskDraft(family, prompt, params, ["list_events", "get_weather"], [date])
        raise ValueError(f"apis: no task family {family!r}")

    # --- oracle and verifier -----------------------------------------------------------------------------

    def _solve(self, task: Task) -> Generator[OracleStep, list[Any], Answer]:
        p, family = task.params, task.params["family"]
        unit = p.get("unit")
        if family in ("weather", "weather_many"):
            reports = yield OracleStep(f"I need the weather for {len(p['cities'])} cit{'y' if len(p['cities']) == 1 else 'ies'}.", [("get_weather", {"city": c, "unit": unit}) for c in p["cities"]])
            return Answer("; ".join(f"{r['city']}: {r['temperature']} degrees {unit}, {r['condition']}" for r in reports))
        if family in ("convert", "convert_many"):
            targets = p.get("targets") or [p["target"]]
            results = yield OracleStep("I will convert with the currency tool.", [("convert_currency", {"amount": p["amount"], "source": p["source"], "target": t}) for t in targets])
            return Answer("; ".join(f"{r['amount']} {r['source']} is {r['result']} {r['target']}" for r in results))
        if family == "capital":
            [info] = yield OracleStep("I will look the country up.", [("get_country_info", {"country": p["country"]})])
            return Answer(f"The capital of {info['country']} is {info['capital']}.")
        if family == "convert_then_weather":
            [fx] = yield OracleStep("First the conversion.", [("convert_currency", {"amount": p["amount"], "source": p["source"], "target": p["target"]})])
            [w] = yield OracleStep("Now the weather.", [("get_weather", {"city": p["cities"][0], "unit": unit})])
            return Answer(f"{fx['amount']} {fx['source']} is {fx['result']} {fx['target']}. {w['city']}: {w['temperature']} degrees {unit}, {w['condition']}.")
        if family == "capital_weather":
            [info] = yield OracleStep("I need the capital first.", [("get_country_info", {"country": p["country"]})])
            [w] = yield OracleStep(f"The capital is {info['capital']}; now its weather.", [("get_weather", {"city": info["capital"], "unit": unit})])
            return Answer(f"The capital of {p['country']} is {w['city']}: {w['temperature']} degrees {unit}, {w['condition']}.")
        if family == "local_currency":
            [info] = yield OracleStep("I need the country's currency first.", [("get_country_info", {"country": p["country"]})])
            [fx] = yield OracleStep(f"{p['country']} uses {info['currency']}; now convert.", [("convert_currency", {"amount": p["amount"], "source": info["currency"], "target": p["target"]})])
            return Answer(f"{fx['amount']} {fx['source']} is {fx['result']} {fx['target']}.")
        if family == "meeting_weather":
            [events] = yield OracleStep("I will check the calendar for that day.", [("list_events", {"date": p["date"]})])
            if not events:
                return Answer(f"You have no meetings on {p['date']}.")
            first = events[0]
            [w] = yield OracleStep(f"The first meeting is in {first['city']}; now its weather.", [("get_weather", {"city": first["city"], "unit": unit})])
            return Answer(f"Your first meeting on {p['date']} ({first['title']} with {first['with']} at {first['time']}) is in {w['city']}: {w['temperature']} degrees {unit}, {w['condition']}.")
        raise ValueError(f"apis: no oracle for family {family!r}")

    def _expected_values(self) -> list[Any]:
        """The facts a correct final answer must state, computed from the world."""
        p, family = self.task.params, self.task.params["family"]
        unit = p.get("unit", "celsius")

        def temperature(city: str) -> int:
            c = self.weather[city]["temperature_c"]
            return c if unit == "celsius" else round(c * 9 / 5 + 32)

        def converted(amount: float, source: str, target: str) -> float:
            return round(amount * round(self.usd_rates[target] / self.usd_rates[source], 6), 2)

        if family in ("weather", "weather_many"):
            return [temperature(c) for c in p["cities"]]
        if family in ("convert", "convert_many"):
            return [converted(p["amount"], p["source"], t) for t in (p.get("targets") or [p["target"]])]
        if family == "capital":
            return [COUNTRIES[p["country"]][0]]
        if family == "convert_then_weather":
            return [converted(p["amount"], p["source"], p["target"]), temperature(p["cities"][0])]
        if family == "capital_weather":
            return [temperature(COUNTRIES[p["country"]][0])]
        if family == "local_currency":
            return [converted(p["amount"], COUNTRIES[p["country"]][1], p["target"])]
        if family == "meeting_weather":
            events = [e for e in self.events if e["date"] == p["date"]]
            return [temperature(events[0]["city"])] if events else ["no meetings"]
        raise ValueError(f"apis: no verifier for family {family!r}")

    def _verify(self, answer: str | None) -> float:
        return share_mentioned(answer, self._expected_values())
