"""How the shop's users ask for each task: prompt templates per task family, filled with the values the family
draws and its words (``item`` is a product as a user asks for it: 'pair of red shoes', 'red mug'). The phrasing
a task gets decides its split (by a hash of the prompt), so editing one moves tasks between train and test."""

PHRASINGS: dict[str, tuple[str, ...] | dict[str, tuple[str, ...]]] = {
    "cheapest": (
        "What is the {rank} {item}?",
        "Which {item} is the {rank} in the shop? Give me its price.",
        "Find the {rank} {item} you sell and tell me what it costs.",
    ),
    "count": (
        "How many {color} {category} do you have for under ${budget}?",
        "Count the {color} {category} that cost less than ${budget}.",
        "How many {category} in {color} are priced below ${budget}?",
    ),
    "top_rated": (
        "Which {item} has the best rating?",
        "What is the highest-rated product among the {category} made by {brand}?",
        "Of all {brand} {category}, which one do customers rate best?",
    ),
    "buy_spec": (
        "Buy {item} for under ${budget}.",
        "Please order {item}; my budget is ${budget}.",
        "I need {item}, and I can spend at most ${budget}. Place the order.",
    ),
    "best_detail": (
        "Among the {color} {category} under ${budget}, which one {best}?",
        "I want {color} {category} for less than ${budget}. Which of them {best}?",
        "Look at the {color} {category} costing under ${budget} and tell me which {best}.",
    ),
    "compare_ids": (
        "Which of the items {items} {best}?",
        "Compare {items}: which one {best}?",
        "I am choosing between {items}. Tell me which {best}.",
    ),
    "cheapest_each": (
        "What is the cheapest {item} in each of these categories: {listed}?",
        "For each of {listed}, tell me the cheapest {item} and its price.",
        "Find me the lowest-priced {item} among the {listed}, one per category.",
    ),
    "detail_of_top": {  # per attribute asked for; half the users also ask for the product's name ({name_it})
        "material": ("What is the {rank} {item} made of?{name_it}",),
        "weight_g": ("How much does the {rank} {item} weigh?{name_it}",),
        "warranty_y": ("How many years of warranty does the {rank} {item} come with?{name_it}",),
        "capacity_l": ("How many litres does the {rank} {item} hold?{name_it}",),
        "capacity_ml": ("How many ml does the {rank} {item} hold?{name_it}",),
        "battery_h": ("How many hours of battery does the {rank} {item} have?{name_it}",),
    },
    "buy_cheapest": (
        "Buy the cheapest {item}.",
        "Order me the cheapest {item} you have.",
        "Please purchase the least expensive {item} in the shop, just one.",
    ),
}
NAME_IT = " Please name the product too."
