"""How users ask each question about the graph: prompt templates per task family, filled with the drawn
values (``entities`` is the list of the question's entities; ``names`` writes several of them as prose).
A task's prompt decides its split (by a hash), so editing a phrasing moves tasks between train and test."""

PHRASINGS: dict[str, tuple[str, ...] | dict[tuple[str, str], tuple[str, ...]]] = {
    "hq": ("Where is {entities[0]} headquartered?", "In which city is {entities[0]} located?", "Which city is {entities[0]} based in?"),
    "employer": ("Which company does {entities[0]} work for?", "Who is {entities[0]}'s employer?", "Where does {entities[0]} work?"),
    "director": ("Who directed {entities[0]}?", "Who is the director of the film {entities[0]}?", "Name the director of {entities[0]}."),
    "attribute": {  # per (entity type, attribute): the attributes a question may ask about
        ("company", "founded"): ("In which year was {entities[0]} founded?", "When was {entities[0]} founded?"),
        ("city", "population"): ("What is the population of {entities[0]}?", "How many people live in {entities[0]}?"),
        ("university", "founded"): ("When was {entities[0]} founded?", "In what year was {entities[0]} established?"),
        ("university", "students"): ("How many students does {entities[0]} have?",),
        ("film", "year"): ("In which year was {entities[0]} released?", "When did the film {entities[0]} come out?"),
        ("person", "born"): ("In what year was {entities[0]} born?", "When was {entities[0]} born?"),
        ("country", "population"): ("What is the population of {entities[0]}?",),
    },
    "employees": ("Who works at {entities[0]}?", "List the people employed by {entities[0]}.", "Which people work for {entities[0]}?"),
    "connection": ("What is the connection between {entities[0]} and {entities[1]}?", "How is {entities[0]} related to {entities[1]}?", "What links {entities[0]} to {entities[1]}?"),
    "search_director": (
        "Who directed the film with '{word}' in its title?", "I only remember that a film's title contains the word '{word}'. Who directed it?",
        "There is a film called something with '{word}'. Who is its director?",
    ),
    "oldest_employee": ("Who is the {extreme} person working at {entities[0]}?", "Among the employees of {entities[0]}, who is the {extreme}?", "Find the {extreme} employee of {entities[0]}."),
    "latest_film_director": (
        "{entities[0]} acted in several films. Who directed the most recent one?", "Who directed the latest film that {entities[0]} appeared in?",
        "Find the newest film {entities[0]} acted in and tell me its director.",
    ),
    "hq_many": ("Where are {names} headquartered?", "In which cities are {names} located?", "Tell me the home city of each of these companies: {names}."),
    "birthplaces": ("In which cities were {names} born?", "Where were {names} born?", "Tell me the birthplace of each of {names}."),
    "founding_years": ("When were {names} founded?", "In which years were {names} founded?", "Give me the founding year of each of {names}."),
    "shared_alumni": ("How many employees of {entities[0]} studied at {university}? Name them.", "Which people working at {entities[0]} are alumni of {university}, and how many are there?"),
    "founder_school": (
        "Which university did the founder of {entities[0]} attend?", "Where did the person who founded {entities[0]} study?",
        "The founder of {entities[0]} studied at which university?",
    ),
    "director_birthplace": (
        "In which city was the director of {entities[0]} born?", "Where was the person who directed {entities[0]} born?",
        "What is the birthplace of the director of {entities[0]}?",
    ),
    "employer_city": (
        "In which city is the company {entities[0]} works for headquartered?", "{entities[0]}'s employer is based in which city?",
        "Which city is home to the company where {entities[0]} works?",
    ),
    "studio_country": (
        "In which country is the studio that produced {entities[0]} based?", "The film {entities[0]} was produced by a studio in which country?",
        "Which country is the production company of {entities[0]} located in?",
    ),
    "spouse_employer": ("Which company does the spouse of {entities[0]} work for?", "Where does {entities[0]}'s spouse work?", "{entities[0]} is married. Who employs their spouse?"),
}
