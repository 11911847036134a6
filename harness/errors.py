"""The one error type for bad input (it names the key, the value and what would be valid), and the one
coercion that checks a value against its declared type: RunConfig's fields and every registered
model's, conv variant's and method's options (their annotated parameters) alike."""
from __future__ import annotations

import difflib
import inspect
import math
import types
import typing
from fractions import Fraction


class ConfigError(ValueError):
    """Bad input, raised before any work starts."""

    def __init__(self, key: str, value, valid: str):
        self.key, self.value, self.valid = key, value, valid
        super().__init__(f"{key}={value!r} is not valid: expected {valid}")

    def __reduce__(self):  # Ray pickles a trial's exception; the default would call __init__(message)
        return type(self), (self.key, self.value, self.valid)


def nearest(word, valid) -> str:
    """" (did you mean 'label'?)" when ``word`` looks like a typo of one of ``valid``, else ""."""
    close = difflib.get_close_matches(str(word), [str(v) for v in valid], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class DatasetNotFound(FileNotFoundError):
    """A dataset is on none of the searched paths; the message lists them and how to get it."""


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


# ---- typed options: one coercion for RunConfig's fields and every model's, conv's and method's options ----

def _number(key: str, value, kind: type, text: bool = True):
    """Accept ints for floats and, with ``text``, 'p/q' fractions (gamma = 1/3); reject bools and
    non-finite floats (no setting of a trial means infinity: ``.inf`` or ``1e400`` is a typo)."""
    what = "an int" if kind is int else "a finite number"
    if isinstance(value, bool):
        raise ConfigError(key, value, f"{what}, not a boolean")
    if kind is float and (isinstance(value, (int, float)) or (text and isinstance(value, str))):
        try:
            number = float(Fraction(value.strip())) if isinstance(value, str) else float(value)
        except (ValueError, ZeroDivisionError):
            raise ConfigError(key, value, "a number (or a fraction such as 1/3)") from None
        except OverflowError:
            raise ConfigError(key, value, "a finite number (this one overflows a float)") from None
        if not math.isfinite(number):
            raise ConfigError(key, value, "a finite number")
        return number
    if kind is int and isinstance(value, int):
        return value
    if kind is int and text and isinstance(value, float) and value.is_integer():
        return int(value)
    raise ConfigError(key, value, what)


def expected(hint) -> str:
    """What a value of type ``hint`` is, in the words of an error message."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        arms = [expected(a) for a in args if a is not type(None)]
        return " or ".join(arms) + (" or null" if type(None) in args else "")
    if origin is typing.Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin in (tuple, list) or hint in (tuple, list):
        inner = args[0] if args and args[0] is not Ellipsis else None
        return "a list" + (f" of {expected(inner).removeprefix('an ').removeprefix('a ')}s" if inner else "")
    return {int: "an int", float: "a finite number", bool: "true or false", str: "a string",
            dict: "a mapping of options"}.get(hint, f"a {getattr(hint, '__name__', hint)}")


def coerce(key: str, value, hint, strict: bool = False):
    """``value`` checked against the annotation ``hint`` (int, float, bool, str, dict, Optional[X],
    X | Y, tuple[X, ...], list[X], Literal[...]); returns it in its declared type, ConfigError naming
    ``key``, the value and the expected type otherwise. RunConfig's fields are read leniently: a
    number may be a fraction text, a list may be one value. ``strict`` (model and method options)
    accepts neither: an option is passed on as written, so what is checked must be what the code gets."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is typing.Any or hint is object:
        return value
    if origin in (typing.Union, types.UnionType):  # Optional[X], X | Y: the first arm that accepts it
        if value is None and type(None) in args:
            return None
        arms = [a for a in args if a is not type(None)]
        for arm in arms:
            try:
                return coerce(key, value, arm, strict)
            except ConfigError as e:
                if len(arms) == 1:
                    raise ConfigError(key, value, e.valid + (" or null" if type(None) in args else "")) from None
        raise ConfigError(key, value, expected(hint))
    if origin is typing.Literal:
        if value not in args or isinstance(value, bool) != any(isinstance(a, bool) for a in args if a == value):
            raise ConfigError(key, value, expected(hint))
        return value
    if origin in (tuple, list) or hint in (tuple, list):
        if not isinstance(value, (list, tuple)):
            if strict:
                raise ConfigError(key, value, expected(hint))
            value = [value]
        inner = args[0] if args and args[0] is not Ellipsis else typing.Any
        items = [coerce(f"{key}[{i}]", v, inner, strict) for i, v in enumerate(value)]
        return tuple(items) if (origin or hint) is tuple else items
    if hint in (int, float):
        return _number(key, value, hint, text=not strict)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, value, "true or false")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(key, value, "a string")
        return value
    if hint is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(key, value, "a mapping of options")
        plain_data(key, value)
        return dict(value)
    if isinstance(hint, type):
        if not isinstance(value, hint):
            raise ConfigError(key, value, expected(hint))
        return value
    raise TypeError(f"unsupported option type {hint!r} for {key}")


def plain_data(key: str, value) -> None:
    """Options are logged and hashed as JSON: YAML's dates, sets and bytes are not values here."""
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ConfigError(f"{key}.{k}", v, "an option named by a string")
            plain_data(f"{key}.{k}", v)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            plain_data(f"{key}[{i}]", v)
    elif not (value is None or isinstance(value, (str, int, float, bool))):
        raise ConfigError(key, value, "a number, string, boolean, list or mapping")


def option_types(fn, skip: int = 0) -> tuple[dict, bool]:
    """({option: annotation or Any}, open-ended) of what ``fn`` accepts by keyword: a function's
    parameters, or a class's ``__init__`` parameters up its MRO while each passes ``**options`` on.
    ``skip``: leading positional parameters the caller fills itself (a conv variant's conv)."""
    inits = ([c.__init__ for c in fn.__mro__ if "__init__" in vars(c) and c is not object]
             if inspect.isclass(fn) else [fn])
    accepted: dict = {}
    open_ended = False  # a class without an __init__ of its own takes no options
    for init in inits:
        hints = typing.get_type_hints(init)
        params = [p for p in inspect.signature(init).parameters.values() if p.name != "self"]
        if init is inits[0]:
            params = params[skip:]
        for p in params:
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in accepted:
                accepted[p.name] = hints.get(p.name, typing.Any)
        open_ended = any(p.kind is p.VAR_KEYWORD for p in params)
        if not open_ended:  # this one takes no more: the accepted names end here
            break
    return accepted, open_ended


def check_options(fn, options: dict, prefix: str, what: str, skip: int = 0) -> None:
    """ConfigError for an option ``fn`` does not take (listing those it does) or one of the wrong
    type (naming the type its annotation declares), keyed ``<prefix>.<option>``."""
    if not isinstance(options, dict):
        raise ConfigError(prefix, options, f"a mapping of {what}'s options")
    accepted, open_ended = option_types(fn, skip)
    for key, value in options.items():
        if key not in accepted:
            if open_ended:
                continue
            raise ConfigError(f"{prefix}.{key}", value,
                              f"an option of {what}: " + (", ".join(accepted) or "it takes none"))
        coerce(f"{prefix}.{key}", value, accepted[key], strict=True)


def call_with_options(fn, options: dict, prefix: str, what: str, *args):
    """``fn(*args, **options)`` once ``check_options`` accepts them: Python's own TypeError would name
    neither the config key nor the valid choices, and a wrong type would fail deep inside."""
    check_options(fn, options, prefix, what, skip=len(args))
    return fn(*args, **options)
