"""The values that cross between a plugin and the host: contexts, outcomes, resume events and
target errors, as plain Python classes (the WIT records of ``weft:plugin/types@0.2.0``)."""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, Union

from .form import Field


@dataclasses.dataclass(frozen=True)
class Context:
    """Where a step call happens."""

    run_id: str  #: The run (execution) id, a UUID.
    workflow: str  #: The workflow id the run belongs to.
    step: str  #: The step's unique name within the workflow.
    attempt: int  #: 1 for the first attempt, 2 for the first retry, and so on.
    started_by: str  #: Who started the run (user name).


@dataclasses.dataclass(frozen=True)
class TargetContext:
    """What triggered a target call, and which target is called."""

    trigger: str  #: The event (``execution.completed``) or API operation (``/v1.Executions/Start``).
    target: str  #: The target's configured name.


@dataclasses.dataclass
class Complete:
    """The step is done; ``output`` (JSON data or a dataclass) becomes ``steps.<name>.output``."""

    output: Any = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Suspend:
    """The step waits for a person. ``state`` (JSON data or a dataclass) comes back to ``resume``
    unchanged; the instance does not survive the wait. ``expires_in`` is in seconds; ``None``
    waits forever. ``assignees`` empty means anyone may answer."""

    prompt: str
    fields: list[Field] = dataclasses.field(default_factory=list)
    assignees: list[str] = dataclasses.field(default_factory=list)
    signal_types: list[str] = dataclasses.field(default_factory=list)
    expires_in: Optional[int] = None
    state: Any = None


@dataclasses.dataclass
class Fail:
    """The step failed. The host retries it only if ``retryable``."""

    message: str
    retryable: bool = False


@dataclasses.dataclass
class Reject:
    """A person said no; ``decision`` is kept as the step's output and the run is rejected."""

    decision: Any = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class InvalidAnswer:
    """Only from ``resume``: the answer is refused, the step keeps waiting with its earlier state,
    and ``message`` goes back to whoever answered."""

    message: str


Outcome = Union[Complete, Suspend, Fail, Reject, InvalidAnswer]
OUTCOMES = (Complete, Suspend, Fail, Reject, InvalidAnswer)


@dataclasses.dataclass(frozen=True)
class Answer:
    """Someone answered a suspended step. ``data`` is the answer's JSON object, unchecked: use
    :func:`weft_plugin.read_answer` to check it against the form."""

    signal_type: str
    answered_by: str  #: Established by the host, never taken from ``data``.
    answered_at: str  #: RFC 3339.
    data: Any


@dataclasses.dataclass(frozen=True)
class Expired:
    """The interaction's ``expires_in`` passed without a final answer."""


ResumeEvent = Union[Answer, Expired]


class TargetError(Exception):
    """Raised by ``Target.handle`` to refuse or fail. ``status`` (a 4xx) is what an API caller
    gets when a request target interrupts."""

    def __init__(self, message: str, status: Optional[int] = None):
        super().__init__(message)
        self.message = message
        self.status = status
