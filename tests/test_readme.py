"""The README runs as written: the Python example whole, the tour line by line after a demo, and
every option of every command line (placeholders included) exists on its command."""

from __future__ import annotations

import glob
import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from humanscape.cli import cli

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def command_lines(block: str) -> list[tuple[str, list[str]]]:
    """``(line, comment option tokens)`` for each ``humanscape`` line, continuations joined."""
    out: list[tuple[str, list[str]]] = []
    for raw in block.replace("\\\n", " ").splitlines():
        line = raw.strip()
        if line.startswith("humanscape "):
            out.append((line, []))
        elif line.startswith("#") and out:
            out[-1][1].extend(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", line))
    return out


def resolve(args: list[str]) -> tuple[click.Command, list[str]]:
    """The click command a line names, and the words after its name."""
    command: click.Command = cli
    rest = list(args)
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        name = rest.pop(0)
        assert name in command.commands, f"{' '.join(args)}: no command '{name}'"
        command = command.commands[name]
    return command, rest


def option_names(command: click.Command) -> set[str]:
    names = {"--help", "-h"}
    for param in command.params:
        names.update(param.opts)
        names.update(getattr(param, "secondary_opts", []))
    return names


def test_readme_has_the_blocks_the_tests_run():
    assert len(blocks("python")) == 1
    assert any("humanscape info src/humanscape/sample_data" in b for b in blocks("bash"))


def doc_blocks() -> list[str]:
    """The shell blocks of docs/*.md (their command lines are held to the same check)."""
    out = []
    for path in sorted((ROOT / "docs").glob("*.md")):
        out += re.findall(r"```(?:bash|sh|console)?\n(.*?)```", path.read_text(), flags=re.S)
    return out


def inline_commands() -> list[str]:
    """``humanscape ...`` code spans in the prose of the README and docs/*.md."""
    docs = [p for p in sorted((ROOT / "docs").glob("*.md")) if p.name != "bad_inputs.md"]
    texts = [README] + [p.read_text() for p in docs]  # bad_inputs.md shows wrong commands
    names = "|".join(cli.commands)  # spans may leave out the "humanscape" in front
    pattern = rf"(?<!`)`((?:humanscape |(?:{names}) [^`\n]*--)[^`\n]*)`"
    spans = [m for text in texts for m in re.findall(pattern, text)]
    spans = [m if m.startswith("humanscape ") else f"humanscape {m}" for m in spans]
    return [s for s in spans if not any(t in s for t in ("...", "|", "[", "COMMAND"))]


def test_every_option_on_every_readme_and_docs_line_exists():
    lines = [entry for block in blocks("bash") + doc_blocks() for entry in command_lines(block)]
    lines += [(span, []) for span in inline_commands()]
    assert len(lines) > 70
    wrong = []
    for line, commented in lines:
        words = shlex.split(line, comments=True)[1:]
        root_flags = [w for w in words[:1] if w in ("-v", "--verbose")]
        command, rest = resolve(words[len(root_flags) :])
        known = option_names(command)
        used = [w.split("=")[0] for w in rest if w.startswith("-") and not _is_number(w)]
        missing = sorted({u for u in used + commented if u not in known})
        if missing:
            wrong.append(f"{line}: no option {', '.join(missing)}")
    assert not wrong, "\n".join(wrong)


def _is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


def test_python_example_runs_whole(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks("python")[0], "README.md", "exec"), {"__name__": "__readme__"})
    printed = capsys.readouterr().out
    assert "sentinel2_l1c 2017-02-16 EPSG:32633" in printed
    assert "32 chips; (16, 448) embeddings" in printed
    assert "FlowModel gravity (43, 43)" in printed
    assert (tmp_path / "python_flow_model" / "config.json").exists()


@pytest.fixture()
def tour_folder(tmp_path, demo_output, monkeypatch) -> Path:
    """A folder laid out like the repository root after ``make demo``."""
    (tmp_path / "src").symlink_to(ROOT / "src")
    (tmp_path / "demo-output").symlink_to(demo_output[0])
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_tour_runs_line_by_line_after_the_demo(tour_folder):
    tour = next(b for b in blocks("bash") if "humanscape info src/humanscape/sample_data" in b)
    runner = CliRunner()
    ran = 0
    for line, _ in command_lines(tour):
        words = shlex.split(line, comments=True)[1:]
        args = [m for w in words for m in (sorted(glob.glob(w)) if "*" in w else [w])]
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, f"{line}\n{result.output}"
        ran += 1
    assert ran >= 15
    assert (tour_folder / "tour" / "flows_report" / "metrics.csv").exists()
    assert (tour_folder / "tour" / "migration.csv").exists()


def test_every_option_named_in_the_package_exists():
    # error messages say "fix: give --group-column ..."; a renamed option must not leave them behind
    known = {"--help", "--version", "--verbose"}

    def collect(command: click.Command) -> None:
        if isinstance(command, click.Group):
            for sub in command.commands.values():
                collect(sub)
        known.update(option_names(command))

    collect(cli)
    wrong = []
    for path in sorted((ROOT / "src" / "humanscape").rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "bench/" in line:  # the benchmark scripts' own options
                continue
            for token in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]+", line):
                if token not in known:
                    wrong.append(f"{path.relative_to(ROOT)}:{number}: {token}")
    assert not wrong, "\n".join(wrong)
