"""Run inside Aider's venv: apply each edit the way Aider's editblock coder does (read with
universal newlines, `do_replace`, write back) and report what happened.
stdin: JSON lines {"path", "old", "new"}; stdout: JSON lines {"applied": bool, "error": str}."""

import json
import sys

from aider.coders.editblock_coder import do_replace

FENCE = ("`" * 3, "`" * 3)

for line in sys.stdin:
    case = json.loads(line)
    try:
        with open(case["path"], encoding="utf-8") as f:  # Aider's InputOutput.read_text
            content = f.read()
        new_content = do_replace(case["path"], content, case["old"], case["new"], FENCE)
        if new_content:
            with open(case["path"], "w", encoding="utf-8") as f:  # InputOutput.write_text
                f.write(new_content)
        print(json.dumps({"applied": bool(new_content), "error": ""}), flush=True)
    except Exception as exc:  # Aider reports a failed edit; so do we
        print(json.dumps({"applied": False, "error": repr(exc)}), flush=True)
