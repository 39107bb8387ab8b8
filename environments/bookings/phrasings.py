"""How the desk's customers ask for each task: prompt templates per task family, filled with the values the
family draws and its words (a flight as its route, day and time; a passenger by name; seats as '2 seats').
The phrasing a task gets decides its split (by a hash of the prompt), so editing one moves tasks between
train and test."""

CHANGE = (  # a change that is possible, and one the flight has too few seats for, are asked for alike
    "Move {who}'s reservation from {origin} to {destination} to the {time} flight on {date}.",
    "Please change {who}'s {origin}-{destination} booking to the {date} flight that departs at {time}.",
)
CANCEL = (  # a cancellation the policy allows, and one it forbids, are asked for alike
    "Please cancel {who}'s reservation for the flight from {origin} to {destination}. Reason: {reason}.",
    "{who} will not make the {origin} to {destination} trip (reason: {reason}). Cancel that reservation, please.",
    "Cancel the {origin}-{destination} booking of {who}; the reason is {reason}.",
)

PHRASINGS: dict[str, tuple[str, ...]] = {
    "seats_left": (
        "How many seats are left on the {time} flight from {origin} to {destination} on {date}?",
        "Is there room on the {origin} to {destination} flight leaving {date} at {time}? How many seats are free?",
        "Check availability for me: {origin} to {destination}, {date}, departing {time}. How many seats remain?",
    ),
    "cheapest_fare": (
        "What is the cheapest fare I can still book from {origin} to {destination} on {date}?",
        "Find the lowest price for a seat that is still available from {origin} to {destination} on {date}.",
        "I want to fly {origin} to {destination} on {date}. What does the cheapest flight with free seats cost?",
    ),
    "passenger_tier": (
        "What membership tier does {name} have?",
        "Is {name} a basic, silver or gold member?",
        "Look up {name}'s membership tier.",
    ),
    "reservation_status": (
        "What is the status of reservation {reservation}? It belongs to passenger {passenger}.",
        "Passenger {passenger} wants to know whether reservation {reservation} is still active.",
        "Is booking {reservation} of passenger {passenger} active or cancelled?",
    ),
    "fares_many": (
        "What is the cheapest fare with free seats {listed}?",
        "Compare prices for me: the cheapest bookable flight {listed}.",
    ),
    "tiers_many": (
        "What membership tiers do {listed} have?",
        "Tell me the membership tier of each of these passengers: {listed}.",
    ),
    "book_many": (
        "For passenger {passenger}, book {seats1} on flight {flight1} and {seats2} on flight {flight2}.",
        "Passenger {passenger} wants {seats1} on {flight1} and {seats2} on {flight2}. Please book both.",
    ),
    "book_cheapest": (
        "Book {seats} for {who} on the cheapest flight from {origin} to {destination} on {date} that has enough free seats.",
        "{who} needs {seats} from {origin} to {destination} on {date}. Book the cheapest flight with room for that.",
        "Please book the lowest-priced {origin} to {destination} flight on {date} that still has {seats} free, for {who}.",
    ),
    "rebook_earliest": (
        "Move {who}'s {origin} to {destination} reservation to the earliest flight on {date} that has enough seats.",
        "{who} wants to fly {origin} to {destination} on {date} instead. Change the reservation to the earliest flight that day with room for all its seats.",
    ),
    "change_flight_at": CHANGE,
    "change_refused": CHANGE,
    "cancel_trip": CANCEL,
    "cancel_refused": CANCEL,
    "my_flight_seats": (
        "How many seats are still free on the flight {name} is booked on from {origin} to {destination}?",
        "{name} has a reservation from {origin} to {destination}. How many seats are left on that flight?",
    ),
}
