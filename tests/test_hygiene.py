"""What a Snakemake catalog user expects of the repository: licence, catalog entry, cluster profile; and
that development code the workflow never runs stays out of the package."""

import fnmatch
import re
from pathlib import Path

import tomllib
import yaml

REPO = Path(__file__).resolve().parent.parent


def test_license_file_matches_pyproject():
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["license"]["text"]
    text = (REPO / "LICENSE").read_text()
    assert declared == "MIT" and text.startswith("MIT License\n")
    assert "Copyright (c) 2026 latentman contributors" in text
    assert "Permission is hereby granted, free of charge" in text


def test_catalog_entry_has_the_standardized_usage_fields():
    entry = yaml.safe_load((REPO / ".snakemake-workflow-catalog.yml").read_text())
    usage = entry["usage"]
    assert usage["mandatory-flags"]["flags"] == "--cores all" and usage["mandatory-flags"]["desc"]
    # Current catalog docs name apptainer/apptainer+conda, older ones singularity/singularity+conda.
    assert set(usage["software-stack-deployment"]) == {
        "conda",
        "apptainer",
        "apptainer+conda",
        "singularity",
        "singularity+conda",
    }
    assert all(isinstance(v, bool) for v in usage["software-stack-deployment"].values())
    assert usage["report"] is True


def test_slurm_profile_names_no_partition():
    text = (REPO / "profiles" / "slurm" / "config.yaml").read_text()
    assert "debug" not in text
    profile = yaml.safe_load(text)
    assert "slurm_partition" not in profile["default-resources"]
    for resources in profile["set-resources"].values():
        assert "slurm_partition" not in resources


def test_table_plot_and_sweep_rules_run_locally():
    snakefile = (REPO / "Snakefile").read_text()
    block = re.search(r"^localrules:\n((?:    \w+,\n)+)", snakefile, re.M)
    assert block, "no localrules block"
    local = set(re.findall(r"\w+", block.group(1)))
    assert {"aggregate", "plots", "sweep"} <= local
    defined = set(
        re.findall(
            r"^rule (\w+):", snakefile + "".join(p.read_text() for p in (REPO / "rules").glob("*.smk")), re.M
        )
    )
    assert local <= defined


# Code the workflow never runs lives in latentman_dev/ (issue 31): old path in latentman/ -> new path.
MOVED_TO_DEV = {
    "latentman/toy/train.py": "latentman_dev/toy/train.py",
    "latentman/toy/dataset.py": "latentman_dev/toy/dataset.py",
    "latentman/toy/quality.py": "latentman_dev/toy/quality.py",
    "latentman/toy/model.py": "latentman_dev/toy/model.py",
    "latentman/metrics/browser.py": "latentman_dev/browser.py",
    "latentman/generation/pwg_study.py": "latentman_dev/pwg_study.py",
}


def test_the_library_and_the_workflow_never_import_latentman_dev():
    workflow = [*(REPO / "rules").glob("*.smk"), *(REPO / "workflow_scripts").glob("*.py")]
    sources = sorted((REPO / "latentman").rglob("*.py")) + [REPO / "Snakefile", *sorted(workflow)]
    assert len(sources) > 20
    offenders = [str(p.relative_to(REPO)) for p in sources if "latentman_dev" in p.read_text()]
    assert not offenders, f"latentman_dev named in the library or the workflow: {offenders}"


def test_development_modules_left_the_package():
    for old, new in MOVED_TO_DEV.items():
        assert not (REPO / old).exists(), f"{old} is back in the package (it lives in {new})"
        assert (REPO / new).is_file(), new


def test_latentman_dev_is_installed_with_the_package():
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    assert any(fnmatch.fnmatchcase("latentman_dev", p) for p in patterns["include"])
    assert (REPO / "latentman_dev" / "__init__.py").is_file()
    assert (REPO / "latentman_dev" / "toy" / "__init__.py").is_file()
