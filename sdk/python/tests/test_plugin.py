"""Steps and targets without WebAssembly: input checking, exceptions, resume, describe, exports."""

import json
import unittest
from dataclasses import dataclass, field
from typing import Literal

from weft_plugin import (
    Answer,
    Complete,
    Context,
    Expired,
    Fail,
    InvalidAnswer,
    Reject,
    Step,
    Suspend,
    Target,
    TargetContext,
    TargetError,
    export_step,
    export_target,
    host,
    log,
    plugin,
    secret,
)

CTX = Context("run-1", "wf", "Greet", 1, "alice")
TCTX = TargetContext("/v1.Executions/Start", "deny")


@dataclass
class Input:
    name: str
    expect_status: list[int] = field(default_factory=list)
    tone: Literal["warm", "dry"] = "warm"


@dataclass
class State:
    name: str


class Greet(Step):
    """Greets someone after a confirmation.

    More text that is not the summary.
    """

    Input = Input
    Output = {"type": "object"}
    State = State

    def run(self, ctx, input):
        if input.name == "boom":
            raise RuntimeError("kaboom")
        if input.name == "dict":
            return {"not": "an outcome"}
        log.info(f"asking about {input.name}")
        return Suspend("Greet?", state=State(input.name))

    def resume(self, ctx, state, event):
        if isinstance(event, Expired):
            return Fail("expired")
        if event.data.get("ok") is True:
            return Complete({"greeting": f"hello {state.name}", "by": event.answered_by})
        if event.data.get("ok") is False:
            return Reject({"by": event.answered_by})
        return InvalidAnswer("say ok: true or false")


@dataclass
class Config:
    deny: list[str] = field(default_factory=list)
    status: int = field(default=403, metadata={"minimum": 400, "maximum": 499})


class Deny(Target):
    summary = "Refuses listed users"
    Config = Config

    def handle(self, ctx, config, payload):
        user = (payload or {}).get("user")
        if user in config.deny:
            raise TargetError(f"{user} may not call {ctx.trigger}", status=config.status)
        if user == "crash":
            return 1 / 0
        if user == "rewrite":
            return {"user": user, "checked_by": ctx.target}
        return None


def answer(data, by="bob"):
    return Answer("Confirmation", by, "2026-11-22T10:00:00Z", json.dumps(data))


class StepTest(unittest.TestCase):
    def setUp(self):
        self.lines = []
        host.bind(lambda level, message: self.lines.append((level, message)), {"token": "s3cret"}.get)

    def test_run_gets_typed_input(self):
        outcome = plugin.run_step(Greet, CTX, '{"name": "Ada"}')
        self.assertEqual(outcome, Suspend("Greet?", state=State("Ada")))
        self.assertEqual(self.lines, [("info", "asking about Ada")])

    def test_input_that_does_not_fit_fails_naming_the_field(self):
        outcome = plugin.run_step(Greet, CTX, '{"name": "Ada", "expect_status": 201}')
        self.assertEqual(outcome, Fail("invalid input: expect_status: expected a list of integers, got 201"))
        self.assertFalse(outcome.retryable)
        self.assertEqual(
            plugin.run_step(Greet, CTX, '{"tone": "loud"}'),
            Fail('invalid input: name: missing required field; tone: expected one of "warm", "dry", got "loud"'),
        )
        self.assertTrue(plugin.run_step(Greet, CTX, "{nope").message.startswith("invalid input JSON: "))

    def test_exceptions_and_non_outcomes_fail_the_step(self):
        outcome = plugin.run_step(Greet, CTX, '{"name": "boom"}')
        self.assertEqual(outcome, Fail("Greet.run raised RuntimeError: kaboom"))
        self.assertEqual(self.lines[0][0], "error")
        self.assertIn("Traceback", self.lines[0][1])
        self.assertIn("returned dict, not an outcome", plugin.run_step(Greet, CTX, '{"name": "dict"}').message)

    def test_resume_with_typed_state(self):
        state = '{"name": "Ada"}'
        self.assertEqual(
            plugin.resume_step(Greet, CTX, state, answer({"ok": True})),
            Complete({"greeting": "hello Ada", "by": "bob"}),
        )
        self.assertEqual(plugin.resume_step(Greet, CTX, state, answer({"ok": False})), Reject({"by": "bob"}))
        self.assertEqual(plugin.resume_step(Greet, CTX, state, answer({})), InvalidAnswer("say ok: true or false"))
        self.assertEqual(plugin.resume_step(Greet, CTX, state, Expired()), Fail("expired"))

    def test_resume_refuses_bad_state_and_non_json_answers(self):
        self.assertEqual(
            plugin.resume_step(Greet, CTX, '{"nom": 1}', Expired()),
            Fail("invalid state: name: missing required field; nom: unknown field; expected name"),
        )
        bad = Answer("Confirmation", "bob", "2026-11-22T10:00:00Z", "{")
        self.assertTrue(plugin.resume_step(Greet, CTX, '{"name": "Ada"}', bad).message.startswith("the answer data is not JSON"))

    def test_default_resume_fails(self):
        class Once(Step):
            summary = "never waits"

            def run(self, ctx, input):
                return Complete(input)

        self.assertEqual(plugin.run_step(Once, CTX, "[1]"), Complete([1]))
        self.assertEqual(plugin.resume_step(Once, CTX, "null", Expired()).message, "this step never waits, so it cannot be resumed")

    def test_log_and_secret(self):
        log.warn("careful")
        self.assertEqual(self.lines, [("warn", "careful")])
        self.assertEqual(secret("token"), "s3cret")
        self.assertIsNone(secret("other"))


