"""What a Snakemake catalog user expects of the repository: licence, catalog entry, cluster profile."""

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
