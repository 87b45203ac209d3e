"""The `latentman` console command: motions, prompts, sweeps and variants of the workflow, one-line errors."""

import importlib
import re
import subprocess
import sys

import pytest
from conftest import REPO

from latentman.cli import main
from latentman.motion.library import MOTIONS


@pytest.fixture
def in_repo(monkeypatch):
    monkeypatch.chdir(REPO)


def rows(text: str) -> dict[str, list[str]]:
    """First column -> the other columns of a table printed by the command (2+ spaces apart)."""
    out = {}
    for line in text.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        out[cells[0]] = cells[1:]
    return out


def test_console_script_is_declared():
    text = (REPO / "pyproject.toml").read_text()
    scripts = re.search(r"^\[project\.scripts\]\n(.*?)^\[", text, re.M | re.S).group(1)
    assert re.search(r'^latentman = "latentman\.cli:main"$', scripts, re.M)
    module, function = "latentman.cli:main".split(":")
    assert getattr(importlib.import_module(module), function) is main


def test_motions_lists_every_motion_with_its_words(capsys):
    assert main(["motions"]) == 0
    out = capsys.readouterr().out
    for name in MOTIONS:
        assert re.search(rf"^{name}  \(e\.g\. ", out, re.M), name
    # base words only: "stroll", not its inflections "strolls", "strolling"
    walk = re.search(r"^walk .*\n\s+words: (.*)$", out, re.M).group(1).split(", ")
    assert {"walk", "stroll", "march", "walker"} <= set(walk) and "strolling" not in walk
    assert "turn around" in out


def test_prompts_names_the_chosen_motion(in_repo, capsys):
    assert main(["prompts", "--configfile", ".test/config.yaml"]) == 0
    table = rows(capsys.readouterr().out)
    assert table["walker"][:2] == ["4", "1"] and table["walker"][-1].startswith("builtin:walk (verb")
    assert table["jumper"][-1].startswith("builtin:jump")


def test_sweeps_count_variants_reuse_and_jobs(in_repo, capsys):
    assert main(["sweeps", "--configfile", ".test/config.yaml"]) == 0
    table = rows(capsys.readouterr().out)
    # variants, reused, prompts, seeds, generate jobs, evaluate jobs
    assert table["default (run_variants)"] == ["2", "0", "2", "each prompt's", "4", "4"]
    assert table["paper"] == ["8", "2", "2", "each prompt's", "16", "16"]
    # pwg_gradient.t2v_zero.baseline reuses t2v_zero: one video per prompt for two variants
    assert table["pwg_gradient"] == ["2", "1", "2", "each prompt's", "4", "4"]


def test_variants_mark_shared_results(in_repo, capsys):
    assert main(["variants", "paper", "--configfile", ".test/config.yaml"]) == 0
    table = rows(capsys.readouterr().out)
    assert table["paper.t2v_zero"] == ["paper.t2v_zero", "each prompt's", "2", "2", "reuses t2v_zero"]
    assert table["paper.t2v_zero.sla.pwg"][-1] == "reuses latentman"
    assert table["paper.masactrl"] == ["paper.masactrl", "each prompt's", "2", "2"]
    assert table["total"] == ["16", "16"]
    assert main(["variants", "default"]) == 0  # the shipped config: run_variants on 4 prompts
    assert rows(capsys.readouterr().out)["total"] == ["8", "8"]


def test_seeds_are_listed(in_repo, tmp_path, capsys):
    extra = tmp_path / "seeds.yaml"
    extra.write_text("sweeps:\n  seeded:\n    grid: [{g6: {guidance_scale: 6.0}}]\n    seeds: [1, 2]\n")
    assert main(["variants", "seeded", "--configfile", str(extra)]) == 0
    table = rows(capsys.readouterr().out)
    assert table["seeded.g6.s1"] == ["seeded.g6", "1", "4", "4"]
    assert table["seeded.g6.s2"] == ["seeded.g6", "2", "4", "4"]


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["variants", "nosuch"],
            "latentman: error: unknown sweep 'nosuch' (sweeps: default (run_variants), paper, ",
        ),
        (["sweeps", "--configfile", "missing.yaml"], "latentman: error: config file missing.yaml not found"),
    ],
)
def test_errors_are_one_line(in_repo, capsys, args, message):
    assert main(args) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1
    assert captured.err.startswith(message)


def test_outside_the_workflow_folder(tmp_path):
    """As a process: exit status 1, one line, no traceback."""
    result = subprocess.run(
        [sys.executable, "-m", "latentman.cli", "sweeps"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"latentman: error: no config.yaml in {tmp_path}: run latentman in the workflow folder, or pass "
        "--configfile FILE"
    ]
