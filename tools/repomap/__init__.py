"""The repository map: tree-sitter definitions and references (extract), cached per file
(cache), ranked by personalized PageRank (rank), fitted to a token budget (fit), rendered as an
outline (render); `tool.py` registers the `repomap` tool."""
