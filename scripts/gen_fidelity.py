#!/usr/bin/env python3
"""Generate the fidelity table (``docs/fidelity.md``) from the code and the test suite.

    python scripts/gen_fidelity.py [--results FILE] [-o OUT]

* Endpoints: LXD 5.0.2's public API (``tests/docs/lxd-5.0.2-endpoints.txt``) and the fake's
  route table (``fakeserver.api.load()``); the fake serves an endpoint when a route matches it.
* Tests: what the last runs recorded (``tests/docs/fidelity.py`` stores, per test, its outcome
  and the endpoints it called on the fake and on the real host, in the pytest cache). Run the
  suite first, e.g. ``python -m pytest --lxd-backend=both``; CI's fake and real runs fill it.
* Divergences: ``@pytest.mark.divergence("why")`` marks in the tests, test docstrings that
  say "divergence", and the fake's docstrings that do; fake-only tests with their docstrings.

The docs build runs this (``docs/hooks.py``), so the page is never written by hand.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import io
import re
import sys
import tokenize
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.docs.fidelity import INSTANCE_ALIASES, Catalogue, load_results  # noqa: E402

FAMILIES = (  # (title, path prefixes), in page order; the first match wins
    ("Server", ("/1.0/resources", "/1.0/metrics", "/1.0/events")),
    ("Certificates", ("/1.0/certificates",)),
    ("Operations", ("/1.0/operations",)),
    ("Warnings", ("/1.0/warnings",)),
    ("Cluster", ("/1.0/cluster",)),
    ("Instances", ("/1.0/instances",)),
    ("Images", ("/1.0/images",)),
    ("Profiles", ("/1.0/profiles",)),
    ("Projects", ("/1.0/projects",)),
    ("Networks", ("/1.0/network",)),
    ("Storage", ("/1.0/storage-pools",)),
)
DIVERGENCE = re.compile(r"divergen", re.IGNORECASE)
FAKE_ONLY_MARKS = {"fake_only", "lxd_fake_only"}


def family(path: str) -> str:
    if path in ("/", "/1.0"):
        return "Server"
    for title, prefixes in FAMILIES:
        if path.startswith(prefixes):
            return title
    return "Other"


def canonical(path: str) -> str:
    """Instance aliases shown on their ``/1.0/instances`` row."""
    for alias in INSTANCE_ALIASES:
        if path.startswith(alias):
            return "/1.0/instances" + path[len(alias):]
    return path


# -- what the tests say ------------------------------------------------------------------------

@dataclass
class Note:
    where: str  # file (and test) it comes from
    text: str


def _first_paragraph(text: str) -> str:
    return " ".join(text.strip().split("\n\n")[0].split())


def _mark_names(node: ast.AST) -> list[tuple[str, list[str]]]:
    """``pytest.mark.NAME(args)`` / ``pytest.mark.NAME`` expressions under ``node``."""
    found = []
    called = {id(sub.func) for sub in ast.walk(node) if isinstance(sub, ast.Call)}
    for sub in ast.walk(node):
        if id(sub) in called:
            continue  # seen as its call, with the arguments
        target, args = sub, []
        if isinstance(sub, ast.Call):
            target = sub.func
            args = [a.value for a in sub.args
                    if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        if (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Attribute)
                and target.value.attr == "mark"):
            found.append((target.attr, args))
    return found


def scan_tests(root: Path = ROOT) -> tuple[list[Note], dict[str, list[Note]]]:
    """Divergences and fake-only tests, read from the test files (no import, no run)."""
    divergences: list[Note] = []
    fake_only: dict[str, list[Note]] = defaultdict(list)
    for path in sorted((root / "tests").rglob("test_*.py")):
        rel = path.relative_to(root).as_posix()
        source = path.read_text()
        tree = ast.parse(source)
        module_doc = ast.get_docstring(tree) or ""
        module_marks = [name for stmt in tree.body if isinstance(stmt, ast.Assign)
                        and any(isinstance(t, ast.Name) and t.id == "pytestmark"
                                for t in stmt.targets)
                        for name, _ in _mark_names(stmt.value)]
        if DIVERGENCE.search(module_doc):
            divergences.append(Note(rel, _divergence_text(module_doc)))
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if not node.name.startswith("test"):
                continue
            doc = ast.get_docstring(node) or ""
            marks = [m for d in node.decorator_list for m in _mark_names(d)]
            names = {name for name, _ in marks} | set(module_marks)
            where = f"{rel}::{node.name}"
            for name, args in marks:
                if name == "divergence":
                    divergences.append(Note(where, " ".join(args) or _first_paragraph(doc)))
            if DIVERGENCE.search(doc) and not any(n == "divergence" for n, _ in marks):
                divergences.append(Note(where, _divergence_text(doc)))
            if names & FAKE_ONLY_MARKS:
                fake_only[rel].append(Note(node.name, _first_paragraph(doc)))
            elif any(name in FAKE_ONLY_MARKS for d in node.decorator_list
                     for name, _ in _mark_names(d)):
                fake_only[rel].append(Note(node.name, _first_paragraph(doc)))
            elif _has_fake_only_param(node):
                fake_only[rel].append(Note(f"{node.name} (some parameters)",
                                           _first_paragraph(doc)))
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT and DIVERGENCE.search(token.string):
                divergences.append(Note(f"{rel}:{token.start[0]}",
                                        token.string.lstrip("#").strip()))
    return divergences, dict(fake_only)


def _has_fake_only_param(node: ast.AST) -> bool:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute) \
                and sub.func.attr == "param":
            for keyword in sub.keywords:
                if keyword.arg == "marks" and any(
                        name in FAKE_ONLY_MARKS for name, _ in _mark_names(keyword.value)):
                    return True
    return False


def _divergence_text(doc: str) -> str:
    """The paragraph of a docstring that speaks of the divergence."""
    for paragraph in doc.split("\n\n"):
        if DIVERGENCE.search(paragraph):
            return " ".join(paragraph.split())
    return _first_paragraph(doc)


def scan_fake(root: Path = ROOT) -> list[Note]:
    """Divergences the fake's own docstrings declare."""
    notes = []
    for path in sorted((root / "fakeserver").rglob("*.py")):
        tree = ast.parse(path.read_text())
        rel = path.relative_to(root).as_posix()
        for node in [tree, *ast.walk(tree)]:
            if not isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef):
                continue
            doc = ast.get_docstring(node) or ""
            if DIVERGENCE.search(doc):
                where = rel if isinstance(node, ast.Module) else f"{rel}::{node.name}"
                notes.append(Note(where, _divergence_text(doc)))
    return notes


