"""The one error type for bad input: it names the key, the value and what would be valid."""


class ConfigError(ValueError):
    """Bad input, raised before any work starts."""

    def __init__(self, key: str, value, valid: str):
        self.key, self.value, self.valid = key, value, valid
        super().__init__(f"{key}={value!r} is not valid: expected {valid}")


class DatasetNotFound(FileNotFoundError):
    """A dataset is on none of the searched paths; the message lists them and how to get it."""


def call_with_options(fn, options: dict, prefix: str, what: str, *args):
    """``fn(*args, **options)``, turning an unknown keyword into a ConfigError that lists the accepted ones.

    For registered variants (conv kernels, training methods) whose options come from a config file:
    Python's own TypeError would name neither the config key nor the valid choices.
    """
    import inspect

    params = inspect.signature(fn).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):  # it takes anything: let it check for itself
        return fn(*args, **options)
    accepted = [name for name, p in inspect.signature(fn).parameters.items()
                if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and name != "self"][len(args):]
    for key, value in options.items():
        if key not in accepted:
            raise ConfigError(f"{prefix}.{key}", value, f"an option of {what}: " + (", ".join(accepted) or "it takes none"))
    return fn(*args, **options)
