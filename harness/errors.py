"""The one error type for bad input: it names the key, the value and what would be valid."""


class ConfigError(ValueError):
    """Bad input, raised before any work starts."""

    def __init__(self, key: str, value, valid: str):
        self.key, self.value, self.valid = key, value, valid
        super().__init__(f"{key}={value!r} is not valid: expected {valid}")

    def __reduce__(self):  # Ray pickles a trial's exception; the default would call __init__(message)
        return type(self), (self.key, self.value, self.valid)


class DatasetNotFound(FileNotFoundError):
    """A dataset is on none of the searched paths; the message lists them and how to get it."""


def call_with_options(fn, options: dict, prefix: str, what: str, *args):
    """``fn(*args, **options)``, turning an unknown keyword into a ConfigError that lists the accepted ones.

    For registered variants (conv kernels, training methods) whose options come from a config file:
    Python's own TypeError would name neither the config key nor the valid choices. A class that
    passes ``**options`` on to its bases accepts the named parameters of every ``__init__`` up its MRO.
    """
    import inspect

    inits = ([c.__init__ for c in fn.__mro__ if "__init__" in vars(c) and c is not object]
             if inspect.isclass(fn) else [fn])
    accepted, open_ended = [], False  # a class without an __init__ of its own takes no options
    for init in inits:
        params = list(inspect.signature(init).parameters.values())
        accepted += [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
                     and p.name != "self" and p.name not in accepted]
        open_ended = any(p.kind is p.VAR_KEYWORD for p in params)
        if not open_ended:  # this one takes no more: the accepted names end here
            break
    if not open_ended:
        accepted = accepted[len(args):]
        for key, value in options.items():
            if key not in accepted:
                raise ConfigError(f"{prefix}.{key}", value,
                                  f"an option of {what}: " + (", ".join(accepted) or "it takes none"))
    return fn(*args, **options)


def writable_folder(key: str, path) -> None:
    """ConfigError unless ``path`` is a folder this process can write into, or can create: before any
    work, so a mistyped ``--out`` or ``--storage-path`` (a file, a read-only place) costs nothing."""
    import os
    from pathlib import Path

    path = Path(path).expanduser()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(key, str(path), f"a folder ({existing} is a file)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(key, str(path), f"a folder this user can write ({existing} is read-only)")
