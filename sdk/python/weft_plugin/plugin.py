"""Steps and targets: the base classes a plugin subclasses, the one-call exports, and everything
between the host's JSON text and the author's class (parsing, typed input, exceptions), in plain
Python so that it is tested without WebAssembly. ``_component.py`` only maps WIT types to these.
"""

from __future__ import annotations

import json
import traceback
from typing import Any, Optional

from . import typed
from .host import log
from .outcome import (
    OUTCOMES,
    Answer,
    Context,
    Fail,
    InvalidAnswer,
    Outcome,
    ResumeEvent,
    TargetContext,
    TargetError,
)

STEP_WORLD = "step-plugin"
TARGET_WORLD = "target-plugin"


class Step:
    """A workflow step. Subclass it, set ``summary`` and ``Input``, and implement ``run``.

    - ``Input``: the input's type, usually a dataclass. Input that does not fit fails the step
      (not retryable) before ``run``, naming every offending field. ``None`` passes the JSON as is.
    - ``Output``: the output's type or a JSON Schema ``dict``, for ``describe`` only; default ``{}``.
    - ``State``: if set, the ``state`` given to ``resume`` is converted to this type.

    Each call gets a fresh instance: what a suspended step must remember goes into
    ``Suspend(state=...)``.
    """

    summary: str = ""
    Input: Any = None
    Output: Any = None
    State: Any = None

    def run(self, ctx: Context, input: Any) -> Outcome:
        raise NotImplementedError

    def resume(self, ctx: Context, state: Any, event: ResumeEvent) -> Outcome:
        return Fail("this step never waits, so it cannot be resumed")


class Target:
    """An action target. Subclass it, set ``summary`` and ``Config``, and implement ``handle``.

    - ``Config``: the type of the target's ``config`` (usually a dataclass); a config that does
      not fit fails the call before ``handle``. ``None`` passes the JSON as is.
    - ``Payload``: if set, the payload is converted to this type (a mismatch fails the call).
    - ``Output``: the type or JSON Schema of a returned payload, for ``describe`` only.

    ``handle`` returns ``None`` to leave the payload as it is, or a new payload (used by later
    targets when the target's type is ``call``); it raises :class:`TargetError` to refuse.
    """

    summary: str = ""
    Config: Any = None
    Payload: Any = None
    Output: Any = None

    def handle(self, ctx: TargetContext, config: Any, payload: Any) -> Any:
        raise NotImplementedError


_exported: Optional[tuple[str, type]] = None


def export_step(cls: type) -> type:
    """Makes ``cls`` (a :class:`Step` subclass) this component's step. Use it once, as a class
    decorator. Checks the class and derives its schemas now, so mistakes show at build time."""
    return _export(cls, Step, STEP_WORLD)


def export_target(cls: type) -> type:
    """Makes ``cls`` (a :class:`Target` subclass) this component's target, like :func:`export_step`."""
    return _export(cls, Target, TARGET_WORLD)


def exported() -> tuple[str, type]:
    """The world (``step-plugin`` or ``target-plugin``) and the class the plugin exported."""
    if _exported is None:
        raise LookupError("the plugin exports nothing: decorate its class with @export_step or @export_target")
    return _exported


def _export(cls: type, base: type, world: str) -> type:
    global _exported
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise TypeError(f"{cls!r} must be a subclass of weft_plugin.{base.__name__}")
    if _exported is not None and _exported[1] is not cls:
        raise TypeError(f"one plugin per component: {_exported[1].__name__} is exported already")
    describe(cls)
    _exported = (world, cls)
    return cls


def describe(cls: type) -> dict:
    """The plugin's contract as the WIT ``description`` record wants it, schemas as dicts."""
    summary = (cls.summary or (cls.__doc__ or "").strip().split("\n")[0]).strip()
    if not summary:
        raise TypeError(f"{cls.__name__} needs a summary: set summary = '...' or give it a docstring")
    if issubclass(cls, Target):
        return {
            "summary": summary,
            "input_schema": _schema(cls.Payload, "Payload"),
            "output_schema": _schema(cls.Output, "Output"),
            "config_schema": _schema(cls.Config, "Config"),
        }
    return {
        "summary": summary,
        "input_schema": _schema(cls.Input, "Input"),
        "output_schema": _schema(cls.Output, "Output"),
        "config_schema": None,
    }


