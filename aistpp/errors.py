"""The one exception type users see: a one-line message that names the file and the problem."""


class AistppError(Exception):
    """Bad input or a failed stage. ``str(err)`` is a single line fit for a CLI error message."""

    def __init__(self, message: str, path=None):
        self.path = None if path is None else str(path)
        message = " ".join(str(message).split())  # one line, always
        super().__init__(f"{self.path}: {message}" if self.path else message)
