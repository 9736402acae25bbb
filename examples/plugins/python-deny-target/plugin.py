"""python-deny-target: an action target that refuses API calls by listed users.

Config: {"deny": ["mallory"], "status": 403}. The payload is what triggered the call; a payload
whose user (``payload.user`` or ``payload.request.user``) is listed is refused with ``status``,
anything else passes unchanged.
"""

from dataclasses import dataclass, field

from weft_plugin import Target, TargetError, export_target, log


@dataclass
class Config:
    """Who may not call the API."""

    deny: list[str] = field(default_factory=list, metadata={"description": "User names to refuse"})
    status: int = field(default=403, metadata={"minimum": 400, "maximum": 499, "description": "HTTP status of a refusal"})


def user_of(payload):
    if not isinstance(payload, dict):
        return None
    request = payload.get("request")
    return payload.get("user") or (request.get("user") if isinstance(request, dict) else None)


@export_target
class DenyUsers(Target):
    summary = "Refuses API calls by listed users"
    Config = Config

    def handle(self, ctx, config, payload):
        user = user_of(payload)
        if user in config.deny:
            log.warn(f"{ctx.target}: refused {user} for {ctx.trigger}")
            raise TargetError(f"{user} may not call {ctx.trigger}", status=config.status)
        return None