class DescribeTest(unittest.TestCase):
    def test_step(self):
        d = plugin.describe(Greet)
        self.assertEqual(d["summary"], "Greets someone after a confirmation.")
        self.assertEqual(d["input_schema"]["required"], ["name"])
        self.assertEqual(d["output_schema"], {"type": "object"})
        self.assertIsNone(d["config_schema"])

    def test_target(self):
        d = plugin.describe(Deny)
        self.assertEqual(d["input_schema"], {})
        self.assertEqual(d["config_schema"]["properties"]["status"]["maximum"], 499)

    def test_needs_a_summary(self):
        class Mute(Step):
            pass

        with self.assertRaisesRegex(TypeError, "Mute needs a summary"):
            plugin.describe(Mute)


class ExportTest(unittest.TestCase):
    def setUp(self):
        plugin._exported = None

    tearDown = setUp

    def test_export_once(self):
        self.assertIs(export_step(Greet), Greet)
        self.assertEqual(plugin.exported(), ("step-plugin", Greet))
        with self.assertRaisesRegex(TypeError, "one plugin per component"):
            export_target(Deny)

    def test_export_checks_the_class(self):
        with self.assertRaisesRegex(TypeError, "subclass of weft_plugin.Target"):
            export_target(Greet)
        with self.assertRaises(LookupError):
            plugin.exported()


class TargetTest(unittest.TestCase):
    def setUp(self):
        host.bind(lambda level, message: None, lambda name: None)

    def handle(self, config, payload):
        return plugin.handle_target(Deny, TCTX, json.dumps({"config": config, "payload": payload}))

    def test_passes_or_replaces_the_payload(self):
        self.assertIsNone(self.handle(None, {"user": "ada"}))
        self.assertEqual(self.handle({}, {"user": "rewrite"}), '{"user":"rewrite","checked_by":"deny"}')

    def test_refusal_carries_the_status(self):
        with self.assertRaises(TargetError) as caught:
            self.handle({"deny": ["mallory"], "status": 451}, {"user": "mallory"})
        self.assertEqual((caught.exception.message, caught.exception.status), ("mallory may not call /v1.Executions/Start", 451))

    def test_invalid_config_and_crashes(self):
        with self.assertRaisesRegex(TargetError, r"^invalid config: status: must be at most 499, got 500$"):
            self.handle({"status": 500}, {})
        with self.assertRaisesRegex(TargetError, "Deny.handle raised ZeroDivisionError"):
            self.handle({}, {"user": "crash"})
        with self.assertRaisesRegex(TargetError, "not JSON"):
            plugin.handle_target(Deny, TCTX, "nope")


if __name__ == "__main__":
    unittest.main()
