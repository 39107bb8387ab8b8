"""Small, deterministic generators of Hermes-format conversations the project makes itself.

They give the offline default real data in every category of the Hermes 3 mix (tool calling,
reasoning, instruction following, code, chat) without any download: the tiny model's tokenizer is
trained on them, and the data mix uses them where a recipe asks for ``kind: synthetic``. Each
generator takes a ``random.Random`` and returns one example: ``{"messages", "tools", "category"}``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

from transformers.utils import get_json_schema

CITIES = ["Paris", "Lagos", "Osaka", "Lima", "Oslo", "Austin", "Pune", "Quito", "Perth", "Cairo", "Hanoi", "Bergen"]
CURRENCIES = ["USD", "EUR", "JPY", "GBP", "INR", "BRL", "CAD", "CHF"]
NAMES = ["Ada", "Bo", "Chen", "Dara", "Emil", "Femi", "Gia", "Hugo", "Ines", "Jun", "Kofi", "Lena"]
OBJECTS = ["apples", "books", "coins", "pens", "stamps", "cups", "shells", "tickets"]
CONDITIONS = ["sunny", "cloudy", "rainy", "windy", "snowy", "foggy"]


# Demo tools: real typed functions so their schemas come from get_json_schema like every tool here.
def get_weather(city: str, unit: str = "celsius") -> dict:
    """Get the current weather in a city.

    Args:
        city: The city name, e.g. Paris.
        unit: The temperature unit, celsius or fahrenheit.
    """
    rng = random.Random(f"weather:{city}:{unit}")
    temperature = rng.randint(-5, 35)
    if unit == "fahrenheit":
        temperature = round(temperature * 9 / 5 + 32)
    return {"city": city, "temperature": temperature, "unit": unit, "condition": rng.choice(CONDITIONS)}


def convert_currency(amount: float, source: str, target: str) -> dict:
    """Convert an amount of money from one currency to another.

    Args:
        amount: The amount to convert.
        source: The ISO code of the currency to convert from.
        target: The ISO code of the currency to convert to.
    """
    rate = round(random.Random(f"fx:{source}:{target}").uniform(0.05, 20.0), 4)
    return {"amount": amount, "source": source, "target": target, "rate": rate, "result": round(amount * rate, 2)}


def calculate(expression: str) -> dict:
    """Evaluate an arithmetic expression with + - * / and parentheses.

    Args:
        expression: The expression, e.g. (3 + 4) * 2.
    """
    if set(expression) - set("0123456789+-*/(). ") or "**" in expression or len(expression) > 200:
        return {"error": "only digits, + - * / ( ) are allowed, in at most 200 characters"}
    try:
        return {"expression": expression, "result": eval(expression, {"__builtins__": {}}, {})}  # noqa: S307 - charset checked above
    except Exception as exc:  # division by zero, bad syntax: a tool error, not a crash
        return {"error": f"{type(exc).__name__}: {exc}"}


DEMO_TOOLS: list[Callable[..., Any]] = [get_weather, convert_currency, calculate]
DEMO_TOOL_SCHEMAS = [get_json_schema(f) for f in DEMO_TOOLS]


def _call(name: str, arguments: dict) -> dict:
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


def _tool_result(name: str, result: Any) -> dict:
    # Structured content renders as nested JSON inside <tool_response> (no escaped string), which is
    # what the model reads best; plain strings work too.
    return {"role": "tool", "name": name, "content": result}


def tool_call_example(rng: random.Random) -> dict:
    """Single, parallel or chained calls to the demo tools, with short reasoning and a final answer."""
    kind = rng.choice(["weather", "parallel_weather", "currency", "calculate"])
    tools = rng.sample(DEMO_TOOL_SCHEMAS, k=rng.randint(1, len(DEMO_TOOL_SCHEMAS)))
    if kind == "weather" or kind == "parallel_weather":
        cities = rng.sample(CITIES, 1 if kind == "weather" else rng.randint(2, 3))
        unit = rng.choice(["celsius", "fahrenheit"])
        user = f"What is the weather in {' and '.join(cities)} in {unit}?"
        calls = [_call("get_weather", {"city": c, "unit": unit}) for c in cities]
        results = [get_weather(c, unit) for c in cities]
        answer = "; ".join(f"{r['city']}: {r['temperature']} degrees {unit}, {r['condition']}" for r in results)
        names = ["get_weather"] * len(cities)
    elif kind == "currency":
        amount = rng.randint(1, 500)
        source, target = rng.sample(CURRENCIES, 2)
        user = f"How much is {amount} {source} in {target}?"
        calls = [_call("convert_currency", {"amount": amount, "source": source, "target": target})]
        results = [convert_currency(amount, source, target)]
        answer = f"{amount} {source} is {results[0]['result']} {target}."
        names = ["convert_currency"]
    else:
        a, b, c = rng.randint(2, 99), rng.randint(2, 99), rng.randint(2, 9)
        expression = f"({a} + {b}) * {c}"
        user = f"Compute {expression} for me."
        calls = [_call("calculate", {"expression": expression})]
        results = [calculate(expression)]
        answer = f"{expression} = {results[0]['result']}."
        names = ["calculate"]
    for name in names:  # the task's tools must be offered
        schema = next(s for s in DEMO_TOOL_SCHEMAS if s["function"]["name"] == name)
        if schema not in tools:
            tools.append(schema)
    messages = [
        {"role": "user", "content": user},
        {
            "role": "assistant",
            "reasoning_content": f"I need {', '.join(sorted(set(names)))} for this.",
            "content": "",
            "tool_calls": calls,
        },
        *[_tool_result(n, r) for n, r in zip(names, results)],
        {"role": "assistant", "content": answer},
    ]
    return {"messages": messages, "tools": tools, "category": "tool_call"}


def reasoning_example(rng: random.Random) -> dict:
    """A two-step word problem solved in ``<think>`` before the answer."""
    name, other = rng.sample(NAMES, 2)
    thing = rng.choice(OBJECTS)
    have, given, bought = rng.randint(5, 60), rng.randint(1, 5), rng.randint(2, 30)
    given = min(given, have)
    total = have - given + bought
    question = f"{name} has {have} {thing}, gives {given} to {other} and then buys {bought} more. How many {thing} does {name} have now?"
    think = f"Start with {have}. After giving {given}: {have} - {given} = {have - given}. After buying {bought}: {have - given} + {bought} = {total}."
    return {
        "messages": [
            {"role": "user", "content": question},
            {"role": "assistant", "reasoning_content": think, "content": f"{name} has {total} {thing} now."},
        ],
        "tools": [],
        "category": "reasoning",
    }


def instruction_example(rng: random.Random) -> dict:
    """A short, checkable instruction (case, reversal, counting, listing)."""
    word = rng.choice(CITIES + NAMES).lower()
    kind = rng.randrange(4)
    if kind == 0:
        prompt, answer = f"Write the word '{word}' in capital letters.", word.upper()
    elif kind == 1:
        prompt, answer = f"Spell '{word}' backwards.", word[::-1]
    elif kind == 2:
        prompt, answer = f"How many letters are in '{word}'? Answer with a number only.", str(len(word))
    else:
        items = rng.sample(OBJECTS, 3)
        prompt, answer = f"List three things one can collect, one per line.", "\n".join(f"- {i}" for i in items)
    system = rng.choice([None, "You are a precise assistant. Follow the instruction exactly."])
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": prompt},
        {"role": "assistant", "content": answer},
    ]
    return {"messages": messages, "tools": [], "category": "instruction"}


_CODE_TASKS = [
    ("returns the sum of a list of numbers", "def total(xs):\n    return sum(xs)"),
    ("returns the largest of two numbers", "def larger(a, b):\n    return a if a >= b else b"),
    ("reverses a string", "def reverse(s):\n    return s[::-1]"),
    ("counts the vowels in a string", "def vowels(s):\n    return sum(ch in 'aeiou' for ch in s.lower())"),
    ("returns the squares of 1..n", "def squares(n):\n    return [i * i for i in range(1, n + 1)]"),
    ("checks whether a number is even", "def is_even(n):\n    return n % 2 == 0"),
]


def code_example(rng: random.Random) -> dict:
    """A tiny Python function, asked for and written in a fenced block."""
    what, code = rng.choice(_CODE_TASKS)
    return {
        "messages": [
            {"role": "user", "content": f"Write a Python function that {what}."},
            {"role": "assistant", "content": f"```python\n{code}\n```"},
        ],
        "tools": [],
        "category": "code",
    }


_CHAT = [
    ("Hi!", "Hello! How can I help you today?"),
    ("Thanks for your help.", "You're welcome. Ask me anything else any time."),
    ("How are you?", "I'm doing well, thank you. What can I do for you?"),
    ("Good morning", "Good morning! What would you like to do today?"),
    ("Can you tell me a fun fact?", "Octopuses have three hearts and blue blood."),
]


def chat_example(rng: random.Random) -> dict:
    """General chit-chat."""
    user, answer = rng.choice(_CHAT)
    return {
        "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}],
        "tools": [],
        "category": "chat",
    }


GENERATORS: dict[str, Callable[[random.Random], dict]] = {
    "tool_call": tool_call_example,
    "reasoning": reasoning_example,
    "instruction": instruction_example,
    "code": code_example,
    "chat": chat_example,
}


def generate(category: str, n: int, seed: int) -> Iterator[dict]:
    """``n`` examples of one category, the same for the same seed."""
    if category not in GENERATORS:
        raise ValueError(f"unknown synthetic category {category!r}; known: {', '.join(GENERATORS)}")
    rng = random.Random(f"{category}:{seed}")
    for _ in range(n):
        yield GENERATORS[category](rng)
