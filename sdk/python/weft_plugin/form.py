"""Form fields and the checking of answers against them (the Rust SDK's ``form.rs``, message for
message, so a refused answer reads the same whichever language the plugin is written in)."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import math
import re
from typing import Any

from .typed import show


class FieldType(str, enum.Enum):
    """The type of a form field, named as in the WIT (``"secure-string"``, ``"date-time"``)."""

    STRING = "string"
    SECURE_STRING = "secure-string"
    BOOLEAN = "boolean"
    NUMBER = "number"
    INTEGER = "integer"
    DATE_TIME = "date-time"
    JSON = "json"


class AnswerError(ValueError):
    """An answer that does not fit the form. The message says every problem, joined by ``"; "``,
    and is meant to be returned as ``InvalidAnswer(str(error))``."""


_EXPECTED = {
    FieldType.STRING: "a string",
    FieldType.SECURE_STRING: "a string",
    FieldType.BOOLEAN: "a boolean (true/false)",
    FieldType.NUMBER: "a number",
    FieldType.INTEGER: "an integer",
    FieldType.DATE_TIME: "an RFC 3339 date-time such as 2026-11-22T10:00:00Z",
    FieldType.JSON: "any JSON value",
}

_INTEGER = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})"
)


@dataclasses.dataclass
class Field:
    """One field of the form a person fills in.

    ``type`` takes a :class:`FieldType` or its name (``"boolean"``). ``default`` is used when the
    answer leaves the field out; ``None`` means no default, as in the Rust SDK (so JSON ``null``
    cannot be a default).
    """

    name: str
    type: FieldType = FieldType.STRING
    description: str = ""
    required: bool = True
    choices: list = dataclasses.field(default_factory=list)
    default: Any = None

    def __post_init__(self):
        self.type = FieldType(self.type)

    def coerce(self, value: Any) -> Any:
        """Checks one answered value against the field's type and choices, converting the text
        forms that form tools send (``"True"``, ``"4096"``) to JSON booleans and numbers. Raises
        :class:`AnswerError` naming the field: ``field n: expected an integer, got 1.5``."""
        converted = _convert(self.type, value)
        if converted is _NO:
            # A secure string's value must never be echoed, so describe only its JSON type.
            got = _json_type(value) if self.type is FieldType.SECURE_STRING else show(value, 200)
            raise AnswerError(f"field {self.name}: expected {_EXPECTED[self.type]}, got {got}")
        if self.choices and not any(_same(c, converted) for c in self.choices):
            shown = ", ".join(c if isinstance(c, str) else show(c) for c in self.choices)
            raise AnswerError(f"field {self.name}: must be one of {shown}")
        return converted


def read_answer(fields: list[Field], data: Any) -> dict:
    """Checks an answer's ``data`` against a form and returns the converted values by field name.

    Every field is converted with :meth:`Field.coerce`; a missing field takes its default or, if
    required, is a problem; fields the form does not have are problems. All problems are
    reported at once in one :class:`AnswerError`.
    """
    if not isinstance(data, dict):
        raise AnswerError(f"the answer must be a JSON object, got {_json_type(data)}")
    values, problems = {}, []
    for field in fields:
        if field.name in data:
            value = data[field.name]
        elif field.default is not None:
            value = field.default
        elif field.required:
            problems.append(f"field {field.name} is required")
            continue
        else:
            continue
        try:
            values[field.name] = field.coerce(value)
        except AnswerError as e:
            problems.append(str(e))
    known = [f.name for f in fields]
    for name in data:
        if name not in known:
            has = ", ".join(known) if known else None
            problems.append(
                f"unknown field {name}; the form has {has}" if has else f"unknown field {name}; the form has no fields"
            )
    if problems:
        raise AnswerError("; ".join(problems))
    return values


_NO = object()


def _convert(kind: FieldType, value: Any) -> Any:
    """The converted value, or ``_NO`` when it does not fit."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind in (FieldType.STRING, FieldType.SECURE_STRING):
        return value if isinstance(value, str) else _NO
    if kind is FieldType.BOOLEAN:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        return _NO
    if kind is FieldType.NUMBER:
        if is_number:
            return value
        return _parse_number(value.strip()) if isinstance(value, str) else _NO
    if kind is FieldType.INTEGER:
        # As in serde_json, 4096.0 is a float, not an integer.
        if is_number and isinstance(value, int):
            return value
        if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
            return int(value.strip())
        return _NO
    if kind is FieldType.DATE_TIME:
        return value if isinstance(value, str) and _is_rfc3339(value) else _NO
    return value  # FieldType.JSON


def _parse_number(text: str) -> Any:
    """Integers stay integers (``"4096"`` becomes ``4096``, not ``4096.0``); NaN and infinities fail."""
    if _INTEGER.fullmatch(text):
        return int(text)
    if _NUMBER.fullmatch(text):
        number = float(text)
        return number if math.isfinite(number) else _NO
    return _NO


def _is_rfc3339(text: str) -> bool:
    match = _RFC3339.fullmatch(text)
    if not match:
        return False
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    try:
        # RFC 3339 allows a leap second; datetime does not, and it changes no other check.
        datetime.datetime(year, month, day, hour, minute, min(second, 59))
    except ValueError:
        return False
    offset = match.group(8)
    return second <= 60 and (offset in "Zz" or (int(offset[1:3]) < 24 and int(offset[4:6]) < 60))


def _same(a: Any, b: Any) -> bool:
    """Equality that treats ``4096`` and ``4096.0`` as the same number, and ``true`` not as 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    return a == b


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
