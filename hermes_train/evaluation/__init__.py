"""Evaluation: held-out environment tasks, BFCL, bootstrap statistics, run reports."""
