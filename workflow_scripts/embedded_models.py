"""Rule embedded_models: build the tiny random-weight models (results/models/embedded-tiny/)."""

import shutil
from pathlib import Path

from latentman.models import build_tiny
from latentman.scripting import run_step


def main(smk):
    out = Path(smk.output[0])
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    build_tiny(tmp)
    # Rename only when complete: no half-built model folder.
    tmp.rename(out)


run_step(snakemake, main, libraries=True)  # noqa: F821