# -- the page ----------------------------------------------------------------------------------

def tally(results: dict[str, Any], root: Path = ROOT) -> tuple[dict[str, Counter[str]], dict]:
    """Passing tests per endpoint key and backend; a summary of the runs."""
    counts: dict[str, Counter[str]] = {"fake": Counter(), "real": Counter()}
    summary: dict[str, Any] = {"tests": Counter(), "latest": 0.0}
    for nodeid, entry in results.get("tests", {}).items():
        if not (root / nodeid.split("::", 1)[0]).exists():
            continue  # a test file that no longer exists
        summary["latest"] = max(summary["latest"], entry.get("at", 0.0))
        if entry.get("outcome") != "passed":
            continue
        for backend in ("fake", "real"):
            keys = entry.get(backend) or []
            if keys:
                summary["tests"][backend] += 1
            for key in keys:
                counts[backend][key] += 1
    return counts, summary


def _code(path: str) -> str:
    return f"`{path}`"


def _cell(number: int) -> str:
    return str(number) if number else "—"


def render(results: dict[str, Any] | None = None, root: Path = ROOT) -> str:
    catalogue = Catalogue()
    results = load_results(root=root) if results is None else results
    counts, summary = tally(results, root)
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for endpoint in catalogue.endpoints:
        key = (canonical(endpoint.path), endpoint.method)
        row = rows.setdefault(key, {"in_lxd": endpoint.in_lxd, "served": [], "missing": [],
                                    "fake": 0, "real": 0, "path": canonical(endpoint.path)})
        serves = catalogue.serves(endpoint)
        (row["served"] if serves else row["missing"]).append(endpoint.path)
        if serves:  # (the endpoint guide's example serves routes the fake has not)
            row["fake"] += counts["fake"][endpoint.key]
        row["real"] += counts["real"][endpoint.key]

    lxd_rows = [r for r in rows.values() if r["in_lxd"]]
    served = sum(1 for r in lxd_rows if r["served"])
    proven = sum(1 for r in lxd_rows if r["real"])
    when = (datetime.datetime.fromtimestamp(summary["latest"], datetime.timezone.utc)
            .strftime("%Y-%m-%d %H:%M UTC") if summary["latest"] else None)
    out = ["# Fidelity", "",
           "Generated by `scripts/gen_fidelity.py` from the code and the test suite at each docs "
           "build: do not edit. For every endpoint of LXD 5.0.2's public API (and every route "
           "the fake has besides), whether the fake serves it and how many tests that call it "
           "passed on the fake and on a real LXD 5.0.2 host. A test counts for an endpoint when "
           "it sent a request to it; the same test runs on both backends "
           "(`--lxd-backend=both`).", ""]
    if when:
        out += [f"Test results: the last recorded runs (latest {when}): "
                f"{summary['tests']['fake']} passing tests called the fake, "
                f"{summary['tests']['real']} the real host.", ""]
    else:
        out += ["!!! note", "    No test results were recorded in this checkout: the test "
                "columns are empty. Run `python -m pytest --lxd-backend=both` (or CI's fake and "
                "real runs), then build the docs again.", ""]
    if when and not summary["tests"]["real"]:
        out += ["!!! note", "    No run against a real LXD host was recorded: the real-host "
                "column is empty. Run `scripts/lxd-host` and `python -m pytest "
                "--lxd-backend=real`, then build the docs again.", ""]
    out += [f"**{served} of {len(lxd_rows)}** LXD 5.0.2 endpoints (method and path) are served "
            f"by the fake; **{proven}** are called by tests that pass on a real LXD.", "",
            "Instance endpoints are also served under `/1.0/containers` and "
            "`/1.0/virtual-machines`; their rows count the tests of all three. \"—\": none.", ""]

    by_family: dict[str, list[tuple[str, str, dict[str, Any]]]] = defaultdict(list)
    for (path, method), row in rows.items():
        if row["in_lxd"]:
            by_family[family(path)].append((path, method, row))
    order = [title for title, _ in FAMILIES]
    for title in sorted(by_family, key=lambda t: (["Server", *order].index(t)
                                                  if t in ["Server", *order] else 99)):
        out += [f"## {title}", "", "| method | path | fake | tests passed (fake) | "
                "tests passed (real LXD) |", "|---|---|---|---|---|"]
        for path, method, row in by_family[title]:
            mark = "yes" if row["served"] and not row["missing"] else (
                "partly" if row["served"] else "**no**")
            if mark == "partly":
                mark += " (not: " + ", ".join(_code(p) for p in row["missing"]) + ")"
            out.append(f"| {method} | {_code(path)} | {mark} | {_cell(row['fake'])} | "
                       f"{_cell(row['real'])} |")
        out.append("")

    extra = [(key, route) for key, route in catalogue.extra_routes.items()]
    if extra:
        out += ["## Routes only the fake has", "",
                "Routes of the fake's table that are no LXD 5.0.2 endpoint of their own (LXD "
                "reaches the same handler through another path):", ""]
        for key, route in sorted(extra, key=lambda item: item[0]):
            method, _, path = key.partition(" ")
            doc = _first_paragraph(route.handler.__doc__ or "")
            tests = counts["fake"][key]
            out.append(f"* {method} {_code(path)}: {doc} (tests passed on the fake: "
                       f"{_cell(tests)})")
        out.append("")

    divergences, fake_only = scan_tests(root)
    declared = scan_fake(root)
    out += ["## Known divergences from LXD 5.0.2", "",
            "Where the fake deliberately answers differently, and why. Collected from the "
            "tests (`@pytest.mark.divergence(\"why\")`, and docstrings or comments that say "
            "\"divergence\") and from the fake's own docstrings.", ""]
    seen: set[str] = set()
    for note in [*divergences, *declared]:
        if note.text in seen:
            continue
        seen.add(note.text)
        out.append(f"* {note.text} (`{note.where}`)")
    if not seen:
        out.append("None recorded.")
    out.append("")

    total = sum(len(v) for v in fake_only.values())
    out += ["## Tests that run on the fake only", "",
            f"{total} tests drive what only the fake has (time control, faults, seeding, its "
            "CLI) or what must not be done to a shared real host; their docstrings say which:",
            ""]
    for rel, notes in sorted(fake_only.items()):
        out.append(f"* `{rel}`: " + "; ".join(
            f"`{n.where}`" + (f" ({n.text})" if n.text else "") for n in notes))
    out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, help="the recorded results (default: the "
                        "pytest cache, .pytest_cache/v/pytest-lxd/fidelity)")
    parser.add_argument("-o", "--output", type=Path, help="write here (default: stdout)")
    args = parser.parse_args(argv)
    results = load_results(args.results) if args.results else None
    text = render(results)
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