def _schema(declared: Any, name: str) -> dict:
    if declared is None:
        return {}
    if isinstance(declared, dict):
        return declared
    try:
        return typed.json_schema(declared)
    except TypeError as e:
        raise TypeError(f"{name}: {e}") from None


def run_step(cls: type, ctx: Context, input_text: str) -> Outcome:
    """Parses and converts the input, then calls ``run``."""
    try:
        value = json.loads(input_text)
    except ValueError as e:
        return Fail(f"invalid input JSON: {e}")
    if cls.Input is not None:
        try:
            value = typed.convert(cls.Input, value)
        except typed.Invalid as e:
            return Fail(f"invalid input: {e}")
    return _call(cls, "run", ctx, value)


def resume_step(cls: type, ctx: Context, state_text: str, event: ResumeEvent) -> Outcome:
    """Parses the state (converting it to ``State`` if declared), then calls ``resume``.
    ``event`` is an :class:`Expired` or an :class:`Answer` whose ``data`` is still JSON text."""
    try:
        state = json.loads(state_text)
        if cls.State is not None:
            state = typed.convert(cls.State, state)
    except (ValueError, typed.Invalid) as e:
        return Fail(f"invalid state: {e}")
    if isinstance(event, Answer):
        try:
            data = json.loads(event.data)
        except ValueError as e:
            # The step keeps waiting, so whoever answered can try again.
            return InvalidAnswer(f"the answer data is not JSON: {e}")
        event = Answer(event.signal_type, event.answered_by, event.answered_at, data)
    return _call(cls, "resume", ctx, state, event)


def _call(cls: type, method: str, *args: Any) -> Outcome:
    try:
        outcome = getattr(cls(), method)(*args)
    except Exception as e:
        return _crashed(cls, method, e)
    if not isinstance(outcome, OUTCOMES):
        return Fail(
            f"{cls.__name__}.{method} returned {type(outcome).__name__}, not an outcome "
            "(Complete, Suspend, Fail, Reject or InvalidAnswer)"
        )
    return outcome


def _crashed(cls: type, method: str, e: Exception) -> Fail:
    # An exception is a bug rather than a passing fault, so it is not retried; the traceback
    # goes to the run's log, the message to whoever reads the failure.
    log.error("".join(traceback.format_exception(e)).rstrip())
    return Fail(f"{cls.__name__}.{method} raised {type(e).__name__}: {e}")


def handle_target(cls: type, ctx: TargetContext, envelope_text: str) -> Optional[str]:
    """Splits the host's ``{"config": ..., "payload": ...}`` envelope, converts both, calls
    ``handle`` and returns the new payload as JSON text (or ``None``). Raises :class:`TargetError`."""
    try:
        envelope = json.loads(envelope_text)
    except ValueError as e:
        raise TargetError(f"the host sent an envelope that is not JSON: {e}") from None
    if not isinstance(envelope, dict):
        raise TargetError("the host sent an envelope that is not a JSON object")
    config = envelope.get("config")
    config = {} if config is None else config
    payload = envelope.get("payload")
    if cls.Config is not None:
        config = _convert_for_target(cls.Config, config, "config")
    if cls.Payload is not None:
        payload = _convert_for_target(cls.Payload, payload, "payload")
    try:
        result = cls().handle(ctx, config, payload)
    except TargetError:
        raise
    except Exception as e:
        raise TargetError(_crashed(cls, "handle", e).message) from None
    if result is None:
        return None
    try:
        return typed.dump(result)
    except ValueError as e:
        raise TargetError(f"the payload {cls.__name__}.handle returned is {e}") from None


def _convert_for_target(declared: Any, value: Any, what: str) -> Any:
    try:
        return typed.convert(declared, value)
    except typed.Invalid as e:
        raise TargetError(f"invalid {what}: {e}") from None
