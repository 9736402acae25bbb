"""Typed values: converts JSON values to Python types (dataclasses above all), derives JSON Schemas
(draft 2020-12) from the same type hints, and turns typed values back into JSON.

Supported types: ``str``, ``int``, ``float``, ``bool``, ``None``, ``Any``, ``list[T]``, ``dict`` and
``dict[str, T]``, ``Optional[T]`` (or ``T | None``) and other unions of these, ``Literal[...]``,
``enum.Enum`` subclasses, and dataclasses, nested as deep as needed (but not recursive).

A dataclass is a JSON object whose keys are the field names. A field with a default, a
``default_factory`` or an ``Optional`` type may be left out; any other field is required, and keys
the dataclass does not have are refused. ``field(metadata={...})`` may carry ``description``,
``minimum`` and ``maximum`` (the bounds are checked and appear in the schema). A dataclass's own
docstring becomes its schema's description. A ``ValueError`` raised by ``__post_init__`` is
reported at that dataclass's path, so extra checks read like the SDK's own.

Conversion is strict, like the Rust SDK's serde: no string is turned into a number, and ``true``
is not an integer. The one leniency is JSON Schema's: ``2.0`` is an integer.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from typing import Any, Literal, Union

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

_MISSING = dataclasses.MISSING
_SIMPLE = {
    str: ("a string", "strings", "string"),
    int: ("an integer", "integers", "integer"),
    float: ("a number", "numbers", "number"),
    bool: ("a boolean", "booleans", "boolean"),
    type(None): ("null", "nulls", "null"),
}


class Invalid(ValueError):
    """A value that does not fit its type. ``problems`` holds every mismatch as ``path: what``."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def convert(tp: Any, value: Any) -> Any:
    """Converts a JSON value (as ``json.loads`` returns it) to ``tp``, raising :class:`Invalid`
    with every problem found, each naming its path (``items[2].name: expected a string, got 5``)."""
    problems: list[str] = []
    result = _convert(tp, value, "", problems)
    if problems:
        raise Invalid(problems)
    return result


def json_schema(tp: Any) -> dict:
    """The JSON Schema of ``tp``, with ``$schema`` naming draft 2020-12. Raises ``TypeError``
    naming the field whose type is not supported."""
    schema = {"$schema": SCHEMA_DIALECT}
    schema.update(_schema(tp, "", set()))
    return schema


