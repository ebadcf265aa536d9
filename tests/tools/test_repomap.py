"""repomap: extraction per language, ranking around the files in play, budget, cache."""

from __future__ import annotations

import os
import subprocess

import pytest

from tools.base import PathOutsideRepoError, ToolContext, call
from tools.repomap.extract import extract
from tools.repomap.fit import estimate_tokens

SAMPLES = {
    "python": ("class Store(Base):\n    def load(self, key: Key):\n        return fetch(key)\n",
               {"Store", "load"}, {"fetch", "Base", "Key"}),
    "javascript": ("class Cart {\n  total() { return sum(this.items); }\n}\n"
                   "function checkout(c) { return new Receipt(c.total()); }\n"
                   "const pay = (x) => charge(x);\n",
                   {"Cart", "total", "checkout", "pay"}, {"sum", "Receipt", "charge"}),
    "typescript": ("interface Shape { area(): number }\ntype Id = string;\n"
                   "class Circle implements Shape {\n  area(): number { return calc(this); }\n}\n"
                   "function make(id: Id): Shape { return new Circle(); }\n",
                   {"Shape", "Id", "Circle", "area", "make"}, {"calc", "Circle"}),
    "go": ("package m\ntype Server struct{}\nfunc (s *Server) Serve() error { return listen() }\n"
           "func New() *Server { return &Server{} }\n",
           {"Server", "Serve", "New"}, {"listen"}),
    "rust": ("struct Pool;\ntrait Run { fn run(&self); }\nimpl Run for Pool {\n"
             "    fn run(&self) { spawn(); helper::go(); }\n}\nfn main() { println!(\"x\"); }\n",
             {"Pool", "Run", "run", "main"}, {"spawn", "go", "println"}),
    "java": ("class Account {\n  Account() {}\n  void deposit(int x) { log(x); "
             "new Ledger(); }\n}\ninterface Ledgered {}\n",
             {"Account", "deposit", "Ledgered"}, {"log", "Ledger"}),
    "c": ("struct node { int v; };\ntypedef struct node node_t;\n"
          "static int count(node_t *n) { return walk(n); }\n#define MAX(a,b) ((a)>(b)?(a):(b))\n",
          {"node", "node_t", "count", "MAX"}, {"walk", "node_t"}),
    "cpp": ("namespace app {\nclass Widget {\n public:\n  void draw();\n};\n"
            "void Widget::draw() { paint(); canvas.flush(); }\n}\n",
            {"app", "Widget", "draw"}, {"paint", "flush"}),
    "ruby": ("module Billing\n  class Invoice\n    def total\n      compute(Tax)\n    end\n"
             "    def self.build; end\n  end\nend\n",
             {"Billing", "Invoice", "total", "build"}, {"compute", "Tax"}),
}


@pytest.mark.parametrize("lang", sorted(SAMPLES))
def test_extract_each_language(lang):
    src, defs, refs = SAMPLES[lang]
    tags = extract(src.encode(), lang)
    got_defs = {d[0] for d in tags.defs}
    assert defs <= got_defs, (lang, got_defs)
    assert refs <= set(tags.refs), (lang, tags.refs)
    for name, row, text, parent in tags.defs:
        assert name in text and text == src.split("\n")[row].rstrip()
        assert parent < len(tags.defs)


def test_methods_know_their_class():
    src = "class A:\n    def f(self):\n        pass\n\ndef g():\n    pass\n"
    tags = extract(src.encode(), "python")
    assert [(n, parent) for n, _, _, parent in tags.defs] == [("A", -1), ("f", 0), ("g", -1)]


def _project(repo):
    (repo / "pkg").mkdir()
    (repo / "pkg" / "db.py").write_text(
        "class Database:\n    def connect_pool(self):\n        pass\n\n"
        "def open_database_connection():\n    return Database()\n")
    (repo / "pkg" / "api.py").write_text(
        "from pkg.db import open_database_connection\n\n"
        "def handle_request():\n    return open_database_connection().connect_pool()\n")
    (repo / "pkg" / "colors.py").write_text("def paint_rainbow_colors():\n    return 7\n")
    (repo / "pkg" / "cli.ts").write_text("export function runCommandLine() { main(); }\n")
    (repo / "vendor").mkdir()
    (repo / "vendor" / "big.py").write_text("def vendored_thing():\n    pass\n")
    (repo / ".gitignore").write_text("vendor/\n")


def test_map_favours_what_the_files_in_play_use(git_repo):
    _project(git_repo)
    ctx = ToolContext(git_repo)
    r = call("repomap", {"files": ["pkg/api.py"], "max_tokens": 1000}, ctx)
    assert r.files_total == 4 and "vendored_thing" not in r.map
    assert "pkg/api.py:" not in r.map  # the file in play is already in view
    assert r.map.index("pkg/db.py:") < r.map.index("pkg/colors.py:")
    assert "│def open_database_connection():" in r.map and "│class Database:" in r.map
    small = call("repomap", {"files": ["pkg/api.py"], "max_tokens": 30}, ctx)
    assert estimate_tokens(small.map) <= 30 and small.definitions_shown < r.definitions_shown
    assert small.map.startswith("pkg/db.py:")


def test_cache_reparses_only_changed_files(git_repo):
    _project(git_repo)
    ctx = ToolContext(git_repo)
    assert call("repomap", {}, ctx).parsed == 4
    assert call("repomap", {}, ctx).parsed == 0
    db = git_repo / "pkg" / "db.py"
    db.write_text(db.read_text() + "\ndef brand_new_function():\n    pass\n")
    os.utime(db, ns=(db.stat().st_atime_ns, db.stat().st_mtime_ns + 10**9))
    r = call("repomap", {"max_tokens": 4000}, ctx)
    assert r.parsed == 1 and "brand_new_function" in r.map
    (git_repo / ".flashcode" / "cache" / "repomap.pkl").write_bytes(b"garbage")
    assert call("repomap", {}, ctx).parsed == 4  # a broken cache is rebuilt
    assert ".flashcode" not in subprocess.run(["git", "status", "--porcelain"], cwd=git_repo,
                                              capture_output=True, text=True).stdout


def test_escape_is_refused(git_repo):
    with pytest.raises(PathOutsideRepoError):
        call("repomap", {"path": ".."}, ToolContext(git_repo))
    with pytest.raises(PathOutsideRepoError):
        call("repomap", {"files": ["/etc/passwd"]}, ToolContext(git_repo))


def test_process_pool_gives_the_same_tags(tmp_path):
    from tools.repomap.cache import POOL_THRESHOLD, TagCache

    rels = []
    for i in range(POOL_THRESHOLD + 10):
        (tmp_path / f"m{i}.py").write_text(f"def f{i}():\n    return g{i + 1}()\n")
        rels.append(f"m{i}.py")
    serial = TagCache(None, workers=1).tags(tmp_path, rels)
    pooled = TagCache(None, workers=2).tags(tmp_path, rels)
    assert pooled == serial and serial["m3.py"].refs == {"g4": 1}
