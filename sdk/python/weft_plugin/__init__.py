"""Write a Weft step plugin, or an action target, in Python (``weft:plugin@0.2.0``).

A plugin module imports this package, defines one class and exports it::

    from dataclasses import dataclass
    from weft_plugin import Complete, Step, export_step, log

    @dataclass
    class Input:
        name: str

    @export_step
    class Greet(Step):
        summary = "Greets someone"
        Input = Input

        def run(self, ctx, input):
            log.info(f"greeting {input.name} (attempt {ctx.attempt})")
            return Complete({"greeting": f"hello {input.name}"})

Input that does not fit ``Input`` fails the step before ``run`` (``invalid input: name: expected a
string, got 5``), and ``describe()`` returns the JSON Schema derived from it. Build the module into
a component with ``sdk/python/build.sh PLUGIN_DIR OUT.wasm``.
"""

from .form import AnswerError, Field, FieldType, read_answer
from .host import log, secret
from .outcome import (
    Answer,
    Complete,
    Context,
    Expired,
    Fail,
    InvalidAnswer,
    Outcome,
    Reject,
    ResumeEvent,
    Suspend,
    TargetContext,
    TargetError,
)
from .plugin import Step, Target, export_step, export_target
from .typed import Invalid, convert, json_schema

__all__ = [
    "Answer",
    "AnswerError",
    "Complete",
    "Context",
    "Expired",
    "Fail",
    "Field",
    "FieldType",
    "Invalid",
    "InvalidAnswer",
    "Outcome",
    "Reject",
    "ResumeEvent",
    "Step",
    "Suspend",
    "Target",
    "TargetContext",
    "TargetError",
    "convert",
    "export_step",
    "export_target",
    "json_schema",
    "log",
    "read_answer",
    "secret",
]
