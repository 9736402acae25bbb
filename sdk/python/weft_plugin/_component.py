"""The component's WIT exports for componentize-py: maps the generated bindings (``wit_world``)
to and from :mod:`weft_plugin.plugin`, which does the work. Imported only by the entry module the
build writes, inside the component; plugin code and tests never import it.
"""

from componentize_py_types import Err
from wit_world.exports import describe as wit_describe
from wit_world.imports import host, types

from . import host as sdk_host
from . import plugin, typed
from .form import FieldType
from .outcome import (
    Answer,
    Complete,
    Context,
    Expired,
    Fail,
    InvalidAnswer,
    Reject,
    Suspend,
    TargetContext,
    TargetError,
)

_LEVELS = {name: getattr(host.Level, name.upper()) for name in sdk_host.LEVELS}
_FIELD_TYPES = {t: getattr(types.FieldType, t.name) for t in FieldType}

sdk_host.bind(lambda level, message: host.log(_LEVELS[level], message), host.secret)


class Describe:
    def describe(self) -> wit_describe.Description:
        d = plugin.describe(plugin.exported()[1])
        config = d["config_schema"]
        return wit_describe.Description(
            summary=d["summary"],
            input_schema=typed.dump(d["input_schema"]),
            output_schema=typed.dump(d["output_schema"]),
            config_schema=None if config is None else typed.dump(config),
        )


class Step:
    def run(self, ctx: types.StepContext, input: str) -> types.StepOutcome:
        return _outcome(plugin.run_step(plugin.exported()[1], _context(ctx), input))

    def resume(self, ctx: types.StepContext, state: str, event: types.ResumeEvent) -> types.StepOutcome:
        if isinstance(event, types.ResumeEvent_Answer):
            a = event.value
            sdk_event = Answer(a.signal_type, a.answered_by, a.answered_at, a.data)
        else:
            sdk_event = Expired()
        return _outcome(plugin.resume_step(plugin.exported()[1], _context(ctx), state, sdk_event))


class Target:
    def handle(self, ctx: types.TargetContext, payload: str):
        try:
            return plugin.handle_target(plugin.exported()[1], TargetContext(ctx.trigger, ctx.target), payload)
        except TargetError as e:
            raise Err(types.TargetError(message=e.message, status=e.status))


def _context(ctx: types.StepContext) -> Context:
    return Context(ctx.run_id, ctx.workflow, ctx.step, ctx.attempt, ctx.started_by)


def _outcome(outcome) -> types.StepOutcome:
    try:
        return _encode(outcome)
    except ValueError as e:
        return types.StepOutcome_Fail(types.StepError(message=f"the step's {type(outcome).__name__} is {e}", retryable=False))


def _encode(outcome) -> types.StepOutcome:
    if isinstance(outcome, Complete):
        return types.StepOutcome_Complete(typed.dump(outcome.output))
    if isinstance(outcome, Suspend):
        expires = outcome.expires_in
        if expires is not None and (not isinstance(expires, int) or isinstance(expires, bool) or expires < 0):
            raise ValueError(f"expires_in must be whole seconds (an int >= 0) or None, not {expires!r}")
        return types.StepOutcome_Suspend(
            types.InteractionRequest(
                prompt=outcome.prompt,
                fields=[_field(f) for f in outcome.fields],
                assignees=list(outcome.assignees),
                signal_types=list(outcome.signal_types),
                expires_in=outcome.expires_in,
                state=typed.dump(outcome.state),
            )
        )
    if isinstance(outcome, Fail):
        return types.StepOutcome_Fail(types.StepError(message=outcome.message, retryable=outcome.retryable))
    if isinstance(outcome, Reject):
        return types.StepOutcome_Reject(typed.dump(outcome.decision))
    if isinstance(outcome, InvalidAnswer):
        return types.StepOutcome_InvalidAnswer(outcome.message)
    raise ValueError(f"not an outcome: {outcome!r}")


def _field(f) -> types.Field:
    return types.Field(
        name=f.name,
        type=_FIELD_TYPES[f.type],
        description=f.description,
        required=f.required,
        choices=[typed.dump(c) for c in f.choices],
        default=None if f.default is None else typed.dump(f.default),
    )
