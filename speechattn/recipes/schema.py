"""Typed recipes: plain YAML validated into nested dataclasses.

A recipe is a YAML mapping whose structure mirrors a tree of ``@dataclass``
configs. There is no code in the YAML (no tags, no object construction): it is
loaded with a safe loader and every value is checked against the dataclass
annotations. Errors are :class:`ConfigError` with a one-line message naming the
recipe file and the dotted key, for example::

    recipes/speaker.yaml: unknown key 'model.num_layer' (did you mean 'num_layers'?)
    recipes/speaker.yaml: 'train.lr' must be a float, got 'fast'
    recipes/speaker.yaml: missing required key 'data.train'

Supported annotations: ``int``, ``float`` (ints accepted), ``bool`` (strict),
``str``, :class:`pathlib.Path`, ``Optional[X]`` / ``X | None`` and other unions,
``list[X]``, ``tuple[X, ...]`` and fixed ``tuple[X, Y]``, ``dict[str, X]``,
``Literal[...]``, :class:`enum.Enum` (by value), ``Any`` and nested dataclasses
(also inside lists and dicts). Dataclasses validate ranges in ``__post_init__``
by raising :class:`ValueError`; the message is wrapped into a :class:`ConfigError`.

Typical use::

    cfg = load_recipe(SpeakerRecipe, "recipes/speaker.yaml", ["model.num_layers=4"])
    save_recipe(cfg, run_dir / "recipe.yaml")
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import enum
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from speechattn.utils.files import atomic_write_text

__all__ = [
    "ConfigError",
    "apply_overrides",
    "dump_recipe",
    "from_dict",
    "load_recipe",
    "save_recipe",
    "to_dict",
]

T = TypeVar("T")

_MISSING = dataclasses.MISSING


class ConfigError(ValueError):
    """A recipe does not match its schema (one-line message naming file and key)."""

    def __init__(
        self,
        problem: str,
        *,
        source: str | os.PathLike[str] | None = None,
        key: str | None = None,
        line: int | None = None,
    ):
        self.problem = problem
        self.source = None if source is None else str(source)
        self.key = key
        self.line = line
        where = self.source if line is None or self.source is None else f"{self.source}:{line}"
        super().__init__(f"{where}: {problem}" if where else problem)


# --------------------------------------------------------------------------- YAML

class _RecipeLoader(yaml.SafeLoader):
    """Safe loader that also reads ``1e-3`` as a float (YAML 1.2 style).

    PyYAML follows YAML 1.1, where a float needs a dot (``1.0e-3``), so the
    very common ``lr: 1e-3`` would otherwise load as the string ``'1e-3'``.
    """


_FLOAT_RE = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_RecipeLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:float"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_RecipeLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_RE, list("-+0123456789."))


def _yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_RecipeLoader)  # noqa: S506 - a SafeLoader subclass


class _RecipeDumper(yaml.SafeDumper):
    """Safe dumper that writes block-style mappings and keeps field order."""


# --------------------------------------------------------------------------- helpers

def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _show(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _type_hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except NameError as exc:  # annotation refers to a name not visible at module level
        raise TypeError(f"cannot resolve the annotations of {cls.__qualname__}: {exc}") from exc


def _init_fields(cls: type) -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(cls) if f.init]


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _describe(tp: Any) -> str:
    """Human name of a type for error messages ('a float', 'a list', ...)."""
    names = {
        bool: "a bool",
        int: "an int",
        float: "a float",
        str: "a string",
        Path: "a path (string)",
        type(None): "null",
    }
    if tp in names:
        return names[tp]
    origin = typing.get_origin(tp)
    if origin in (list, Sequence):
        return "a list"
    if origin is tuple or tp is tuple:
        return "a list"
    if origin in (dict, Mapping) or tp is dict:
        return "a mapping"
    if tp is list:
        return "a list"
    if _is_dataclass_type(tp):
        return "a mapping"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return f"one of {[m.value for m in tp]}"
    return f"a {getattr(tp, '__name__', str(tp))}"


# --------------------------------------------------------------------------- from_dict

def from_dict(cls: type[T], data: Mapping[str, Any], *, source: str | None = None, prefix: str = "") -> T:
    """Build dataclass ``cls`` from a (nested) mapping, checking every value's type.

    Args:
        cls: a dataclass type; its fields' annotations define the schema.
        data: the mapping (as loaded from YAML or JSON).
        source: the recipe file, named in error messages.
        prefix: dotted key of ``data`` inside the whole recipe (for messages).

    Raises:
        ConfigError: unknown or missing keys, wrong types, invalid choices, or a
            ``ValueError`` raised by a dataclass's ``__post_init__``.
    """
    if not _is_dataclass_type(cls):
        raise TypeError(f"from_dict needs a dataclass type, got {cls!r}")
    if not isinstance(data, Mapping):
        where = f"{prefix!r}" if prefix else "the recipe"
        raise ConfigError(f"{where} must be a mapping, got {_show(data)}", source=source, key=prefix or None)

    hints = _type_hints(cls)
    fields = _init_fields(cls)
    names = [f.name for f in fields]
    for key in data:
        if not isinstance(key, str):
            raise ConfigError(
                f"keys must be strings, got {_show(key)} in {prefix!r}" if prefix else f"keys must be strings, got {_show(key)}",
                source=source,
                key=prefix or None,
            )
        if key not in names:
            full = _join(prefix, key)
            raise ConfigError(f"unknown key {full!r}{_suggest(key, names)}", source=source, key=full)

    kwargs: dict[str, Any] = {}
    for f in fields:
        full = _join(prefix, f.name)
        if f.name in data:
            kwargs[f.name] = _convert(data[f.name], hints[f.name], full, source)
        elif f.default is _MISSING and f.default_factory is _MISSING:
            raise ConfigError(f"missing required key {full!r}", source=source, key=full)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError) as exc:
        where = f"{prefix!r}" if prefix else "recipe"
        raise ConfigError(f"invalid {where}: {exc}", source=source, key=prefix or None) from exc


def _convert(value: Any, tp: Any, key: str, source: str | None) -> Any:
    """Check/convert one value against annotation ``tp``; ``key`` names it in errors."""

    def fail(expected: str) -> ConfigError:
        return ConfigError(f"{key!r} must be {expected}, got {_show(value)}", source=source, key=key)

    if tp is Any or tp is object:
        return value
    if tp is type(None):
        if value is not None:
            raise fail("null")
        return None

    origin = typing.get_origin(tp)
    args = typing.get_args(tp)

    if origin is Union or (hasattr(types, "UnionType") and origin is types.UnionType):
        options = [a for a in args if a is not type(None)]
        if value is None:
            if len(options) < len(args):
                return None
            raise fail(" or ".join(_describe(a) for a in options))
        if len(options) == 1:
            return _convert(value, options[0], key, source)
        for option in options:  # first type that accepts the value wins
            try:
                return _convert(value, option, key, source)
            except ConfigError:
                continue
        raise fail(" or ".join(_describe(a) for a in options))

    if origin is Literal:
        for choice in args:
            if type(choice) is type(value) and choice == value:
                return choice
        raise fail(f"one of {list(args)}")

    if _is_dataclass_type(tp):
        if not isinstance(value, Mapping):
            raise fail("a mapping")
        return from_dict(tp, value, source=source, prefix=key)

    if tp is bool:
        if not isinstance(value, bool):
            raise fail("a bool (true/false)")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail("an int")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail("a float")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise fail("a string")
        return value
    if tp is Path or (isinstance(tp, type) and issubclass(tp, os.PathLike)):
        if not isinstance(value, (str, os.PathLike)) or str(value) == "":
            raise fail("a path (string)")
        return Path(value)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        if isinstance(value, tp):
            return value
        for member in tp:
            if type(member.value) is type(value) and member.value == value:
                return member
        raise fail(f"one of {[m.value for m in tp]}")

    if origin in (list, Sequence) or tp in (list, Sequence):
        if not isinstance(value, (list, tuple)):
            raise fail("a list")
        item = args[0] if args else Any
        return [_convert(v, item, f"{key}[{i}]", source) for i, v in enumerate(value)]

    if origin is tuple or tp is tuple:
        if not isinstance(value, (list, tuple)):
            raise fail("a list")
        if not args or (len(args) == 2 and args[1] is Ellipsis):
            item = args[0] if args else Any
            return tuple(_convert(v, item, f"{key}[{i}]", source) for i, v in enumerate(value))
        if len(value) != len(args):
            raise fail(f"a list of {len(args)} items")
        return tuple(_convert(v, a, f"{key}[{i}]", source) for i, (v, a) in enumerate(zip(value, args)))

    if origin in (dict, Mapping) or tp in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise fail("a mapping")
        key_tp, val_tp = args if args else (Any, Any)
        out: dict[Any, Any] = {}
        for k, v in value.items():
            if key_tp is str and not isinstance(k, str):
                raise ConfigError(f"keys of {key!r} must be strings, got {_show(k)}", source=source, key=key)
            out[_convert(k, key_tp, key, source) if key_tp is not str else k] = _convert(
                v, val_tp, f"{key}.{k}", source
            )
        return out

    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise fail(_describe(tp))
    raise TypeError(f"unsupported annotation {tp!r} for {key!r}")


# --------------------------------------------------------------------------- to_dict

def to_dict(obj: Any) -> Any:
    """Plain-data form of a dataclass tree (Paths as strings, tuples as lists).

    ``from_dict(type(x), to_dict(x)) == x`` for any dataclass ``x`` whose values
    match its annotations.
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
    if isinstance(obj, enum.Enum):
        return to_dict(obj.value)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, Mapping):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


