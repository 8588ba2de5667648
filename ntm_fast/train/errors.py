"""The training application's user-facing error."""


class UserError(Exception):
    """A problem with the user's request; the CLI prints the message without a traceback."""
