"""Typed input: conversion with paths in every message, and the JSON Schemas derived from hints."""

import enum
import unittest
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from weft_plugin.typed import Invalid, convert, describe, dump, json_schema


@dataclass
class Check:
    url: str
    expect_status: list[int] = field(default_factory=lambda: [200])
    method: Literal["GET", "POST"] = "GET"
    timeout: float = 10.0
    headers: dict[str, str] = field(default_factory=dict)
    retries: Optional[int] = None


@dataclass
class Approver:
    name: str
    weight: int = field(default=1, metadata={"minimum": 1, "maximum": 10, "description": "Votes"})


@dataclass
class Request:
    """An approval request."""

    title: str
    approvers: list[Approver]
    urgent: bool = False
    extra: Any = None


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass
class Positive:
    n: int

    def __post_init__(self):
        if self.n <= 0:
            raise ValueError(f"n must be positive, got {self.n}")


@dataclass
class Node:
    children: "list[Node]"


def problems(tp, value):
    try:
        convert(tp, value)
    except Invalid as e:
        return e.problems
    raise AssertionError(f"{value!r} was accepted as {tp!r}")


class ConvertTest(unittest.TestCase):
    def test_converts_with_defaults(self):
        check = convert(Check, {"url": "https://x", "expect_status": [200, 201.0], "timeout": 3})
        self.assertEqual(check, Check("https://x", [200, 201], "GET", 3.0, {}, None))
        self.assertIsInstance(check.expect_status[1], int)
        self.assertIsInstance(check.timeout, float)

    def test_names_the_field_and_the_expected_type(self):
        self.assertEqual(
            problems(Check, {"url": "u", "expect_status": 201}),
            ["expect_status: expected a list of integers, got 201"],
        )

    def test_reports_every_problem_with_its_path(self):
        got = problems(
            Request,
            {"approvers": [{"name": "a"}, {"name": 5, "weight": 0}, "bob"], "urgent": "yes", "colour": 1},
        )
        self.assertEqual(
            got,
            [
                "title: missing required field",
                "approvers[1].name: expected a string, got 5",
                "approvers[1].weight: must be at least 1, got 0",
                'approvers[2]: expected an object, got "bob"',
                'urgent: expected a boolean, got "yes"',
                "colour: unknown field; expected title, approvers, urgent, extra",
            ],
        )

    def test_strict_scalars(self):
        self.assertEqual(problems(int, True), ["expected an integer, got true"])
        self.assertEqual(problems(int, 1.5), ["expected an integer, got 1.5"])
        self.assertEqual(problems(float, "1"), ['expected a number, got "1"'])
        self.assertEqual(problems(str, None), ["expected a string, got null"])

    def test_literal_enum_and_optional(self):
        self.assertEqual(problems(Check, {"url": "u", "method": "PUT"}), ['method: expected one of "GET", "POST", got "PUT"'])
        self.assertIs(convert(Color, "red"), Color.RED)
        self.assertEqual(problems(Color, "green"), ['expected one of "red", "blue", got "green"'])
        self.assertIsNone(convert(Check, {"url": "u", "retries": None}).retries)
        self.assertEqual(problems(Check, {"url": "u", "retries": "3"}), ['retries: expected an integer, got "3"'])
        self.assertEqual(problems(int | str, [1]), ["expected an integer or a string, got [1]"])

    def test_dict_values_and_post_init(self):
        self.assertEqual(problems(Check, {"url": "u", "headers": {"a": 1}}), ["headers.a: expected a string, got 1"])
        self.assertEqual(problems(list[Positive], [{"n": 1}, {"n": -2}]), ["[1]: n must be positive, got -2"])

    def test_top_level_mismatch(self):
        self.assertEqual(problems(Check, [1, 2]), ["expected an object, got [1,2]"])

    def test_long_values_are_cut(self):
        (problem,) = problems(int, "x" * 500)
        self.assertLess(len(problem), 100)
        self.assertTrue(problem.endswith("…"))

    def test_describe(self):
        self.assertEqual(describe(list[list[str]]), "a list of lists of strings")
        self.assertEqual(describe(Optional[int]), "an integer or null")


class SchemaTest(unittest.TestCase):
    def test_dataclass_schema(self):
        self.assertEqual(
            json_schema(Request),
            {
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "description": "An approval request.",
                "properties": {
                    "title": {"type": "string"},
                    "approvers": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "name": {"type": "string"},
                                "weight": {
                                    "type": "integer",
                                    "description": "Votes",
                                    "minimum": 1,
                                    "maximum": 10,
                                    "default": 1,
                                },
                            },
                            "required": ["name"],
                            "additionalProperties": False,
                        },
                    },
                    "urgent": {"type": "boolean", "default": False},
                    "extra": {"default": None},
                },
                "required": ["title", "approvers"],
                "additionalProperties": False,
            },
        )

    def test_scalars_choices_and_optionals(self):
        schema = json_schema(Check)["properties"]
        self.assertEqual(schema["expect_status"], {"type": "array", "items": {"type": "integer"}, "default": [200]})
        self.assertEqual(schema["method"], {"enum": ["GET", "POST"], "default": "GET"})
        self.assertEqual(schema["headers"], {"type": "object", "additionalProperties": {"type": "string"}, "default": {}})
        self.assertEqual(schema["retries"], {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None})
        self.assertEqual(json_schema(Color)["enum"], ["red", "blue"])

    def test_optional_without_default_is_not_required(self):
        @dataclass
        class Opt:
            a: Optional[str]

        self.assertNotIn("required", json_schema(Opt))
        self.assertEqual(convert(Opt, {}), Opt(None))

    def test_unsupported_types_name_the_field(self):
        @dataclass
        class Bad:
            when: set[int]

        with self.assertRaisesRegex(TypeError, r"^when: type set\[int\] is not supported"):
            json_schema(Bad)

    def test_recursive_dataclass_is_refused(self):
        with self.assertRaisesRegex(TypeError, "recursive"):
            json_schema(Node)


class DumpTest(unittest.TestCase):
    def test_dataclasses_and_enums(self):
        self.assertEqual(dump(Approver("a")), '{"name":"a","weight":1}')
        self.assertEqual(dump({"c": Color.BLUE, "t": (1, 2)}), '{"c":"blue","t":[1,2]}')

    def test_refuses_what_json_cannot_carry(self):
        with self.assertRaisesRegex(ValueError, "not JSON"):
            dump(float("nan"))
        with self.assertRaisesRegex(ValueError, "not JSON"):
            dump({"x": object()})


if __name__ == "__main__":
    unittest.main()
