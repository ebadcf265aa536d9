"""Definitions and references of one source file, via tree-sitter queries.

FileTags.defs: [(name, line 0-based, the line's text, index of the enclosing definition or -1)],
in file order (a method's parent is its class, so the outline can show where it lives);
FileTags.refs: {name: how many times it is used}.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from tools.repomap.queries import EXTENSIONS, QUERIES

MAX_FILE_BYTES = 1_000_000  # generated or vendored giants say little about the design
MAX_LINE = 120  # characters of a definition line kept for the outline


@dataclass
class FileTags:
    defs: list[tuple[str, int, str, int]] = field(default_factory=list)
    refs: dict[str, int] = field(default_factory=dict)


def language_of(path: Path | str) -> str | None:
    return EXTENSIONS.get(Path(path).suffix.lower())


@cache
def _parser_and_query(lang: str):
    import tree_sitter
    from tree_sitter_language_pack import get_language, get_parser

    return get_parser(lang), tree_sitter.Query(get_language(lang), QUERIES[lang])


def extract(data: bytes, lang: str) -> FileTags:
    """The tags of source `data` written in `lang` (a key of QUERIES)."""
    import tree_sitter

    if len(data) > MAX_FILE_BYTES:
        return FileTags()
    parser, query = _parser_and_query(lang)
    tree = parser.parse(data)
    captures = tree_sitter.QueryCursor(query).captures(tree.root_node)
    lines = data.split(b"\n")
    tags = FileTags()
    seen: set[int] = set()  # a name node matched by two patterns is one definition
    open_defs: list[tuple[int, int]] = []  # (end byte, index) of definitions still open
    for node in sorted(captures.get("def", []), key=lambda n: n.start_byte):
        if node.start_byte in seen:
            continue
        seen.add(node.start_byte)
        while open_defs and open_defs[-1][0] <= node.start_byte:
            open_defs.pop()
        row = node.start_point[0]
        text = lines[row].decode("utf-8", errors="replace").rstrip()[:MAX_LINE]
        parent = open_defs[-1][1] if open_defs else -1
        tags.defs.append((node.text.decode("utf-8", errors="replace"), row, text, parent))
        whole = node.parent if node.parent is not None else node  # the definition's node
        open_defs.append((whole.end_byte, len(tags.defs) - 1))
    for node in captures.get("ref", []):
        if node.start_byte not in seen:
            name = node.text.decode("utf-8", errors="replace")
            tags.refs[name] = tags.refs.get(name, 0) + 1
    return tags


def extract_file(path: Path) -> FileTags:
    lang = language_of(path)
    if lang is None:
        return FileTags()
    try:
        return extract(path.read_bytes(), lang)
    except OSError:
        return FileTags()
