"""The README and docs/ hold together: every page the README links to exists, every relative link
inside docs/ points to a file that exists (and, with a #fragment, to a heading that exists), and
the harness' --publish writes the dated page docs/performance.md links to. No network."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench import report

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PAGES = ["server", "client", "trainer", "ab-experiments", "observability", "protocols", "security",
         "reliability", "performance"]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def prose(text: str) -> str:
    """The Markdown without its fenced code blocks and inline code (links there are not links)."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    return re.sub(r"`[^`\n]*`", "", text)


def anchors(page: Path) -> set[str]:
    """The #fragments GitHub gives the page's headings: lower case, punctuation dropped, spaces to
    hyphens, a -1, -2 ... suffix for repeats."""
    found: set[str] = set()
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.MULTILINE | re.DOTALL)
    for heading in re.findall(r"^#{1,6} +(.+?) *#*$", text, flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        candidate, n = slug, 0
        while candidate in found:
            n += 1
            candidate = f"{slug}-{n}"
        found.add(candidate)
    return found


def relative_links(page: Path) -> list[tuple[str, Path, str]]:
    """(link as written, the file it points to, its #fragment or '') for every link that is not a URL."""
    links = []
    for target in LINK.findall(prose(page.read_text())):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
            continue
        path, _, fragment = target.partition("#")
        links.append((target, (page.parent / path).resolve() if path else page, fragment))
    return links


def broken(page: Path) -> list[str]:
    problems = []
    for target, path, fragment in relative_links(page):
        if not path.exists():
            problems.append(f"{page.relative_to(REPO)}: {target} -> no such file")
        elif fragment and path.suffix == ".md" and fragment not in anchors(path):
            problems.append(f"{page.relative_to(REPO)}: {target} -> no heading #{fragment} in {path.name}")
    return problems


def test_every_page_the_readme_names_exists_and_is_linked() -> None:
    linked = {path for _, path, _ in relative_links(REPO / "README.md")}
    for name in PAGES:
        page = DOCS / f"{name}.md"
        assert page.is_file(), f"docs/{name}.md is missing"
        assert page.resolve() in linked, f"README.md does not link docs/{name}.md"


def test_links_in_the_readme_resolve() -> None:
    assert broken(REPO / "README.md") == []


@pytest.mark.parametrize("page", sorted(DOCS.rglob("*.md")), ids=lambda p: str(p.relative_to(DOCS)))
def test_relative_links_in_docs_resolve(page: Path) -> None:
    assert broken(page) == []


def test_the_readme_stays_short() -> None:
    lines = len((REPO / "README.md").read_text().splitlines())
    assert lines <= 300, f"README.md has {lines} lines: move details to a page in docs/"


def test_the_performance_page_links_the_newest_harness_report() -> None:
    reports = sorted((DOCS / "benchmarks").glob("harness-*.md"))
    assert reports, "no harness report in docs/benchmarks/"
    linked = {path for _, path, _ in relative_links(DOCS / "performance.md")}
    assert reports[-1].resolve() in linked, f"docs/performance.md does not link {reports[-1].name}"


def test_publish_writes_a_dated_page_with_the_markdown_report(tmp_path: Path) -> None:
    document = {"date": "2026-12-01T10:00:00+00:00", "mode": "full", "seconds": 300.0,
                "machine": "2 cores, 24 GiB, Linux x86_64, Python 3.11.7; load average at start 0.1, 0.1, 0.1",
                "cells": ["lstm"], "runs": {}, "targets": []}
    page = report.publish(document, tmp_path)
    assert page == tmp_path / "harness-2026-12-01.md"
    text = page.read_text()
    assert text.startswith("# Benchmark harness, 2026-12-01\n")
    assert report.markdown(document) in text
    assert "(../performance.md)" in text  # resolves once the page sits in docs/benchmarks/
    assert report.PUBLISHED == DOCS / "benchmarks"


def test_the_server_package_docstring_maps_every_module() -> None:
    """README says the package docstring maps the code: every module of every layer is named there
    (`png`, `tensorflow_startup`, `decisions`, `drain`, `deadlines`, `stream_groups` once were not)."""
    import ast

    package = REPO / "server" / "src" / "digits_server"
    docstring = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
    named = set(re.findall(r"`([\w.]+)`", docstring))
    modules = {path.stem for path in package.rglob("*.py")
               if path.stem != "__init__" and not path.stem.endswith(("_pb2", "_pb2_grpc"))}
    assert sorted(modules - named) == []


def test_the_signed_id_layout_in_scaling_md_is_the_order_the_code_writes() -> None:
    """docs/scaling.md's layout once put the image count before the names; the code writes it after the arm."""
    import base64

    import numpy as np

    from digits_server.core.domain import ServedBy
    from digits_server.core.request_ids import PREFIX, RequestIds

    text = (DOCS / "scaling.md").read_text()
    layout = re.search(r"d1\.<base64url\((.*?)\)>", text, flags=re.DOTALL).group(1)
    fields = [field.strip() for field in layout.replace("\n", " ").split("|")]
    named = ["model", "experiment", "arm", "image count"]
    assert [f for f in fields if f in named] == named, fields
    made = RequestIds(b"k" * 32).issue(ServedBy("M", 7, "E", "A"), np.array([1, 2, 3]), [None] * 3)
    payload = base64.urlsafe_b64decode(made.removeprefix(PREFIX) + "==")
    # after issued_at (4 bytes) and the nonce (8): version 7, then each name length-prefixed, then the count 3
    assert payload[12:].startswith(b"\x07\x01M\x01E\x01A\x03")


def test_scaling_md_gives_envoys_retries_as_configured() -> None:
    """'4 tries' was 5 attempts: num_retries counts retries, after the first attempt."""
    from tests.envoyproc import grpc_routes

    classify = next(r for r in grpc_routes() if r["match"].get("prefix") == "/digits.v1.DigitClassifier/")
    retries = classify["route"]["retry_policy"]["num_retries"]
    text = " ".join((DOCS / "scaling.md").read_text().split())
    assert f"up to {retries} retries, {retries + 1} attempts in all" in text
    assert "4 tries" not in text


def test_the_performance_page_lists_the_targets_the_harness_checks() -> None:
    """docs/performance.md showed "the six targets" with old goals while bench/report.py checked
    others: its table is report.goals_markdown(), read off the harness's own checks."""
    text = (DOCS / "performance.md").read_text()
    generated = re.search(r"<!-- targets: generated by bench/report.py goals_markdown\(\) -->\n(.*?)\n<!-- end of targets -->",
                          text, flags=re.DOTALL)
    assert generated is not None, "the targets table markers are gone"
    assert generated.group(1) == report.goals_markdown()
    numbers = {row[0] for row in report.goal_rows()}
    assert numbers == {*(str(n) for n in range(1, 8)), "b", "r", "M", *(f"L{n}" for n in range(1, 7))}
    assert "six targets" not in text
