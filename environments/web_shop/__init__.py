"""A web shop (WebShop / AgentBench style): search a seeded catalogue, inspect products, fill a cart, check out.

The catalogue (40-120 products in five categories, each with a brand, colour, material, price, rating,
weight, warranty, and sizes with stock or a category-specific measure) is drawn from the task's world
seed. Search shows compact rows (id, title, price, colour, rating); material, sizes, stock, weight,
warranty, capacity and battery life are only on the product page, so many tasks need a search and then
a look at the products it found. Purchase tasks plant the product that fits the request together with
near-misses (wrong size or out of stock in it, too small, wrong material, over budget) and are verified
on the orders placed: the share of the request's attributes the bought item has, nothing if over budget
or nothing was ordered, less for anything else that was bought.

``world``: the catalogue and the checks on products; ``env``: the tools and the verifier; ``families``:
the task families; ``phrasings``: how users ask for them.
"""

from environments.web_shop.env import WebShopEnv

__all__ = ["WebShopEnv"]
