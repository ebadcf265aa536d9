"""Run inside Aider's venv: build Aider's repo map of ROOT and print timings as JSON.
argv: ROOT MAP_TOKENS; stdin: JSON list of repository-relative files. Token counting uses the
same estimate as flashcode (4 characters a token) so no tokenizer download is needed."""

import json
import sys
import time
from pathlib import Path

from aider.io import InputOutput
from aider.repomap import RepoMap


class Model:
    def token_count(self, text):
        return len(text) / 4


def main():
    root, budget = Path(sys.argv[1]), int(sys.argv[2])
    files = [str(root / f) for f in json.loads(sys.stdin.read())]
    io = InputOutput(pretty=False, yes=True, fancy_input=False)
    t0 = time.perf_counter()
    rm = RepoMap(map_tokens=budget, root=str(root), main_model=Model(), io=io)
    text = rm.get_repo_map([], files) or ""
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "chars": len(text), "lines": text.count("\n")}))


main()
