# Shared by every rule: config and prompt-table validation (before any job runs), the path of
# every file in the workflow, wildcard constraints and input functions.
import difflib
import os
import sys

from latentman.checks import validate_prompts_against_config
from latentman.config import (
    check_config_file,
    load_prompts,
    resolve_variant,
    validate_config,
    video_seed,
)
from latentman.errors import ConfigError, LatentmanError
from latentman.generation.methods import get_method
from latentman.models import TOY_DIR, check_model_files, check_motion_adapter_files
from latentman.render.densepose import densepose_available
from latentman.sweeps import (
    register_sweeps,
    select_sweep,
    shared_results,
    sweep_prompts,
)


def _stop(message, kind="config"):
    # One clear line instead of a traceback; no job has started yet. Also called from input functions
    # (a target path naming an unknown prompt, variant or sweep): Snakemake wraps an Exception raised
    # there in a multi-line InputFunctionException, but lets SystemExit through, and the DAG is built
    # before the working directory is locked, so nothing is left behind.
    sys.stderr.write(f"latentman {kind} error: {message}\n")
    raise SystemExit(1)


def _names(requested, valid):
    """'did you mean ...; ' for a close match, then every valid name."""
    close = difflib.get_close_matches(requested, valid, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"{hint}valid: {', '.join(valid)}"


try:
    # Snakemake keeps a key written twice silently
    for _configfile in workflow.configfiles:
        check_config_file(_configfile)
    validate_config(config, source="config")
    # sweeps: expand named grids into variants (resolve_variant finds them), then re-check them all
    SWEEPS = register_sweeps(config)
    validate_config(config, source="config (with expanded sweeps)")
    if config.get("sweep") is not None:
        select_sweep(SWEEPS, config["sweep"])  # an unknown --config sweep=NAME
    check_model_files(config["models"])
    check_motion_adapter_files(config["models"])
    if config["render"]["iuv"] == "densepose":
        usable, reason = densepose_available(config["models"].get("densepose"))
        if not usable:
            raise ConfigError(
                f"config: render.iuv = densepose cannot be used: {reason}"
            )
    PROMPTS = load_prompts(config["prompts"])
    validate_prompts_against_config(PROMPTS, config, source=config["prompts"])
    # variant -> the earlier variant with equal settings whose video it reuses (computed once)
    SHARED = shared_results(config)
except LatentmanError as error:
    _stop(error)

PROMPT_IDS = list(PROMPTS.index)

# ---------------------------------------------------------------------------- paths
RESULTS = "results"
MOTION = "results/motion/{prompt}.npz"
RENDER = "results/render/{prompt}.h5"
CORRESPONDENCE = "results/correspondence/{prompt}/{reference}.h5"
FRAMES = "results/videos/{prompt}/{variant}/frames.h5"
EVALUATION = "results/eval/{prompt}/{variant}.json"
MODELS = "results/models"
# previews and videos ({ext}: gif or mp4), written beside the stage's file
MOTION_PREVIEW = "results/motion/{prompt}.{ext}"
RENDER_PREVIEW = "results/render/{prompt}.{ext}"
CORRESPONDENCE_PREVIEW = "results/correspondence/{prompt}/preview.png"
VIDEO = "results/videos/{prompt}/{variant}/video.{ext}"


def log_path(rule_name, pattern):
    return f"{RESULTS}/logs/{rule_name}/{pattern}.log"


def benchmark_path(rule_name, pattern):
    return f"{RESULTS}/benchmarks/{rule_name}/{pattern}.tsv"


# prompt and variant take any name the schemas allow (not only the defined ones), so a target path with
# a misspelt id reaches an input function that names the valid ids, not a bare MissingRuleException.
wildcard_constraints:
    prompt="[A-Za-z0-9][A-Za-z0-9_.-]*",
    variant="[A-Za-z0-9][A-Za-z0-9_.+-]*",
    reference="prev_new|prev|first",


# ---------------------------------------------------------------------------- helpers
def prompt_row(prompt):
    if prompt not in PROMPTS.index:
        _stop(
            f"unknown prompt id {prompt!r} in a target path (prompt table {config['prompts']}; "
            f"{_names(prompt, PROMPT_IDS)})",
            kind="target",
        )
    return PROMPTS.loc[prompt].to_dict()


# ---------------------------------------------------------------------------- inputs and params per stage
# Each rule's params carry exactly the values its stage reads, so an edit reruns only what depends on
# it: new appearance text reruns generation, not the motion, render and correspondences it reuses.
MDM_KEYS = ("mdm", "mdm_clip", "mdm_stats")


def motion_inputs(wildcards):
    """The prompt's motion_file, or the MDM checkpoint; the built-in library is part of latentman."""
    motion_file = prompt_row(wildcards.prompt)["motion_file"]
    if motion_file:
        return {"motion_file": motion_file}
    return {"mdm": config["models"]["mdm"]} if config["models"].get("mdm") else {}


def motion_request(wildcards):
    """What the motion stage reads of a prompt row."""
    row = prompt_row(wildcards.prompt)
    return {key: row[key] for key in ("motion", "frames", "seed", "motion_file")}


def motion_models():
    return {key: config["models"].get(key) for key in MDM_KEYS}


def uses_densepose():
    return config["render"]["iuv"] == "densepose"


def render_inputs(wildcards):
    """The user's body file, DensePose UV data and (render.iuv: densepose) DensePose model folder."""
    models = config["models"]
    files = {}
    if models["body"] != "builtin":
        files["body"] = models["body"]
    if models.get("densepose_uv"):
        files["densepose_uv"] = models["densepose_uv"]
    if uses_densepose() and models.get("densepose"):
        files["densepose"] = models["densepose"]
    return files


def correspondence_radius():
    """surface_radius matters to the surface method only."""
    method = config["correspondence"]["method"]
    return config["correspondence"]["surface_radius"] if method == "surface" else None


def generation_request(wildcards):
    """What generation reads of a prompt row; the seed is the variant's, else the row's."""
    row = prompt_row(wildcards.prompt)
    return {
        "prompt": row["prompt"],
        "negative_prompt": row["negative_prompt"],
        "frames": row["frames"],
        "seed": video_seed(variant_settings(wildcards.variant)["seed"], row["seed"]),
    }


def generation_models(variant):
    """The model keys the variant's method reads (latentman.generation.methods): models.motion_adapter only
    for method animatediff, so a new adapter reruns the AnimateDiff videos and nothing else.
    """
    keys = get_method(variant_settings(variant)["method"]).model_keys
    return {key: config["models"].get(key) for key in keys}


def generate_inputs(wildcards):
    """The render, the variant's correspondence file (SLA or PWG on) and the model folder when it is
    built by the workflow (embedded:tiny) or ships with latentman (embedded:toy)."""
    settings = variant_settings(wildcards.variant)
    inputs = {"render": RENDER.format(prompt=wildcards.prompt)}
    if settings["sla"]["enabled"] or settings["pwg"]["enabled"]:
        inputs["correspondence"] = CORRESPONDENCE.format(
            prompt=wildcards.prompt, reference=settings["reference"]
        )
    models = generation_models(wildcards.variant)
    if "embedded:tiny" in models.values():
        inputs["models"] = f"{MODELS}/embedded-tiny"
    elif "embedded:toy" in models.values():
        # the shipped weights: a retrained export reruns generation
        inputs["models"] = str(TOY_DIR)
    return inputs


def variant_settings(variant):
    if variant not in config["variants"]:
        _stop(
            f"unknown variant {variant!r} in a target path ({_names(variant, list(config['variants']))})",
            kind="target",
        )
    return resolve_variant(config, variant)


def canonical_variant(variant):
    """The variant whose video this one reuses: itself unless an earlier variant has equal settings."""
    variant_settings(variant)  # an unknown name: one line
    return SHARED.get(variant, variant)


def evaluation_frames(wildcards):
    """frames.h5 that the evaluation of prompt x variant reads: the canonical variant's video."""
    return FRAMES.format(
        prompt=wildcards.prompt, variant=canonical_variant(wildcards.variant)
    )


def correspondence_references():
    """Sorted reference modes to compute: config correspondence.references plus prev (evaluation)."""
    return sorted(set(config["correspondence"]["references"]) | {"prev"})


def all_targets():
    """Everything `snakemake --cores all` builds on the configured prompts and run_variants."""
    targets = []
    # motion: the .npz and its stick-figure preview for every prompt
    for prompt in PROMPT_IDS:
        targets += [MOTION.format(prompt=prompt)]
        targets += [
            MOTION_PREVIEW.format(prompt=prompt, ext=ext) for ext in ("gif", "mp4")
        ]
    # render: depth, control image, IUV (.h5) and the control | IUV preview, per prompt
    for prompt in PROMPT_IDS:
        targets += [RENDER.format(prompt=prompt)]
        targets += [
            RENDER_PREVIEW.format(prompt=prompt, ext=ext) for ext in ("gif", "mp4")
        ]
    # correspondence: one file per reference mode in use, and a preview, per prompt
    for prompt in PROMPT_IDS:
        for reference in correspondence_references():
            targets += [CORRESPONDENCE.format(prompt=prompt, reference=reference)]
        targets += [CORRESPONDENCE_PREVIEW.format(prompt=prompt)]
    # generate: frames.h5 + videos of every run variant for every prompt (a run variant equal to an
    # earlier one is not generated again: its evaluation reads the earlier one's frames)
    for prompt in PROMPT_IDS:
        for variant in [v for v in config["run_variants"] if v not in SHARED]:
            targets += [FRAMES.format(prompt=prompt, variant=variant)]
            targets += [
                VIDEO.format(prompt=prompt, variant=variant, ext=ext)
                for ext in ("mp4", "gif")
            ]
    # evaluate + report: the default run's table and plots (rules/report.smk, sweep "default")
    return targets + sweep_targets("default")


# ---------------------------------------------------------------------------- sweeps (report.smk)
TABLE = f"{RESULTS}/tables/{{sweep}}"
PLOTS = f"{RESULTS}/plots/{{sweep}}"


wildcard_constraints:
    sweep="[A-Za-z0-9][A-Za-z0-9_+-]*",


def sweep_members(sweep):
    """(variant names, variant -> group, prompt ids) of a sweep; "default" = run_variants on every prompt."""
    if sweep == "default" and sweep not in SWEEPS:
        return list(config["run_variants"]), {}, PROMPT_IDS
    if sweep not in SWEEPS:
        _stop(
            f"unknown sweep {sweep!r} in a target path (sweeps: default (run_variants), "
            f"{', '.join(SWEEPS) or 'none'})",
            kind="target",
        )
    try:
        variants = select_sweep(SWEEPS, sweep)
        prompts = sweep_prompts(config["sweeps"][sweep], PROMPT_IDS, sweep)
    # in an input function: one line, not a multi-line InputFunctionException
    except LatentmanError as error:
        _stop(error)
    return [v.name for v in variants], {v.name: v.group for v in variants}, prompts


def sweep_evaluations(wildcards):
    variants, _, prompts = sweep_members(wildcards.sweep)
    return [EVALUATION.format(prompt=p, variant=v) for v in variants for p in prompts]


def sweep_contact_frames(wildcards):
    """frames.h5 of the sweep's first prompt, one per variant group (its first seed)."""
    variants, groups, prompts = sweep_members(wildcards.sweep)
    firsts = {}
    for variant in variants:
        firsts.setdefault(groups.get(variant, variant), variant)
    # input keys must be identifiers; params.contact_groups gives the group of frames_{k}
    return {
        f"frames_{k}": FRAMES.format(prompt=prompts[0], variant=canonical_variant(v))
        for k, v in enumerate(firsts.values())
    }


def sweep_groups_in_order(sweep):
    variants, groups, _ = sweep_members(sweep)
    return list(dict.fromkeys(groups.get(v, v) for v in variants))


def plot_inputs(wildcards):
    return {
        "evaluations": sweep_evaluations(wildcards),
        **sweep_contact_frames(wildcards),
    }


def sweep_targets(sweep):
    # gallery_targets (below): the report's pages of the sweep
    return (
        [TABLE.format(sweep=sweep) + ext for ext in (".csv", ".md")]
        + [
            f"{PLOTS.format(sweep=sweep)}/{name}.png"
            for name in ("h_mse_per_pair", "h_mse_bars", "contact_sheet")
        ]
        + gallery_targets(sweep)
    )


def requested_sweep(wildcards):
    name = config.get("sweep")
    if name is None:
        _stop(
            "the sweep target needs a sweep name: snakemake --cores all sweep --config sweep=NAME "
            f"(defined sweeps: {', '.join(sorted(SWEEPS)) or 'none'}; list them with `latentman sweeps`)"
        )
    return sweep_targets(name)


# ---------------------------------------------------------------------------- gallery (report.smk)
# The report's pages of a sweep: a summary page and one page per prompt (latentman.metrics.gallery).
GALLERY = f"{RESULTS}/gallery/{{sweep}}"
CAPTIONS = ("table", "h_mse_per_pair", "h_mse_bars", "contact_sheet")


def _existing(paths):
    """With --config partial=true only the files there now: the gallery then shows whatever has finished
    and names the rest, instead of asking for (and building) every missing video."""
    if config.get("partial") in (True, "true"):
        return [path for path in paths if os.path.isfile(path)]
    return list(paths)


def gallery_videos(sweep, prompt):
    """[variant, frames.h5, eval JSON, video.mp4] of every variant of the sweep for one prompt; a variant
    equal to an earlier one shows that one's video (it was generated once)."""
    variants = sweep_members(sweep)[0]
    return [
        [
            variant,
            FRAMES.format(prompt=prompt, variant=canonical_variant(variant)),
            EVALUATION.format(prompt=prompt, variant=variant),
            VIDEO.format(prompt=prompt, variant=canonical_variant(variant), ext="mp4"),
        ]
        for variant in variants
    ]


def gallery_previews(prompt):
    return {
        "motion": MOTION_PREVIEW.format(prompt=prompt, ext="gif"),
        "render": RENDER_PREVIEW.format(prompt=prompt, ext="gif"),
        "correspondence": CORRESPONDENCE_PREVIEW.format(prompt=prompt),
    }


def gallery_targets(sweep):
    """The summary page and one page per prompt of a sweep."""
    prompts = sweep_members(sweep)[2]
    return [GALLERY.format(sweep=sweep) + ".html"] + [
        f"{GALLERY.format(sweep=sweep)}/{prompt}.html" for prompt in prompts
    ]


def gallery_prompt_inputs(wildcards):
    videos = gallery_videos(wildcards.sweep, wildcards.prompt)
    return {
        "frames": _existing(dict.fromkeys(v[1] for v in videos)),
        "evaluations": _existing(v[2] for v in videos),
        "previews": _existing(gallery_previews(wildcards.prompt).values()),
        "captions": [
            f"{workflow.basedir}/report/{name}.rst"
            for name in ("motion", "render", "correspondence")
        ],
    }


def gallery_summary_videos(sweep):
    return {prompt: gallery_videos(sweep, prompt) for prompt in sweep_members(sweep)[2]}


def gallery_summary_inputs(wildcards):
    videos = gallery_summary_videos(wildcards.sweep)
    contact = videos[sweep_members(wildcards.sweep)[2][0]]
    return {
        "evaluations": _existing(v[2] for entries in videos.values() for v in entries),
        "frames": _existing(dict.fromkeys(v[1] for v in contact)),
        # the captions are read into the page: an edit rebuilds it
        "captions": [f"{workflow.basedir}/report/{name}.rst" for name in CAPTIONS],
    }
