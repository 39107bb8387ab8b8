"""How users ask for each task: prompt templates per task family, filled with the values the family draws and
its words (``city`` for a single city, ``listed`` for several as prose). The phrasing a task gets decides its
split (by a hash of the prompt), so editing one moves tasks between train and test."""

PHRASINGS: dict[str, tuple[str, ...]] = {
    "weather": (
        "What is the weather in {city} right now, in {unit}?",
        "How warm is it in {city}? Give me {unit}.",
        "Tell me the current temperature in {city} ({unit}).",
    ),
    "convert": (
        "How much is {amount} {source} in {target}?",
        "Convert {amount} {source} to {target}, please.",
        "I have {amount} {source}. What is that in {target}?",
    ),
    "capital": (
        "What is the capital of {country}?",
        "Which city is the capital of {country}?",
    ),
    "convert_then_weather": ("First convert {amount} {source} to {target}. Then tell me the weather in {city} in {unit}.",),
    "weather_many": ("What is the temperature in {listed} in {unit}?",),
    "convert_many": ("Convert {amount} {source} into each of {listed}.",),
    "capital_weather": (
        "What is the weather in the capital of {country}, in {unit}?",
        "How warm is it in {country}'s capital city ({unit})?",
    ),
    "local_currency": ("How much is {amount} in the local currency of {country} worth in {target}?",),
    "meeting_weather": ("Look at my calendar for {date}. What is the weather ({unit}) in the city of my first meeting that day? If I have no meetings, say so.",),
}
