"""python-greeter: greets someone once a person confirms the greeting.

Input: {"name": "Ada", "greeting": "hello", "confirm_by": ["alice"], "expires_in": 3600}
(only name is required). The step suspends with a Confirmation form of Confirm (boolean) and
Comment (optional string): yes completes with {"greeting": "hello Ada", "confirmed_by": ...},
no rejects the run, and an answer that does not fit the form is refused and the step keeps
waiting.
"""

from dataclasses import dataclass, field
from typing import Literal, Optional

from weft_plugin import (
    AnswerError,
    Complete,
    Expired,
    Fail,
    Field,
    InvalidAnswer,
    Reject,
    Step,
    Suspend,
    export_step,
    log,
    read_answer,
    secret,
)

SIGNAL = "Confirmation"
FORM = [
    Field("Confirm", "boolean", "Send this greeting?"),
    Field("Comment", "string", "Why (optional)", required=False, default=""),
]


@dataclass
class Input:
    """Who to greet, and who confirms the greeting."""

    name: str = field(metadata={"description": "Who to greet"})
    greeting: Literal["hello", "good morning", "welcome"] = "hello"
    confirm_by: list[str] = field(
        default_factory=list,
        metadata={"description": "Who may confirm: user names or group:NAME; empty means anyone"},
    )
    expires_in: Optional[int] = field(
        default=None, metadata={"minimum": 1, "description": "Seconds to wait for the confirmation"}
    )


@dataclass
class Output:
    greeting: str
    confirmed_by: str
    comment: str


@dataclass
class Pending:
    """What the step remembers while it waits."""

    greeting: str


@export_step
class Greeter(Step):
    summary = "Greets someone once a person confirms the greeting"
    Input = Input
    Output = Output
    State = Pending

    def run(self, ctx, input):
        text = f"{input.greeting} {input.name}"
        log.info(f"asking to confirm \"{text}\" (run {ctx.run_id}, attempt {ctx.attempt})")
        if secret("greeter_signature") is None:
            log.debug("no greeter_signature secret granted; greeting unsigned")
        return Suspend(
            prompt=f"Send the greeting \"{text}\"?",
            fields=FORM,
            assignees=input.confirm_by,
            signal_types=[SIGNAL],
            expires_in=input.expires_in,
            state=Pending(text),
        )

    def resume(self, ctx, state, event):
        if isinstance(event, Expired):
            return Fail("nobody confirmed the greeting in time")
        try:
            answer = read_answer(FORM, event.data)
        except AnswerError as e:
            return InvalidAnswer(str(e))
        if not answer["Confirm"]:
            log.info(f"{event.answered_by} declined the greeting")
            return Reject({"confirmed": False, "by": event.answered_by, "comment": answer["Comment"]})
        return Complete(Output(state.greeting, event.answered_by, answer["Comment"]))
