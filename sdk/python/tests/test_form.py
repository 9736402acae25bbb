"""Form fields and answers: the same conversions and messages as the Rust SDK's form.rs."""

import unittest

from weft_plugin import AnswerError, Field, FieldType, read_answer

FORM = [
    Field("Approved", FieldType.BOOLEAN, "Whether you approve"),
    Field("Comment", "string", required=False, default=""),
    Field("size", "integer", choices=[2048, 4096], default=2048),
    Field("ratio", "number", required=False),
    Field("when", "date-time", required=False),
    Field("token", "secure-string", required=False),
    Field("extra", "json", required=False),
]


def refusal(data, fields=FORM):
    with unittest.TestCase().assertRaises(AnswerError) as caught:
        read_answer(fields, data)
    return str(caught.exception)


class ReadAnswerTest(unittest.TestCase):
    def test_converts_text_forms_and_fills_defaults(self):
        values = read_answer(FORM, {"Approved": "True", "size": "4096", "ratio": " 1.5 ", "extra": [1]})
        self.assertEqual(values, {"Approved": True, "Comment": "", "size": 4096, "ratio": 1.5, "extra": [1]})
        self.assertIsInstance(values["size"], int)

    def test_integers_in_text_stay_integers(self):
        self.assertEqual(read_answer([Field("n", "number")], {"n": "4096"}), {"n": 4096})
        self.assertIsInstance(read_answer([Field("n", "number")], {"n": "4096"})["n"], int)

    def test_every_problem_at_once(self):
        self.assertEqual(
            refusal({"size": 1.5, "bogus": 1, "when": "tomorrow"}),
            "field Approved is required; field size: expected an integer, got 1.5; "
            "field when: expected an RFC 3339 date-time such as 2026-11-22T10:00:00Z, got \"tomorrow\"; "
            "unknown field bogus; the form has Approved, Comment, size, ratio, when, token, extra",
        )

    def test_choices_compare_numbers_by_value(self):
        self.assertEqual(read_answer([Field("n", "number", choices=[2048])], {"n": 2048.0}), {"n": 2048.0})
        self.assertEqual(refusal({"Approved": True, "size": 1024}), "field size: must be one of 2048, 4096")
        self.assertEqual(refusal({"c": "x"}, [Field("c", choices=["a", "b"])]), "field c: must be one of a, b")

    def test_secure_strings_are_never_echoed(self):
        message = refusal({"Approved": True, "token": 12345})
        self.assertEqual(message, "field token: expected a string, got a number")

    def test_booleans_are_not_numbers_and_back(self):
        self.assertEqual(refusal({"Approved": 1}), "field Approved: expected a boolean (true/false), got 1")
        self.assertEqual(refusal({"Approved": True, "ratio": True}), "field ratio: expected a number, got true")
        self.assertEqual(refusal({"Approved": True, "ratio": "nan"}), 'field ratio: expected a number, got "nan"')

    def test_date_times(self):
        field = Field("t", "date-time")
        for good in ("2026-11-22T10:00:00Z", "2026-11-22t10:00:00.123456789+05:30", "2026-12-31T23:59:60Z"):
            self.assertEqual(field.coerce(good), good)
        for bad in ("2026-11-22", "2026-11-22T10:00:00", "2026-02-30T10:00:00Z", "2026-11-22 10:00:00Z"):
            with self.assertRaises(AnswerError, msg=bad):
                field.coerce(bad)

    def test_not_an_object(self):
        self.assertEqual(refusal([1]), "the answer must be a JSON object, got an array")
        self.assertEqual(refusal({"a": 1}, []), "unknown field a; the form has no fields")

    def test_field_type_names(self):
        self.assertIs(Field("x", "secure-string").type, FieldType.SECURE_STRING)
        with self.assertRaises(ValueError):
            Field("x", "text")


if __name__ == "__main__":
    unittest.main()
