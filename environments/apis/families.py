"""The web APIs' task families: for each, how a task is drawn, how the expert solves it, and the facts a correct
answer states (``expected(world, params)``, checked by ``ApisEnv._score``)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from environments.apis.phrasings import PHRASINGS
from environments.apis.world import COUNTRIES, DATES, Pools, World, rate, temperature
from environments.base import Answer, OracleStep
from environments.families import Drawn, Oracle, TaskFamily, Wording


def _converted(world: World, amount: float, source: str, target: str) -> float:
    return round(amount * rate(world, source, target), 2)


# --- the weather in one or more cities ---------------------------------------------------------------------

def draw_weather(rng: random.Random, pools: Pools) -> Drawn:
    city = rng.choice(pools.cities)
    return {"cities": [city], "unit": pools.unit}, [city], Wording({"city": city})


def draw_weather_many(rng: random.Random, pools: Pools) -> Drawn:
    chosen = rng.sample(pools.cities, rng.randint(2, 4))
    return {"cities": chosen, "unit": pools.unit}, chosen, Wording({"listed": f"{', '.join(chosen[:-1])} and {chosen[-1]}"})


def solve_weather(env: Any, p: dict) -> Oracle:
    unit = p["unit"]
    reports = yield OracleStep(f"I need the weather for {len(p['cities'])} cit{'y' if len(p['cities']) == 1 else 'ies'}.", [("get_weather", {"city": c, "unit": unit}) for c in p["cities"]])
    return Answer("; ".join(f"{r['city']}: {r['temperature']} degrees {unit}, {r['condition']}" for r in reports))


def expect_weather(world: World, p: dict) -> list[Any]:
    return [temperature(world, c, p["unit"]) for c in p["cities"]]


# --- converting an amount into one or more currencies ------------------------------------------------------

def draw_convert(rng: random.Random, pools: Pools) -> Drawn:
    amount = rng.choice([rng.randint(5, 999), round(rng.uniform(1, 500), 2)])
    source, target = rng.sample(pools.currencies, 2)
    return {"amount": amount, "source": source, "target": target}, [source, target]


def draw_convert_many(rng: random.Random, pools: Pools) -> Drawn:
    amount, source = rng.randint(10, 900), rng.choice(pools.currencies)
    targets = rng.sample([c for c in pools.currencies if c != source], rng.randint(2, 3))
    return {"amount": amount, "source": source, "targets": targets}, [source, *targets], Wording({"listed": ", ".join(targets)})


def _targets(p: dict) -> list[str]:
    return p.get("targets") or [p["target"]]


def solve_convert(env: Any, p: dict) -> Oracle:
    results = yield OracleStep("I will convert with the currency tool.", [("convert_currency", {"amount": p["amount"], "source": p["source"], "target": t}) for t in _targets(p)])
    return Answer("; ".join(f"{r['amount']} {r['source']} is {r['result']} {r['target']}" for r in results))


def expect_convert(world: World, p: dict) -> list[Any]:
    return [_converted(world, p["amount"], p["source"], t) for t in _targets(p)]


# --- a country's capital -----------------------------------------------------------------------------------

def draw_capital(rng: random.Random, pools: Pools) -> Drawn:
    country = rng.choice(pools.countries)
    return {"country": country}, [country]


def solve_capital(env: Any, p: dict) -> Oracle:
    [info] = yield OracleStep("I will look the country up.", [("get_country_info", {"country": p["country"]})])
    return Answer(f"The capital of {info['country']} is {info['capital']}.")


def expect_capital(world: World, p: dict) -> list[Any]:
    return [COUNTRIES[p["country"]][0]]


# --- multi_step: two independent questions in a row --------------------------------------------------------

def draw_convert_then_weather(rng: random.Random, pools: Pools) -> Drawn:
    amount, (source, target), city = rng.randint(10, 900), rng.sample(pools.currencies, 2), rng.choice(pools.cities)
    return {"amount": amount, "source": source, "target": target, "cities": [city], "unit": pools.unit}, [source, target, city], Wording({"city": city})


def solve_convert_then_weather(env: Any, p: dict) -> Oracle:
    unit = p["unit"]
    [fx] = yield OracleStep("First the conversion.", [("convert_currency", {"amount": p["amount"], "source": p["source"], "target": p["target"]})])
    [w] = yield OracleStep("Now the weather.", [("get_weather", {"city": p["cities"][0], "unit": unit})])
    return Answer(f"{fx['amount']} {fx['source']} is {fx['result']} {fx['target']}. {w['city']}: {w['temperature']} degrees {unit}, {w['condition']}.")


def expect_convert_then_weather(world: World, p: dict) -> list[Any]:
    return [_converted(world, p["amount"], p["source"], p["target"]), temperature(world, p["cities"][0], p["unit"])]


# --- nested: the second call needs what the first returned -------------------------------------------------

def draw_capital_weather(rng: random.Random, pools: Pools) -> Drawn:
    country = rng.choice(pools.countries)
    return {"country": country, "unit": pools.unit}, [country, COUNTRIES[country][0]]


def solve_capital_weather(env: Any, p: dict) -> Oracle:
    unit = p["unit"]
    [info] = yield OracleStep("I need the capital first.", [("get_country_info", {"country": p["country"]})])
    [w] = yield OracleStep(f"The capital is {info['capital']}; now its weather.", [("get_weather", {"city": info["capital"], "unit": unit})])
    return Answer(f"The capital of {p['country']} is {w['city']}: {w['temperature']} degrees {unit}, {w['condition']}.")


def expect_capital_weather(world: World, p: dict) -> list[Any]:
    return [temperature(world, COUNTRIES[p["country"]][0], p["unit"])]


def draw_local_currency(rng: random.Random, pools: Pools) -> Drawn:
    country, amount = rng.choice(pools.countries), rng.randint(10, 900)
    target = rng.choice([c for c in pools.currencies if c != COUNTRIES[country][1]])
    return {"country": country, "amount": amount, "target": target}, [country, target]


def solve_local_currency(env: Any, p: dict) -> Oracle:
    [info] = yield OracleStep("I need the country's currency first.", [("get_country_info", {"country": p["country"]})])
    [fx] = yield OracleStep(f"{p['country']} uses {info['currency']}; now convert.", [("convert_currency", {"amount": p["amount"], "source": info["currency"], "target": p["target"]})])
    return Answer(f"{fx['amount']} {fx['source']} is {fx['result']} {fx['target']}.")


def expect_local_currency(world: World, p: dict) -> list[Any]:
    return [_converted(world, p["amount"], COUNTRIES[p["country"]][1], p["target"])]


def draw_meeting_weather(rng: random.Random, pools: Pools) -> Drawn:
    date = rng.choice(DATES)
    return {"date": date, "unit": pools.unit}, [date]


def solve_meeting_weather(env: Any, p: dict) -> Oracle:
    unit = p["unit"]
    [events] = yield OracleStep("I will check the calendar for that day.", [("list_events", {"date": p["date"]})])
    if not events:
        return Answer(f"You have no meetings on {p['date']}.")
    first = events[0]
    [w] = yield OracleStep(f"The first meeting is in {first['city']}; now its weather.", [("get_weather", {"city": first["city"], "unit": unit})])
    return Answer(f"Your first meeting on {p['date']} ({first['title']} with {first['with']} at {first['time']}) is in {w['city']}: {w['temperature']} degrees {unit}, {w['condition']}.")


def expect_meeting_weather(world: World, p: dict) -> list[Any]:
    events = [e for e in world.events if e["date"] == p["date"]]
    return [temperature(world, events[0]["city"], p["unit"])] if events else ["no meetings"]


# --- the registry: the order is the draw order within each difficulty --------------------------------------

def _family(name: str, difficulties: tuple[str, ...], tools: tuple[str, ...], draw: Callable[..., Drawn], solve: Callable[..., Oracle],
            expected: Callable[[World, dict], list[Any]], fail_first: str | None = None) -> TaskFamily:
    return TaskFamily(name, difficulties, PHRASINGS[name], tools, draw, solve, expected, fail_first=fail_first)


FAMILIES = (
    _family("weather", ("single", "recovery"), ("get_weather",), draw_weather, solve_weather, expect_weather, fail_first="get_weather"),
    _family("convert", ("single",), ("convert_currency",), draw_convert, solve_convert, expect_convert),
    _family("capital", ("single",), ("get_country_info",), draw_capital, solve_capital, expect_capital),
    _family("convert_then_weather", ("multi_step",), ("convert_currency", "get_weather"), draw_convert_then_weather, solve_convert_then_weather, expect_convert_then_weather),
    _family("weather_many", ("parallel",), ("get_weather",), draw_weather_many, solve_weather, expect_weather),
    _family("convert_many", ("parallel",), ("convert_currency",), draw_convert_many, solve_convert, expect_convert),
    _family("capital_weather", ("nested", "recovery"), ("get_country_info", "get_weather"), draw_capital_weather, solve_capital_weather, expect_capital_weather,
            fail_first="get_country_info"),
    _family("local_currency", ("nested",), ("get_country_info", "convert_currency"), draw_local_currency, solve_local_currency, expect_local_currency),
    _family("meeting_weather", ("nested",), ("list_events", "get_weather"), draw_meeting_weather, solve_meeting_weather, expect_meeting_weather),
)
