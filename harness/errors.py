"""The one error type for bad input: it names the key, the value and what would be valid."""


class ConfigError(ValueError):
    """Bad input, raised before any work starts."""

    def __init__(self, key: str, value, valid: str):
        self.key, self.value, self.valid = key, value, valid
        super().__init__(f"{key}={value!r} is not valid: expected {valid}")


class DatasetNotFound(FileNotFoundError):
    """A dataset is on none of the searched paths; the message lists them and how to get it."""
