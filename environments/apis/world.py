"""The web APIs' world: countries with their capitals and currencies, the cities with weather, and a calendar;
one seeded world of weather reports, exchange rates and events, and the conversions tools and answers share."""

from __future__ import annotations

import random
from typing import Any, NamedTuple

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
UNITS = ["celsius", "fahrenheit"]


class Pools(NamedTuple):
    """What a task is drawn from: the cities, countries and currencies it may name (held-out ones for novel
    test tasks), and the temperature unit drawn for it."""

    cities: list[str]
    countries: list[str]
    currencies: list[str]
    unit: str


class World(NamedTuple):
    weather: dict[str, dict[str, Any]]  # city -> temperature_c, condition, humidity
    usd_rates: dict[str, float]  # currency -> units per US dollar
    events: list[dict[str, str]]  # the calendar: date, time, title, with, city; in time order


def _build(seed: int) -> World:
    rng = random.Random(seed)
    weather = {city: {"temperature_c": rng.randint(-8, 36), "condition": rng.choice(CONDITIONS), "humidity": rng.randint(20, 95)} for city in CITIES}
    usd_rates = {code: round(rng.uniform(0.2, 5.0) * (100 if code in ("JPY", "KRW", "CLP", "COP", "IDR", "VND", "HUF") else 1), 4) for code in CURRENCIES}
    usd_rates["USD"] = 1.0
    events = []
    for date in rng.sample(DATES, 6):
        for _ in range(rng.randint(1, 2)):
            events.append({"date": date, "time": f"{rng.randint(8, 17):02d}:{rng.choice(['00', '30'])}", "title": rng.choice(TOPICS), "with": rng.choice(PEOPLE), "city": rng.choice(CITIES)})
    events.sort(key=lambda e: (e["date"], e["time"]))
    return World(weather, usd_rates, events)


def temperature(world: World, city: str, unit: str) -> int:
    c = world.weather[city]["temperature_c"]
    return c if unit == "celsius" else round(c * 9 / 5 + 32)


def rate(world: World, source: str, target: str) -> float:
    return round(world.usd_rates[target] / world.usd_rates[source], 6)
