"""Evaluation: held-out environment tasks paired across models, BFCL, bootstrap statistics."""
