"""`repomap`: an outline of the repository's most relevant definitions within a token budget."""

from __future__ import annotations

import re
import time

from pydantic import BaseModel, Field

from tools.base import ToolContext, register
from tools.repomap.cache import TagCache
from tools.repomap.extract import language_of
from tools.repomap.fit import estimate_tokens, fit
from tools.repomap.rank import rank
from tools.state import private_dir
from tools.walk import walk_files


class RepomapArgs(BaseModel):
    files: list[str] = Field(default_factory=list,
                             description="files in play (being read or edited): the map "
                                         "favours what they use and what uses them")
    names: list[str] = Field(default_factory=list,
                             description="identifiers in play, e.g. from the task")
    max_tokens: int = Field(2048, ge=16, le=100_000)
    path: str = Field(".", description="map only this directory")


class RepomapResult(BaseModel):
    map: str
    files_total: int  # source files seen
    definitions_shown: int
    tokens: int  # estimated
    parsed: int  # files (re)parsed this time; the rest came from the cache
    seconds: float


def build_map(ctx: ToolContext, args: RepomapArgs, cache: TagCache | None = None
              ) -> RepomapResult:
    t0 = time.perf_counter()
    start = ctx.resolve(args.path, must_exist=True)
    rels = [p.relative_to(ctx.root).as_posix() for p in walk_files(ctx.root, start)
            if language_of(p) is not None]
    cache = cache or TagCache(private_dir(ctx.root, "cache") / "repomap.pkl")
    parsed_before = cache.parsed
    tags = cache.tags(ctx.root, rels)
    cache.save()
    focus = {ctx.rel(ctx.resolve(f)) for f in args.files}
    names = set(args.names)
    for f in focus:  # words of the files' names are in play too (aider's heuristic)
        names.update(w for w in re.split(r"[^A-Za-z0-9_]+", f) if len(w) > 2)
    # a definition renders to at least one token, so more than max_tokens never fit
    in_focus = sum(len(tags[f].defs) for f in focus if f in tags)
    ranked = rank(tags, focus, names, limit=args.max_tokens + in_focus)
    chosen = [(f, n) for _, f, n in ranked.defs if f not in focus]
    text, shown = fit(chosen, tags, args.max_tokens)
    return RepomapResult(map=text, files_total=len(rels), definitions_shown=shown,
                         tokens=estimate_tokens(text), parsed=cache.parsed - parsed_before,
                         seconds=round(time.perf_counter() - t0, 3))


@register("repomap", RepomapArgs, "read")
def repomap(ctx: ToolContext, args: RepomapArgs) -> RepomapResult:
    return build_map(ctx, args)
