"""How the home folder's owner asks for each task: request templates per task family, and the frames around
a request (greetings, thanks) that every family shares, so each family has many phrasings in both splits.
A task's prompt decides its split (by a hash), so editing a phrasing moves tasks between train and test.

A request's fields are filled with the paths as the user writes them (absolute, from ~ or relative to the
home folder): see ``families._display``.
"""

from environments.filesystem.world import HOME

# The frame is the family's phrasing proper: the last choice of a draw, filled with the request.
FRAMES = (
    "{request}", "{request}", "{request}", "Hi! {request}", "{request} Thanks.", "{request} Please be precise.",
    "I need help with my files. {request}", "Quick task: {request}",
)
# How a request names the whole home folder.
HOME_NAMES = ("my home folder", HOME, "~")
TMP_HOME_NAMES = (HOME, "~", "my home folder", HOME + "/")
# How a facts_many request names each fact.
FACT_WORDS = {"owner": "the owner named in {p}", "deadline": "the deadline in {p}", "version": "the __version__ of {p}", "author": "the author of {p}", "port": "the port set in {p}"}

REQUESTS: dict[str, tuple[str, ...] | dict[str, tuple[str, ...]]] = {
    "find_keyword": (
        "Which file under {d} contains the word '{k}'?", "One of my files in {d} mentions {k}. Which file is it?",
        "Find the file in {d} that talks about {k} and give me its path.",
    ),
    "count_level": ("How many lines in {p} contain {l}?", "Count the {l} lines in {p}.", "How many {l} entries does {p} have?"),
    "csv_top": ("Which region has the {m} units in {p}?", "Look at {p}: which region has the {m} number of units?"),
    "count_files": ("How many files are in {d}?", "Count the files directly inside {d}.", "How many files does the folder {d} hold?"),
    "rename_file": (
        "Rename {s} to {d}.", "Please rename the file {s} to {n}, keeping it in the same folder.", "Change the name of {s} to {n} (same directory).",
    ),
    "busiest_log": (
        "Which log file in {d} has the most ERROR lines, and how many {l} lines does that file have?",
        "Find the log in {d} with the most ERROR lines. How many {l} lines are in it?",
        "Among the logs in {d}, take the one with the most ERROR lines: which is it, and how many of its lines are {l}?",
    ),
    "latest_report": (
        "Who wrote the most recent report in {d}, and how many incidents does it list?",
        "Open the latest report in {d} (the file names carry the date). Who is its author and how many incidents were there?",
        "Find the newest report in {d}: I need its author and its number of incidents.",
    ),
    "error_summary": (
        "Count all {l} lines across the logs in {d} and write just that number to {o}.",
        "Save the total number of {l} lines in {d} to {o} (the file should contain only the number).",
    ),
    "clean_tmp": (
        "Delete every .tmp file under {h}.", "Find all temporary files (*.tmp) anywhere in {h} and delete them.",
        "Clean up: remove all files ending in .tmp anywhere under {h}.", "There are stray .tmp files somewhere in {h}. Delete all of them and nothing else.",
        "Get rid of every temporary file (name ending in .tmp) under {h}, wherever it is.",
    ),
    "archive_error_logs": (
        "Move every log in {d} that has at least {t} ERROR lines into {a}.",
        "Archive the noisy logs: any file in {d} with {t} or more ERROR lines goes to {a}.",
    ),
    "facts_many": ("Tell me {a}.", "I need a few facts: {a}.", "Please look up {a}."),
    "create_many": ("Create {i}.", "Please make these files: {i}.", "Write {i} (exactly that text in each)."),
    "move_many": ("Move {f} into {a}.", "Please put {f} in the archive folder ({a})."),
    "keyword_field": {  # per field asked for
        "owner": ("Who owns the note in {d} that mentions {k}?", "Find the document in {d} that mentions {k} and tell me its {w}."),
        "deadline": ("What deadline is given in the note in {d} that talks about {k}?", "Find the document in {d} that mentions {k} and tell me its {w}."),
    },
    "config_count": (
        "My service's settings are in {c}. How many {l} lines are in the log file it writes to?",
        "Check which log file {c} points to (log_file) and count the {l} lines in it.",
        "The log_file setting in {c} names a log. How many of that log's lines contain {l}?",
    ),
    "keyword_archive": (
        "Find the note in {d} that mentions {k} and move it into {a}.", "Archive the document about {k}: move it from {d} to {a}.",
    ),
}
