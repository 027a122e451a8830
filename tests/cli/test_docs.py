"""The docs stay runnable: every `fluxora …` command in a code block of README.md or docs/*.md
parses with the real CLI parser and its overrides compose, and every relative link resolves
(file and #anchor). Nothing is executed."""

from __future__ import annotations

import re
import shlex
from functools import cache
from pathlib import Path

import pytest

from fluxora.cli.parser import parse
from fluxora.config import compose
from fluxora.errors import ConfigError
from fluxora.paths import project_root

ROOT = project_root()
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Pages another session is writing; a link to one is accepted only while it does not exist yet
# (from then on it is checked like any other). Drop an entry once its page is merged.
SHELL_BLOCKS = {"bash", "sh", "shell", "console"}  # `text` blocks show output, e.g. refused overrides
FENCE = re.compile(r"^```(\w*)\s*$")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
OPERATORS = set("|&;()<>")


def _shell_lines(page: Path) -> list[str]:
    """The logical lines (continuations joined, `$ ` prompts dropped) of the page's shell blocks."""
    lines: list[str] = []
    language: str | None = None
    pending = ""
    for raw in page.read_text().splitlines():
        if fence := FENCE.match(raw.strip()):
            language = None if language is not None else fence.group(1)
            continue
        if language not in SHELL_BLOCKS:
            continue
        line = pending + raw.strip().removeprefix("$ ")
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        lines.append(line)
    return lines


def _commands(line: str) -> list[list[str]]:
    """Each `fluxora` (or `.venv/bin/fluxora`) invocation on a shell line, as its argument list."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    tokens = list(lexer)
    found = []
    for i, token in enumerate(tokens):
        if token == "fluxora" or token.endswith("/fluxora"):
            args = []
            for arg in tokens[i + 1 :]:
                if set(arg) <= OPERATORS:
                    break
                args.append(arg)
            found.append(args)
    return found


def _documented_commands() -> list[tuple[str, list[str]]]:
    return [
        (f"{page.relative_to(ROOT)}: fluxora {' '.join(args)}", args)
        for page in PAGES
        for line in _shell_lines(page)
        for args in _commands(line)
    ]


COMMANDS = _documented_commands()


def test_the_docs_show_commands() -> None:
    """Guards the extraction itself: the README's quickstart path is found."""
    readme = [args[0] for name, args in COMMANDS if name.startswith("README.md") and args]
    assert {"run", "backtest", "keys", "serve", "trigger"} <= set(readme)


@cache
def _composes(overrides: tuple[str, ...]) -> str:
    try:
        compose(list(overrides))
    except ConfigError as exc:
        return str(exc)
    return ""


@pytest.mark.parametrize(("where", "args"), COMMANDS, ids=[name for name, _ in COMMANDS])
def test_documented_command_parses(where: str, args: list[str]) -> None:
    try:
        namespace = parse(args)
    except SystemExit:
        pytest.fail(f"{where}: the CLI parser refuses it (see `fluxora --help`)")
    overrides = tuple(getattr(namespace, "overrides", None) or ())
    assert not (error := _composes(overrides)), f"{where}: {error}"


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes."""
    out = set()
    in_code = False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (m := re.match(r"#{1,6}\s+(.*)", line)):
            out.add(re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-"))
    return out


def _links() -> list[tuple[Path, str]]:
    out = []
    for page in PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # links in code are not links
        out.extend((page, t) for t in LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:", t))  # https:
    return out


@pytest.mark.parametrize(("page", "target"), _links(), ids=lambda v: str(v.name) if isinstance(v, Path) else v)
def test_relative_link_resolves(page: Path, target: str) -> None:
    path_part, _, anchor = target.partition("#")
    dest = (page.parent / path_part).resolve() if path_part else page
    assert dest.exists(), f"{page.relative_to(ROOT)}: link to {target} does not resolve"
    if anchor and dest.suffix == ".md":
        assert anchor in _anchors(dest), f"{page.relative_to(ROOT)}: no heading #{anchor} in {path_part or page.name}"


def test_extraction_cuts_at_shell_operators() -> None:
    assert _commands("KEY=$(.venv/bin/fluxora keys create | tail -1) && fluxora status --json") == [
        ["keys", "create"],
        ["status", "--json"],
    ]
