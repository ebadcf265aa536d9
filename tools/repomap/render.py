"""Render chosen definitions as an outline: each file once, its definition lines in file order,
`⋮` where lines are skipped. Files come in order of their best definition's rank.

    tools/edit.py:
    ⋮
    │def unified_diff(rel: str, before: str, after: str) -> str:
    ⋮
    │def edit(ctx: ToolContext, args: EditArgs) -> EditResult:
"""

from __future__ import annotations

from tools.repomap.extract import FileTags


def render(chosen: list[tuple[str, str]], tags: dict[str, FileTags]) -> str:
    """chosen: (file, name) pairs, best first."""
    order: list[str] = []
    wanted: dict[str, set[str]] = {}
    for f, name in chosen:
        if f not in wanted:
            order.append(f)
            wanted[f] = set()
        wanted[f].add(name)
    return "".join(_file_block(f, wanted[f], tags[f]) for f in order)


def _file_block(path: str, names: set[str], tags: FileTags) -> str:
    keep: set[int] = set()
    for i, d in enumerate(tags.defs):
        if d[0] in names:
            while i >= 0 and i not in keep:  # the definition and the ones around it
                keep.add(i)
                i = tags.defs[i][3]
    rows = sorted({(tags.defs[i][1], tags.defs[i][2]) for i in keep})
    out, last = [f"{path}:\n"], -1
    for row, text in rows:
        if row != last + 1:
            out.append("⋮\n")
        out.append(f"│{text}\n")
        last = row
    out.append("⋮\n\n")
    return "".join(out)
