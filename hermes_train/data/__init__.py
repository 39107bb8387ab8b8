"""Training data: the unified example schema, public-format loaders, synthetic generators, the weighted mix."""
