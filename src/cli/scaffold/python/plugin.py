"""{{name}}: a Weft step plugin."""

from dataclasses import dataclass, field

from weft_plugin import Complete, Step, export_step, log


@dataclass
class Input:
    """What the step needs."""

    name: str = field(metadata={"description": "Who to greet"})


@export_step
class Plugin(Step):
    summary = "Greets someone"
    # Input that does not fit fails the step before run: "invalid input: name: expected a string, got 5".
    Input = Input

    def run(self, ctx, input):
        log.info(f"greeting {input.name} (attempt {ctx.attempt})")
        return Complete({"greeting": f"hello {input.name}"})
