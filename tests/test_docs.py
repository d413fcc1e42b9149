"""The documentation holds: its relative links resolve, its loggers are the code's, and it speaks of the
service, not of how the work on it is organised."""

import re
import unicodedata
from pathlib import Path

import pytest

from api.logs import REQUEST_LOGGER

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = sorted([ROOT / "README.md", ROOT / "sql" / "README.md", *(ROOT / "docs").glob("*.md")])
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#+ (.+)$", re.MULTILINE)
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = heading.strip().lower().replace("`", "")
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN")
    return kept.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {slug(heading) for heading in HEADING.findall(FENCE.sub("", path.read_text(encoding="utf-8")))}


def broken_links(path: Path) -> list[str]:
    """The relative links of `path` whose file, folder or heading does not exist."""
    broken = []
    for target in LINK.findall(FENCE.sub("", path.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target):  # https:, mailto:: not ours to check here
            continue
        file, _, anchor = target.partition("#")
        found = (path.parent / file).resolve() if file else path
        if not found.exists() or (anchor and (found.suffix != ".md" or anchor not in anchors(found))):
            broken.append(target)
    return broken


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_resolves(path: Path) -> None:
    assert not broken_links(path)


def test_the_link_check_sees_a_missing_file_and_a_missing_heading(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# A heading, with `code`\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Here\n[ok](other.md#a-heading-with-code) [self](#here) [web](https://example.com)\n"
        "[gone](missing.md) [no heading](other.md#nowhere) [not here](#elsewhere)\n"
        "```\n[in a code block](ignored.md)\n```\n"
    )

    assert broken_links(page) == ["missing.md", "other.md#nowhere", "#elsewhere"]


def test_the_readme_is_short() -> None:
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 150


def test_the_operators_guide_names_every_logger_the_code_makes() -> None:
    guide = (ROOT / "docs" / "operating.md").read_text(encoding="utf-8")
    table = guide[guide.index("| logger |") :].split("\n\n")[0]
    documented = set(re.findall(r"`([a-z_.]+)`", "\n".join(row.split(" | ")[0] for row in table.splitlines())))
    named = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for path in (ROOT / "api").rglob("*.py")
        if "getLogger(__name__)" in path.read_text(encoding="utf-8")
    }

    assert documented == named | {REQUEST_LOGGER, "uvicorn.error"}


def test_every_row_of_the_levers_a_comment_points_at_is_there() -> None:
    levers = (ROOT / "docs" / "levers.md").read_text(encoding="utf-8")
    pointed = [
        (path.relative_to(ROOT), name)
        for path in (ROOT / "api").rglob("*.py")
        for names in re.findall(r"docs/levers\.md, ((?:\"[^\"]+\"(?:, )?)+)\)", path.read_text(encoding="utf-8"))
        for name in re.findall(r'"([^"]+)"', names)
    ]

    assert len(pointed) >= 10
    assert [(path, name) for path, name in pointed if f"**{name}**" not in levers] == []


# Words of how the work is organised, which a user of the service never needs.
PROJECT_WORDS = re.compile(r"\b(?:[Ii]ssues? #?\d+|[Mm]ission|[Aa]cceptance points?|[Ss]print|[Bb]acklog)\b")
TEXT_FILES = sorted(
    path
    for folder in ("api", "bench", "tests", "sql", "migrations", "docs", ".ci")
    for path in (ROOT / folder).rglob("*")
    if path.is_file() and path.suffix in {".py", ".sql", ".md", ".toml", ".lua", ""} and "__pycache__" not in path.parts
)


def test_nothing_speaks_of_how_the_work_is_organised() -> None:
    files = [*TEXT_FILES, ROOT / "README.md", ROOT / "Makefile", ROOT / "pyproject.toml"]
    found = [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for path in files
        if path != Path(__file__)
        for match in PROJECT_WORDS.finditer(path.read_text(encoding="utf-8"))
    ]

    assert not found
