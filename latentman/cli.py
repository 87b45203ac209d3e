"""`latentman`: list what the workflow knows without running it.

    latentman motions                          built-in motions and the words that select them
    latentman prompts   [--configfile FILE]    prompt ids, frames, seed and where each motion comes from
    latentman sweeps    [--configfile FILE]    named sweeps: variants, prompts, generate/evaluate jobs
    latentman variants SWEEP [--configfile F]  one sweep's variants, their jobs and shared results

The config is read as Snakemake reads it: ./config.yaml (the Snakefile's configfile), then each
--configfile merged over it in order. Mistakes are one line on stderr and exit status 1. No Snakemake
import: listing takes well under a second.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

from latentman.errors import ConfigError, LatentmanError

BASE_CONFIG = "config.yaml"
#: The table's name for the run_variants of `snakemake --cores all` (rules/common.smk, sweep "default").
DEFAULT_SWEEP = "default"


# ------------------------------------------------------------------------------------------ config
def load_workflow_config(configfiles: Sequence[str] = ()) -> tuple[dict, dict]:
    """(config, expanded sweeps): ./config.yaml with every --configfile merged over it (as Snakemake does),
    validated, its sweeps expanded into its variants (as rules/common.smk does)."""
    from latentman.config import deep_merge, load_config, validate_config
    from latentman.sweeps import register_sweeps

    base = Path(BASE_CONFIG)
    if not base.exists() and not configfiles:
        raise ConfigError(
            f"no {BASE_CONFIG} in {Path.cwd()}: run latentman in the workflow folder, or pass "
            "--configfile FILE"
        )
    config: dict = load_config(base) if base.exists() else {}
    for path in configfiles:
        config = deep_merge(config, load_config(path))
    validate_config(config, source="config")
    expanded = register_sweeps(config)
    validate_config(config, source="config (with expanded sweeps)")
    return config, expanded


def sweep_plan(config: dict, expanded: dict, sweep: str, prompt_ids: Sequence[str]) -> list[dict]:
    """One dict per variant of ``sweep`` (name, group, seed, same_as, generate, evaluate), in sweep order.

    generate counts the videos this sweep needs: a variant whose settings equal an earlier variant's
    reuses that one's video (latentman.sweeps.shared_results), counted once, on the first sweep member
    that needs it. evaluate is one job per variant and prompt.
    """
    from latentman.sweeps import select_sweep, shared_results, sweep_prompts

    if sweep == DEFAULT_SWEEP and sweep not in expanded:
        members = [(name, name, None) for name in config["run_variants"]]
        prompts = list(prompt_ids)
    else:
        if sweep not in expanded:
            defined = ", ".join([f"{DEFAULT_SWEEP} (run_variants)", *expanded])
            raise ConfigError(
                f"unknown sweep {sweep!r} (sweeps: {defined}; list them with `latentman sweeps`)"
            )
        members = [(v.name, v.group, v.seed) for v in select_sweep(expanded, sweep)]
        prompts = sweep_prompts(config["sweeps"][sweep], list(prompt_ids), sweep)
    shared = shared_results(config)
    needed: set[str] = set()
    plan = []
    for name, group, seed in members:
        canonical = shared.get(name, name)
        plan.append(
            {
                "variant": name,
                "group": group,
                "seed": seed,
                "same_as": canonical if canonical != name else "",
                "generate": 0 if canonical in needed else len(prompts),
                "evaluate": len(prompts),
                "prompts": len(prompts),
            }
        )
        needed.add(canonical)
    return plan


# ------------------------------------------------------------------------------------------ output
def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[k]) for row in cells) for k in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells)


def _base_words(words: Sequence[str]) -> list[str]:
    """The words that are not an inflection (-s, -ing, -ed, ...) of another word of the list."""
    from latentman.motion.library import _forms

    inflected = {form for word in words for form in _forms(word) if form != word}
    return [word for word in words if word not in inflected]


def cmd_motions(args) -> str:
    from latentman.motion.library import MOTIONS

    blocks = []
    for motion in MOTIONS.values():
        words = [*(" ".join(p) for p in motion.phrases), *_base_words(motion.words)]
        examples = ", ".join(f'"{e}"' for e in motion.examples)
        wrapped = textwrap.fill(
            ", ".join(words), width=100, initial_indent="    words: ", subsequent_indent=" " * 11
        )
        blocks.append(f"{motion.name}  (e.g. {examples})\n{wrapped}")
    return (
        "Built-in motions, chosen by the words of a prompt's motion text (and their -s, -ing, -ed forms; "
        "the verb wins).\nFor free text, set models.mdm in config.yaml to an MDM checkpoint.\n\n"
        + "\n".join(blocks)
    )


def cmd_prompts(args) -> str:
    from latentman.config import load_prompts
    from latentman.motion.library import explain_motion

    config, _ = load_workflow_config(args.configfile)
    prompts = load_prompts(config["prompts"])
    rows = []
    for prompt_id, row in prompts.iterrows():
        if row["motion_file"]:
            source = f"file {row['motion_file']}"
        elif config["models"].get("mdm"):
            source = "mdm"
        else:
            try:
                name, why = explain_motion(row["motion"])
                source = f"builtin:{name} ({why})"
            except LatentmanError:
                source = "no built-in motion matches (see `latentman motions`)"
        rows.append([prompt_id, row["frames"], row["seed"], row["motion"], source])
    return f"{config['prompts']}: {len(rows)} prompts\n" + _table(
        ["id", "frames", "seed", "motion text", "motion"], rows
    )


def _prompt_ids(config: dict) -> list[str]:
    from latentman.config import load_prompts

    return list(load_prompts(config["prompts"]).index)


def cmd_sweeps(args) -> str:
    config, expanded = load_workflow_config(args.configfile)
    prompt_ids = _prompt_ids(config)
    names = list(expanded)
    if DEFAULT_SWEEP not in names:
        names.insert(0, DEFAULT_SWEEP)
    rows = []
    for name in names:
        plan = sweep_plan(config, expanded, name, prompt_ids)
        sweep = (config.get("sweeps") or {}).get(name) or {}
        seeds = ", ".join(map(str, sweep["seeds"])) if sweep.get("seeds") else "each prompt's"
        rows.append(
            [
                f"{name} (run_variants)" if name == DEFAULT_SWEEP and name not in expanded else name,
                len(plan),
                sum(1 for p in plan if p["same_as"]),
                plan[0]["prompts"],
                seeds,
                sum(p["generate"] for p in plan),
                sum(p["evaluate"] for p in plan),
            ]
        )
    return (
        _table(["sweep", "variants", "reused", "prompts", "seeds", "generate jobs", "evaluate jobs"], rows)
        + "\n\nreused: variants whose settings equal an earlier variant's; they share its videos, so a video "
        "counts once in generate jobs (wherever it is built)"
        + "\nBuild a sweep: snakemake --cores all sweep --config sweep=NAME; list its variants: "
        "latentman variants NAME"
    )


def cmd_variants(args) -> str:
    config, expanded = load_workflow_config(args.configfile)
    plan = sweep_plan(config, expanded, args.sweep, _prompt_ids(config))
    rows = [
        [
            p["variant"],
            p["group"],
            "each prompt's" if p["seed"] is None else p["seed"],
            p["generate"],
            p["evaluate"],
            p["same_as"] and f"reuses {p['same_as']}",
        ]
        for p in plan
    ]
    total = [
        "total",
        "",
        "",
        sum(p["generate"] for p in plan),
        sum(p["evaluate"] for p in plan),
        "",
    ]
    return _table(["variant", "group", "seed", "generate", "evaluate", "same settings as"], [*rows, total])


# ------------------------------------------------------------------------------------------ main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="latentman",
        description="List the built-in motions, the prompts, the sweeps and their variants of the workflow "
        "in the current folder.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    configfile = argparse.ArgumentParser(add_help=False)
    configfile.add_argument(
        "--configfile",
        nargs="+",
        default=[],
        action="extend",
        metavar="FILE",
        help=f"config files merged over ./{BASE_CONFIG}, in order (as snakemake --configfile)",
    )
    commands.add_parser("motions", help="built-in motions and the words that select them").set_defaults(
        run=cmd_motions
    )
    commands.add_parser(
        "prompts", parents=[configfile], help="prompt ids and the motion each gets"
    ).set_defaults(run=cmd_prompts)
    commands.add_parser(
        "sweeps", parents=[configfile], help="named sweeps with their variant and job counts"
    ).set_defaults(run=cmd_sweeps)
    variants = commands.add_parser(
        "variants", parents=[configfile], help="the expanded variants of one sweep and their jobs"
    )
    variants.add_argument("sweep", metavar="SWEEP", help=f"a sweep name, or {DEFAULT_SWEEP} (run_variants)")
    variants.set_defaults(run=cmd_variants)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        text = args.run(args)
    except LatentmanError as error:
        print(f"latentman: error: {error}", file=sys.stderr)
        return 1
    try:
        print(text)
    except BrokenPipeError:  # `latentman motions | head`: the reader has gone, which is not an error
        sys.stdout = None
    return 0


if __name__ == "__main__":
    sys.exit(main())
