"""The README and docs/ stay true: short README linking every page, a current CLI reference, every documented
`edgex` command accepted by the real parser, and the README's blocks marked `test` run as written."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import REPO

README = REPO / "README.md"
DOCS = REPO / "docs"
README_MAX_LINES = 200
README_MAX_LINES_WITH_DETAILS = 260


def documents() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def code_blocks(text: str) -> list[tuple[str, str]]:
    """(info string, body) of every fenced block, and ("indented", body) of every 4-space indented block."""
    blocks, fence, info, body, indented = [], None, "", [], []
    for line in text.splitlines():
        if fence is not None:
            if line.strip().startswith(fence):
                blocks.append((info, "\n".join(body)))
                fence, body = None, []
            else:
                body.append(line)
            continue
        match = re.match(r"^\s*(```+|~~~+)\s*(.*)$", line)
        if match:
            fence, info = match.group(1), match.group(2).strip()
            continue
        if line.startswith("    ") and line.strip():
            indented.append(line[4:])
        elif indented and not line.strip():
            indented.append("")
        elif indented:
            blocks.append(("indented", "\n".join(indented)))
            indented = []
    if indented:
        blocks.append(("indented", "\n".join(indented)))
    return blocks


def edgex_commands(body: str) -> list[list[str]]:
    """The `edgex ...` command lines of a block, joined across backslash continuations, split like a shell."""
    text = body.replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        line = line.strip().removeprefix("$ ")
        match = re.match(r"^(?:\S*/)?edgex\s+(.*)$", line)
        if not match:
            continue
        # a shell comment, pipe or redirect ends it; so does a help epilog's "  (what it does)"
        rest = re.split(r"\s(?:#|\||&&|>|;)\s?|\s{2,}\(", " " + match.group(1))[0]
        words = shlex.split(rest.replace("[", " ").replace("]", " "), comments=False)
        commands.append([w for w in words if w != "..."])
    return commands


def test_readme_is_short_and_links_every_docs_page():
    """Short to read: at most README_MAX_LINES outside collapsed `<details>` blocks (measured outputs pasted
    for the record: the step timings, the fuzz table), and no more than README_MAX_LINES_WITH_DETAILS in all."""
    text = README.read_text()
    read = re.sub(r"<details>.*?</details>", "", text, flags=re.S)
    assert len(read.splitlines()) <= README_MAX_LINES
    assert len(text.splitlines()) <= README_MAX_LINES_WITH_DETAILS
    for page in DOCS.glob("*.md"):
        assert f"](docs/{page.name})" in text, f"README does not link docs/{page.name}"


def test_every_relative_link_in_the_docs_resolves():
    for doc in documents():
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if "://" in target:
                continue
            assert (doc.parent / target).exists(), f"{doc.name} links {target}, which does not exist"


def test_cli_reference_is_current():
    from edgex.commands.reference import cli_reference

    assert (DOCS / "cli.md").read_text() == cli_reference(), (
        "docs/cli.md is stale: python -m edgex.commands.reference > docs/cli.md")


def test_every_documented_edgex_command_is_accepted_by_the_parser():
    """No documented verb or flag can rot: each command line parses (nothing runs)."""
    from edgex.cli import build_parser

    parser = build_parser()
    seen = 0
    for doc in documents():
        for info, body in code_blocks(doc.read_text()):
            if info.split(" ")[0] in ("python", "yaml", "json") or (info == "text" and doc.name != "cli.md"):
                continue  # cli.md: the examples in each command's --help
            for words in edgex_commands(body):
                seen += 1
                try:
                    parser.parse_args(words)
                except SystemExit as stop:
                    pytest.fail(f"{doc.name}: 'edgex {' '.join(words)}' is rejected by the parser ({stop.code})")
    assert seen >= 20


def runnable_blocks() -> list[str]:
    return [body for info, body in code_blocks(README.read_text()) if info.split() == ["bash", "test"]]


@pytest.mark.slow
def test_the_readmes_runnable_blocks_run_as_written(tmp_path, tiny_model, images_dir):
    """In a folder laid out as the README assumes (my_xception.keras, images/, photos/, test/), run each block
    marked `bash test` with bash, in README order: they must all exit 0."""
    blocks = runnable_blocks()
    assert len(blocks) >= 3
    shutil.copy(tiny_model, tmp_path / "my_xception.keras")
    shutil.copy(tiny_model.with_suffix(".classes.json"), tmp_path / "my_xception.classes.json")
    shutil.copytree(images_dir, tmp_path / "images")
    shutil.copytree(images_dir, tmp_path / "test")
    shutil.copytree(images_dir / "red_stripes", tmp_path / "photos")
    (tmp_path / ".venv").symlink_to(REPO / ".venv")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    for block in blocks:
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{block}\nexit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
