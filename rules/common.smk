# Shared by every rule: config and prompt-table validation (before any job runs), the path of
# every file in the workflow, wildcard constraints and input functions.
import sys

from latentman.config import (
    load_prompts,
    resolve_variant,
    validate_config,
    validate_prompts_against_config,
)
from latentman.errors import LatentmanError


def _stop(message):
    # One clear line instead of a traceback; no job has started yet.
    sys.stderr.write(f"latentman config error: {message}\n")
    raise SystemExit(1)


try:
    validate_config(config, source="config")
    PROMPTS = load_prompts(config["prompts"])
    validate_prompts_against_config(PROMPTS, config, source=config["prompts"])
except LatentmanError as error:
    _stop(error)

PROMPT_IDS = list(PROMPTS.index)

# ---------------------------------------------------------------------------- paths
RESULTS = "results"
MOTION = RESULTS + "/motion/{prompt}.npz"
RENDER = RESULTS + "/render/{prompt}.h5"
CORRESPONDENCE = RESULTS + "/correspondence/{prompt}/{reference}.h5"
FRAMES = RESULTS + "/videos/{prompt}/{variant}/frames.h5"
EVALUATION = RESULTS + "/eval/{prompt}/{variant}.json"
MODELS = RESULTS + "/models"


def log_path(rule_name, pattern):
    return f"{RESULTS}/logs/{rule_name}/{pattern}.log"


def benchmark_path(rule_name, pattern):
    return f"{RESULTS}/benchmarks/{rule_name}/{pattern}.tsv"


wildcard_constraints:
    prompt="|".join(PROMPT_IDS),
    reference="prev_new|prev|first",


# ---------------------------------------------------------------------------- helpers
def prompt_row(prompt):
    return PROMPTS.loc[prompt].to_dict()


def variant_settings(variant):
    return resolve_variant(config, variant)


def all_targets():
    """Everything `snakemake --cores all` builds on the configured prompts and run_variants."""
    targets = []
    return targets
