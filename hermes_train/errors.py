"""Errors a user can fix. The CLI prints them as one line and exits with status 2, without a traceback."""


class HermesTrainError(Exception):
    """Bad input from the user (a recipe, a path, a name): the message says what is wrong and where."""