# --------------------------------------------------------------------------- overrides

_OVERRIDE_KEY_RE = re.compile(r"^[A-Za-z_][\w\-]*(?:\.[\w\-]+)*$")


def apply_overrides(
    data: Mapping[str, Any],
    overrides: Sequence[str],
    source: str | None = None,
    *,
    schema: type | None = None,
) -> dict[str, Any]:
    """Return a copy of ``data`` with ``key.path=value`` overrides applied.

    Values are parsed as YAML (``4`` -> int, ``true`` -> bool, ``[1, 2]`` ->
    list, ``1e-3`` -> float, ``null`` -> None). Numeric path segments index into
    lists (``data.sets.0.path=x``).

    Paths are validated against ``schema`` (a dataclass type) when given, so a
    field that has a default but is absent from the YAML can still be set;
    without a schema every segment must already exist in ``data``. Unknown
    segments raise :class:`ConfigError` with a close-match suggestion.
    """
    result: dict[str, Any] = copy.deepcopy(dict(data))
    for override in overrides:
        key, sep, raw = override.partition("=")
        key = key.strip()
        where = f"override {override!r}"
        if not sep or not _OVERRIDE_KEY_RE.match(key):
            raise ConfigError(f"{where} must look like 'section.key=value'", source=source)
        try:
            value = _yaml_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(f"{where}: cannot parse the value: {problem}", source=source, key=key) from None
        _set_path(result, key.split("."), value, where, source, schema)
    return result


