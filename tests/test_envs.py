"""The conda environments of `--sdm conda` (envs/*.yaml), checked by content.

No conda/mamba can be installed or reach conda-forge where the tests run, so the environments are never
solved or created here (README, "Conda"); these tests keep them consistent with pyproject.toml and free of
the mistakes that broke them before: the retired pytorch channel, and `pip: -e ..`, which Snakemake
resolves against its own copy of the file under .snakemake/, not the repository.
"""

import re
from pathlib import Path

import pytest
import yaml

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]
ENVS = {"cpu": "pytorch-cpu", "gpu": "pytorch-gpu"}  # env -> conda-forge's torch build for it
# pyproject names not in the env files under that name: torch is pytorch-cpu / pytorch-gpu (checked on
# its own); Snakemake and its SLURM plugin run on the submitting host, never inside a job's environment
NOT_IN_ENVS = {"torch", "snakemake", "snakemake-executor-plugin-slurm"}
PIP_ONLY = {"smplx", "pyrender-maintained"}  # not on conda-forge: installed by pip, by exact name
SPEC = re.compile(r"^([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*(.*)$")


def split(spec: str) -> tuple[str, str]:
    """('name', 'version constraint') of a pip or conda spec; names lower-cased."""
    name, _, version = SPEC.match(spec.split("#")[0].strip()).groups()
    version = version.replace(" ", "")
    if version.startswith("=") and not version.startswith("=="):
        version = version[1:]  # conda's exact-ish pin python=3.11
    return name.lower(), version


def environment(name: str) -> dict:
    return yaml.safe_load((ROOT / "envs" / f"{name}.yaml").read_text())


def packages(env: dict) -> tuple[dict[str, str], dict[str, str]]:
    conda = dict(split(item) for item in env["dependencies"] if isinstance(item, str))
    pip = [item["pip"] for item in env["dependencies"] if isinstance(item, dict)]
    return conda, dict(split(spec) for spec in (pip[0] if pip else []))


@pytest.mark.parametrize("name", ENVS)
def test_conda_forge_only(name):
    env = environment(name)
    assert env["channels"] == ["conda-forge", "nodefaults"]
    conda, _ = packages(env)
    # the pytorch channel's metapackages cannot be solved from conda-forge
    assert not {"cpuonly", "pytorch-cuda", "pytorch", "torch"} & set(conda)
    assert ENVS[name] in conda and conda[ENVS[name]] == ">=2.3"
    assert conda["python"] == "3.11"


@pytest.mark.parametrize("name", ENVS)
def test_no_local_pip_install(name):
    """`-e ..` or any path: Snakemake copies the env file under .snakemake/, where `..` is not the repo."""
    pip = [item["pip"] for item in environment(name)["dependencies"] if isinstance(item, dict)]
    for spec in pip[0] if pip else []:
        assert not spec.startswith(("-", ".", "/", "~", "file:", "git+")) and "/" not in spec, spec
        assert split(spec)[0] in PIP_ONLY, f"{spec}: take it from conda-forge, or list it in PIP_ONLY"


@pytest.mark.parametrize("name", ENVS)
def test_every_dependency_of_pyproject_with_its_lower_bound(name):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    conda, pip = packages(environment(name))
    for spec in project["dependencies"]:
        package, version = split(spec)
        if package in NOT_IN_ENVS:
            continue
        target = package
        where = pip if package in PIP_ONLY else conda
        assert target in where, f"envs/{name}.yaml lacks {target} ({spec} in pyproject.toml)"
        assert where[target] == version, f"envs/{name}.yaml: {target}{where[target]}, pyproject: {spec}"
    # CPU rendering needs OSMesa; the GPU env's jobs (generate) do not render
    assert ("mesalib" in conda) == (name == "cpu")


def test_every_rule_with_a_script_names_an_existing_env():
    text = "\n".join(path.read_text() for path in sorted((ROOT / "rules").glob("*.smk")))
    envs = set(re.findall(r'conda:\s*\n\s*"\.\./envs/(\w+)\.yaml"', text))
    assert envs == set(ENVS), envs
    assert text.count("script:") == len(re.findall(r"conda:\s*\n", text))
