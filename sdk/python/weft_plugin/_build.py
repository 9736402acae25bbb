"""Build step run by ``build.sh`` with the machine's own Python, before componentize-py: imports
the plugin module to find what it exports (a step or a target), checks that its schemas derive,
and writes the component's entry module. Mistakes thus show in a second, not after a build.

Usage: ``python3 -m weft_plugin._build PLUGIN_DIR ENTRY_DIR``; prints the WIT world's name.
"""

import importlib
import json
import sys
from pathlib import Path

from . import plugin

MODULE = "plugin"
ENTRY = "weft_entry"


def main(plugin_dir: str, entry_dir: str) -> None:
    source = Path(plugin_dir) / f"{MODULE}.py"
    if not source.is_file():
        sys.exit(f"error: {source} not found: a Python plugin's module is {MODULE}.py in its folder")
    sys.path.insert(0, plugin_dir)
    try:
        importlib.import_module(MODULE)
        world, cls = plugin.exported()
        description = plugin.describe(cls)
    except Exception as e:
        sys.exit(f"error: {source}: {type(e).__name__}: {e}")
    exports = "Step, Describe" if world == plugin.STEP_WORLD else "Target, Describe"
    Path(entry_dir, f"{ENTRY}.py").write_text(
        "# Written by weft_plugin._build: the plugin registers its class, the glue exports it.\n"
        f"import {MODULE}  # noqa: F401\n"
        f"from weft_plugin._component import {exports}  # noqa: F401\n"
    )
    print(f"{cls.__name__}: {description['summary']}", file=sys.stderr)
    print(f"  input schema: {json.dumps(description['input_schema'])[:200]}", file=sys.stderr)
    print(world)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python3 -m weft_plugin._build PLUGIN_DIR ENTRY_DIR")
    main(sys.argv[1], sys.argv[2])