def _set_path(
    data: dict[str, Any], parts: list[str], value: Any, where: str, source: str | None, schema: Any
) -> None:
    node: Any = data
    tp: Any = schema
    done: list[str] = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        dotted = ".".join([*done, part])
        tp = _strip_optional(tp)
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(
                    f"{where}: {'.'.join(done)!r} is a list of {len(node)} items, no item {part!r}",
                    source=source,
                    key=dotted,
                )
            idx = int(part)
            tp = typing.get_args(tp)[0] if typing.get_args(tp) else None
            if last:
                node[idx] = value
                return
            node = node[idx]
            done.append(part)
            continue
        if not isinstance(node, dict):
            raise ConfigError(f"{where}: {'.'.join(done)!r} is not a mapping", source=source, key=dotted)
        if _is_dataclass_type(tp):
            names = [f.name for f in _init_fields(tp)]
            if part not in names:
                raise ConfigError(
                    f"{where}: unknown key {dotted!r}{_suggest(part, names)}", source=source, key=dotted
                )
            tp = _type_hints(tp)[part]
        elif tp is not None and typing.get_origin(tp) in (dict, Mapping):
            tp = typing.get_args(tp)[1] if typing.get_args(tp) else None
        else:
            if part not in node:
                raise ConfigError(
                    f"{where}: unknown key {dotted!r}{_suggest(part, [str(k) for k in node])}",
                    source=source,
                    key=dotted,
                )
            tp = None
        if last:
            node[part] = value
            return
        if node.get(part) is None:  # a section absent from the YAML but known to the schema
            node[part] = {}
        node = node[part]
        done.append(part)


def _strip_optional(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin is Union or (hasattr(types, "UnionType") and origin is types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        return options[0] if len(options) == 1 else None
    return tp


# --------------------------------------------------------------------------- files

def load_recipe(cls: type[T], path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> T:
    """Load a YAML recipe file into dataclass ``cls``, after applying ``overrides``.

    Raises:
        ConfigError: the file is missing or unreadable, is not valid YAML (the
            message gives the line), or does not match the schema.
    """
    source = str(path)
    p = Path(path)
    if not p.is_file():
        raise ConfigError("recipe file not found" if not p.exists() else "recipe path is not a file", source=source)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the recipe: {exc}", source=source) from None
    try:
        data = _yaml_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if mark is not None:
            raise ConfigError(
                f"invalid YAML (column {mark.column + 1}): {problem}", source=source, line=mark.line + 1
            ) from None
        raise ConfigError(f"invalid YAML: {problem}", source=source) from None
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"the recipe must be a YAML mapping, got {_show(data)}", source=source)
    data = apply_overrides(data, overrides, source=source, schema=cls)
    return from_dict(cls, data, source=source)


def dump_recipe(obj: Any) -> str:
    """YAML text of a resolved config (as :func:`save_recipe` writes it)."""
    return yaml.dump(
        to_dict(obj), Dumper=_RecipeDumper, sort_keys=False, default_flow_style=False, allow_unicode=True
    )


def save_recipe(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Write the resolved config ``obj`` as YAML to ``path`` (atomically); return the path."""
    return atomic_write_text(path, dump_recipe(obj))