def plain(value: Any) -> Any:
    """A typed value as plain JSON data: dataclasses become dicts, enums their values, tuples lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return value


def dump(value: Any) -> str:
    """Compact JSON text of a (typed) value. Raises ``ValueError`` for what JSON cannot carry
    (NaN, infinities, objects of other classes), naming the culprit's type."""
    try:
        return json.dumps(plain(value), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as e:
        raise ValueError(f"not JSON: {e}") from None


def show(value: Any, limit: int = 60) -> str:
    """A JSON value as it appears in a message, cut to ``limit`` characters."""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe(tp: Any) -> str:
    """What a value of ``tp`` is, in words: ``a list of integers``."""
    return _noun(tp)[0]


# -- conversion ---------------------------------------------------------------------------------


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _at(path: str) -> str:
    return f"{path}: " if path else ""


def _convert(tp: Any, value: Any, path: str, problems: list[str]) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any or tp is object:
        return value
    if origin in (Union, types.UnionType):
        return _convert_union(tp, value, path, problems)
    if origin is Literal:
        for choice in typing.get_args(tp):
            if _same(choice, value):
                return choice
        return _mismatch(tp, value, path, problems)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        for member in tp:
            if _same(member.value, value):
                return member
        return _mismatch(tp, value, path, problems)
    if dataclasses.is_dataclass(tp):
        return _convert_dataclass(tp, value, path, problems)
    if tp is list or origin is list:
        if not isinstance(value, list):
            return _mismatch(tp, value, path, problems)
        (item,) = typing.get_args(tp) or (Any,)
        return [_convert(item, v, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            return _mismatch(tp, value, path, problems)
        _, item = typing.get_args(tp) or (str, Any)
        return {k: _convert(item, v, _join(path, k), problems) for k, v in value.items()}
    if tp is bool:
        return value if isinstance(value, bool) else _mismatch(tp, value, path, problems)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return _mismatch(tp, value, path, problems)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        return _mismatch(tp, value, path, problems)
    if tp is str:
        return value if isinstance(value, str) else _mismatch(tp, value, path, problems)
    if tp is type(None):
        return None if value is None else _mismatch(tp, value, path, problems)
    raise TypeError(f"{_at(path)}type {tp!r} is not supported")


def _mismatch(tp: Any, value: Any, path: str, problems: list[str]) -> None:
    problems.append(f"{_at(path)}expected {describe(tp)}, got {show(value)}")


def _convert_union(tp: Any, value: Any, path: str, problems: list[str]) -> Any:
    arms = typing.get_args(tp)
    if value is None and type(None) in arms:
        return None
    others = [a for a in arms if a is not type(None)]
    # With one arm left (Optional[T]) its own messages, with their deeper paths, say more.
    if len(others) == 1:
        return _convert(others[0], value, path, problems)
    for arm in others:
        attempt: list[str] = []
        result = _convert(arm, value, path, attempt)
        if not attempt:
            return result
    return _mismatch(tp, value, path, problems)


def _convert_dataclass(tp: type, value: Any, path: str, problems: list[str]) -> Any:
    if not isinstance(value, dict):
        return _mismatch(tp, value, path, problems)
    before = len(problems)
    hints = _hints(tp, path)
    fields = [f for f in dataclasses.fields(tp) if f.init]
    names = {f.name for f in fields}
    kwargs = {}
    for f in fields:
        where = _join(path, f.name)
        if f.name in value:
            kwargs[f.name] = _convert(hints[f.name], value[f.name], where, problems)
            _check_bounds(f, kwargs[f.name], where, problems)
        elif f.default is _MISSING and f.default_factory is _MISSING:
            if _optional(hints[f.name]):
                kwargs[f.name] = None
            else:
                problems.append(f"{where}: missing required field")
    for key in value:
        if key not in names:
            known = ", ".join(f.name for f in fields) or "no fields"
            problems.append(f"{_join(path, key)}: unknown field; expected {known}")
    if len(problems) > before:
        return None
    try:
        return tp(**kwargs)
    except ValueError as e:
        problems.append(f"{_at(path)}{e}")
        return None


def _hints(tp: type, path: str) -> dict:
    try:
        return typing.get_type_hints(tp)
    except NameError as e:
        raise TypeError(f"{_at(path)}cannot read the type hints of {tp.__name__}: {e}; define the types it names at module level") from None


def _check_bounds(f: dataclasses.Field, value: Any, path: str, problems: list[str]) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    low, high = f.metadata.get("minimum"), f.metadata.get("maximum")
    if low is not None and value < low:
        problems.append(f"{path}: must be at least {low}, got {show(value)}")
    if high is not None and value > high:
        problems.append(f"{path}: must be at most {high}, got {show(value)}")


def _optional(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType) and type(None) in typing.get_args(tp)


def _same(a: Any, b: Any) -> bool:
    """JSON equality: ``1 == 1.0`` but ``True != 1`` (Python says otherwise on both counts' edges)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


# -- words for messages ---------------------------------------------------------------------


def _noun(tp: Any) -> tuple[str, str]:
    """(singular, plural) of what a value of ``tp`` is."""
    origin = typing.get_origin(tp)
    if tp in _SIMPLE:
        one, many, _ = _SIMPLE[tp]
        return one, many
    if tp is Any or tp is object:
        return "any value", "values"
    if origin in (Union, types.UnionType):
        arms = [_noun(a) for a in typing.get_args(tp)]
        return " or ".join(a[0] for a in arms), " or ".join(a[1] for a in arms)
    if origin is Literal:
        choices = ", ".join(show(c) for c in typing.get_args(tp))
        return f"one of {choices}", f"values among {choices}"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        choices = ", ".join(show(m.value) for m in tp)
        return f"one of {choices}", f"values among {choices}"
    if tp is list or origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        if item is Any:
            return "a list", "lists"
        return f"a list of {_noun(item)[1]}", f"lists of {_noun(item)[1]}"
    if tp is dict or origin is dict:
        return "an object", "objects"
    if dataclasses.is_dataclass(tp):
        return "an object", "objects"
    return repr(tp), repr(tp)


# -- schemas --------------------------------------------------------------------------------


def _schema(tp: Any, path: str, seen: set) -> dict:
    origin = typing.get_origin(tp)
    if tp is Any or tp is object:
        return {}
    if tp in _SIMPLE:
        return {"type": _SIMPLE[tp][2]}
    if origin in (Union, types.UnionType):
        return {"anyOf": [_schema(a, path, seen) for a in typing.get_args(tp)]}
    if origin is Literal:
        return {"enum": list(typing.get_args(tp))}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"enum": [m.value for m in tp]}
    if tp is list or origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        return {"type": "array", "items": _schema(item, f"{path}[]", seen)} if item is not Any else {"type": "array"}
    if tp is dict or origin is dict:
        key, item = typing.get_args(tp) or (str, Any)
        if key is not str:
            raise TypeError(f"{_at(path)}dict keys must be str, not {key!r}: JSON object keys are strings")
        schema = {"type": "object"}
        if item is not Any:
            schema["additionalProperties"] = _schema(item, f"{path}.*", seen)
        return schema
    if dataclasses.is_dataclass(tp):
        return _dataclass_schema(tp, path, seen)
    raise TypeError(
        f"{_at(path)}type {tp!r} is not supported; use str, int, float, bool, list[...], dict, "
        "Optional[...], Literal[...], an Enum or a dataclass"
    )


def _dataclass_schema(tp: type, path: str, seen: set) -> dict:
    if tp in seen:
        raise TypeError(f"{_at(path)}{tp.__name__} contains itself; recursive dataclasses are not supported")
    seen = seen | {tp}
    hints = _hints(tp, path)
    properties, required = {}, []
    for f in dataclasses.fields(tp):
        if not f.init:
            continue
        where = _join(path, f.name)
        prop = _schema(hints[f.name], where, seen)
        for key in ("description", "minimum", "maximum"):
            if key in f.metadata:
                prop[key] = f.metadata[key]
        default = _default_of(f)
        if default is not _MISSING:
            prop["default"] = default
        elif not _optional(hints[f.name]):
            required.append(f.name)
        properties[f.name] = prop
    schema: dict = {"type": "object"}
    doc = _own_doc(tp)
    if doc:
        schema["description"] = doc
    schema["properties"] = properties
    if required:
        schema["required"] = required
    schema["additionalProperties"] = False
    return schema


def _default_of(f: dataclasses.Field) -> Any:
    """A field's default as JSON, or ``_MISSING`` when there is none (or it is not JSON)."""
    if f.default is not _MISSING:
        value = f.default
    elif f.default_factory is not _MISSING:
        value = f.default_factory()
    else:
        return _MISSING
    value = plain(value)
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return _MISSING
    return value


def _own_doc(tp: type) -> str:
    """The dataclass's docstring, unless it is the signature ``@dataclass`` writes when there is none."""
    doc = (tp.__doc__ or "").strip()
    return "" if doc.startswith(f"{tp.__name__}(") else " ".join(doc.split())
