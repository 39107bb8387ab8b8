"""How the shop's users ask for each task: prompt templates per task family, filled with the values the family
draws. The phrasing a task gets decides its split (by a hash of the prompt), so editing one moves tasks
between train and test."""

PHRASINGS: dict[str, tuple[str, ...]] = {
    "count_status": (
        "How many orders have the status '{s}'?",
        "Count the orders that are currently {s}.",
        "What number of orders in the shop database are {s}?",
    ),
    "customer_city": (
        "Which city is the customer {c} from?",
        "Look up where our customer {c} lives: which city?",
        "In which city is {c}, one of our customers, based?",
    ),
    "product_stock": (
        "How many units of {p} are in stock?",
        "What is the current stock of the product {p}?",
        "Check the stock level of {p} for me.",
    ),
    "table_sizes": (
        "Which tables does the shop database have, and how many rows are in each?",
        "List the database's tables with their row counts.",
        "Give me an overview of the tables in the shop database and how big each one is.",
        "How many rows does each table of the database hold?",
        "Show me the tables of the database and their row counts.",
        "Name the tables in the database with their number of records.",
    ),
    "ship_order": (
        "Mark order {n} as shipped.",
        "Order {n} has left the warehouse: set its status to shipped.",
        "Please update order {n} so that its status is 'shipped'.",
    ),
    "set_stock": (
        "Set the stock of {p} to {k} units.",
        "We counted {k} units of {p} in the warehouse; update its stock.",
        "Update the stock level of {p} to {k}.",
    ),
    "add_customer": (
        "Add a new customer named {c} from {city} on the {t} tier.",
        "Register {c} ({city}) as a new {t}-tier customer.",
        "Create a customer record for {c}, who lives in {city}; tier: {t}.",
    ),
    "category_avg_price": (
        "What is the average price of the products in the {k} category?",
        "On average, how much does a {k} product cost?",
        "Tell me the mean price of our {k} products.",
    ),
    "city_order_count": (
        "How many orders have been placed by customers from {city}?",
        "Count all orders of the customers who live in {city}.",
        "What is the number of orders from customers based in {city}?",
    ),
    "customer_spend": (
        "How much has {c} spent in total, counting every order that was not cancelled (quantity times price)?",
        "What is the total value of {c}'s orders, cancelled ones excluded?",
        "Add up what {c} has bought: the sum of quantity x price over all their orders that are not cancelled.",
    ),
    "top_category_revenue": (
        "Which product category has brought in the most revenue from {s} orders, and how much?",
        "Among {s} orders, which category earned the most money (quantity x price)? Give the amount too.",
        "Looking only at {s} orders: what is the top category by revenue, and what revenue is that?",
    ),
    "raise_prices": (
        "Raise the price of every {k} product by {p}% (rounded to cents).",
        "Increase all prices in the {k} category by {p} percent, rounding to 2 decimals.",
        "Our {k} supplier got more expensive: put {p}% on each {k} price, rounded to the cent.",
    ),
    "cancel_pending": (
        "Cancel all pending orders of {c}.",
        "{c} asked us to cancel every order of theirs that is still pending. Please do it.",
        "Set the status of each pending order placed by {c} to cancelled.",
    ),
    "describe_many": (
        "What columns do the tables {t} have, and how many rows does each hold?",
        "Describe the tables {t} for me: their columns and row counts.",
        "I need the columns and the number of rows of {t}.",
    ),
    "aggregates_many": (
        "Some quick numbers, please: {a}.",
        "I need {a}.",
        "From the shop database, tell me {a}.",
    ),
    "stock_many": (
        "Set the stock of {a}.",
        "Inventory count done: update the stock of {a}.",
        "Please change the stock levels: {a}.",
    ),
    "order_customer": (
        "Who placed order {n}, and how many orders has that customer placed in total?",
        "Find the customer behind order {n} and tell me their total number of orders.",
        "Order {n}: whose is it, and how many orders does that person have altogether?",
    ),
    "top_customer_latest": (
        "Which customer{w} has placed the most orders? Tell me the date and status of that customer's most recent order.",
        "Find our customer{w} with the most orders, then look up their latest order: when was it placed and what is its status?",
        "Who is the customer{w} with the largest number of orders, and what is the date and status of their newest order?",
    ),
    "priciest_units": (
        "What is the most expensive product in the {k} category, and how many units of it have been ordered in total?",
        "Find the priciest {k} product, then count how many units of it all orders contain.",
        "Which {k} product costs the most, and how many units of it were ordered overall?",
    ),
    "delete_cancelled": (
        "Delete the cancelled orders of {c}, together with their order items.",
        "Remove every cancelled order of the customer {c} from the database, including its order items.",
        "Clean up: {c}'s cancelled orders and their items should be deleted.",
    ),
}
