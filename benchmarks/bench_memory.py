"""Benchmark: the paper's memory at 512², rehearsed on the CPU with the real SD1.5 + ControlNet architecture.

Usage:  python benchmarks/bench_memory.py [--model embedded:sd15-random] [--res 512] [--chunks 1,2,4]
            [--modes off,unet,full,decoder] [--frames 8,16,24] [--frames-chunk 2] [--frame-modes off,unet]
            [--out results/bench_memory.json] [--resume]

Every measurement runs in a fresh spawned process (``bench_generation.memory_child``): the model is built,
the kernel's peak-RSS counter is reset (so building is not counted), ONE denoising step runs with PWG in
the given gradient mode (or off) on that step, then the final decode; peak = VmHWM (weights included, as
``torch.cuda.max_memory_allocated`` counts them on a GPU).

1. Chunk sweep: a video of ``c`` frames denoised in one chunk of ``c`` for each ``c`` of ``--chunks`` and
   each mode. Peak grows linearly with the frames of one UNet call; a least-squares line per mode gives
   the fixed part (weights, VAE, text encoder, caches) and the MiB per frame of a chunk, from which the
   peak of a chunk of 8, 16 and 24 frames (the official code denoises all frames in one batch) and the
   largest chunk under 24 GB and 80 GB follow.
2. Frame sweep: videos of ``--frames`` frames in chunks of ``--frames-chunk`` (the pipeline's normal path):
   how the peak grows with the video's length at a fixed chunk size.

Each measured row is saved to ``--out`` as soon as it is measured (a 24-frame step at 512² takes ~15 min on a
2-core CPU); ``--resume`` keeps the rows already there (same model and resolution) and measures only the
missing ones, so a stopped run goes on, or its rows give the tables with a narrower sweep.

float32 on the CPU. The float16 column halves weights and activations (an estimate, not a measurement: the
GPU's attention kernels and allocator add their own; ``tools/gpu_check.sh`` measures the GPU).
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_generation import machine, memory_child  # noqa: E402

from latentman.io import write_json  # noqa: E402

MODES = ("off", "unet", "full", "decoder")
GB = 1e9 / 2**20  # MiB in a (decimal) GB, the unit GPU memory is sold in


def measure(model: str, res: int, frames: int, chunk: int, mode: str) -> dict:
    """Peak RSS (MiB) of one step of a ``frames``-frame video in chunks of ``chunk``, in a fresh process."""
    ctx = multiprocessing.get_context("spawn")
    pool = ctx.Pool(1)
    try:
        pwg = None if mode == "off" else mode
        result = pool.apply(memory_child, (model, res, frames, pwg, False, chunk))
    finally:
        pool.close()
        pool.join()
    return {"frames": frames, "chunk": chunk, "mode": mode} | result


def fit_line(chunks: list[int], peaks: list[float]) -> tuple[float, float]:
    """(fixed MiB, MiB per frame of a chunk): least squares peak = fixed + per_frame · chunk."""
    if len(set(chunks)) < 2:
        raise ValueError("the chunk sweep needs at least two chunk sizes to fit a line")
    per_frame, fixed = np.polyfit(np.asarray(chunks, float), np.asarray(peaks, float), 1)
    return float(fixed), float(per_frame)


def largest_chunk(fixed: float, per_frame: float, limit_mib: float) -> int:
    """The largest chunk whose predicted peak stays under ``limit_mib`` (0: not even one frame)."""
    if per_frame <= 0:
        raise ValueError(f"a per-frame cost of {per_frame:.1f} MiB is not a growth; measure more chunk sizes")
    return max(0, int((limit_mib - fixed) // per_frame))


def chunk_table(rows: list[dict], modes: list[str]) -> tuple[list[str], dict]:
    """The chunk sweep's markdown table and the fitted line per mode."""
    fits, lines = {}, []
    chunks = sorted({r["chunk"] for r in rows})
    lines += [
        "| PWG | " + " | ".join(f"peak, chunk {c} (MiB)" for c in chunks) + " | fixed MiB | MiB per frame "
        "| predicted 8 / 16 / 24 (GB) | largest chunk < 24 GB / 80 GB | float16 estimate < 24 / 80 GB |",
        "|---|" + "---:|" * (len(chunks) + 5),
    ]
    for mode in modes:
        mine = sorted((r for r in rows if r["mode"] == mode), key=lambda r: r["chunk"])
        fixed, per_frame = fit_line([r["chunk"] for r in mine], [r["peak"] for r in mine])
        fits[mode] = {"fixed_mib": fixed, "per_frame_mib": per_frame}
        predicted = " / ".join(f"{(fixed + per_frame * n) / GB:.1f}" for n in (8, 16, 24))
        fp32 = [largest_chunk(fixed, per_frame, g * GB) for g in (24, 80)]
        fp16 = [largest_chunk(fixed / 2, per_frame / 2, g * GB) for g in (24, 80)]
        peaks = " | ".join(f"{r['peak']:.0f}" for r in mine)
        lines.append(
            f"| {mode} | {peaks} | {fixed:.0f} | {per_frame:.0f} | {predicted} | {fp32[0]} / {fp32[1]} "
            f"| {fp16[0]} / {fp16[1]} |"
        )
    return lines, fits


def frame_table(rows: list[dict], chunk: int) -> list[str]:
    lines = [
        "| PWG | frames | chunk | peak MiB | step working set MiB | s (one step + decode) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['mode']} | {r['frames']} | {chunk} | {r['peak']:.0f} | {r['peak'] - r['loaded']:.0f} "
            f"| {r['wall']:.0f} |"
        )
    return lines


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def _modes(text: str) -> list[str]:
    modes = [m for m in text.split(",") if m]
    unknown = set(modes) - set(MODES)
    if unknown:
        raise SystemExit(f"unknown PWG mode(s) {sorted(unknown)}: use a comma list of {', '.join(MODES)}")
    return modes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default="embedded:sd15-random", choices=["embedded:sd15-random", "embedded:tiny"]
    )
    parser.add_argument("--res", type=int, default=512)
    parser.add_argument("--chunks", default="1,2,4", help="chunk sizes of the chunk sweep (>= 2 values)")
    parser.add_argument("--modes", default=",".join(MODES), help="PWG modes of the chunk sweep ('' skips it)")
    parser.add_argument("--frames", default="8,16,24", help="video lengths of the frame sweep ('' skips it)")
    parser.add_argument("--frames-chunk", type=int, default=2)
    parser.add_argument("--frame-modes", default="off,unet", help="PWG modes of the frame sweep")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "bench_memory.json")
    parser.add_argument(
        "--write-fit",
        type=Path,
        help="also write the per-frame fit the pipeline's memory line reads "
        "(latentman/data/memory_rehearsal.json; needs all four modes)",
    )
    parser.add_argument(
        "--resume", action="store_true", help="keep the rows already measured in --out, measure the rest"
    )
    args = parser.parse_args(argv)
    chunks, modes = _ints(args.chunks), _modes(args.modes)
    frames, frame_modes = _ints(args.frames), _modes(args.frame_modes)
    start = time.perf_counter()
    done = _measured(args.out, args.model, args.res) if args.resume else {}
    kept = len(done)
    planned = [("chunk", mode, c, c) for mode in modes for c in chunks]
    planned += [("frame", mode, n, args.frames_chunk) for mode in frame_modes for n in frames]
    rows: dict[str, list[dict]] = {"chunk": [], "frame": []}
    for sweep, mode, n, chunk in planned:
        key = (n, chunk, mode)
        if key not in done:
            what = f"chunk {chunk}" if sweep == "chunk" else f"{n} frames"
            print(f"[memory] {sweep} sweep: PWG {mode}, {what} ...", file=sys.stderr, flush=True)
            done[key] = measure(args.model, args.res, n, chunk, mode)
            _save_rows(args.out, args.model, args.res, list(done.values()))
        rows[sweep].append(done[key])
    chunk_rows, frame_rows = rows["chunk"], rows["frame"]
    table, fits = chunk_table(chunk_rows, modes)
    command = " ".join(sys.argv[1:] if argv is None else argv)
    lines = [
        f"command: python benchmarks/bench_memory.py {command}".rstrip(),
        f"machine: {machine()}; date {datetime.date.today()}",
    ]
    if chunk_rows:  # --modes '' runs the frame sweep alone
        lines += [
            "",
            f"#### Peak memory by chunk size ({args.model}, {args.res}², one step, float32, CPU peak RSS)",
            "",
            *table,
        ]
    if frame_rows:
        lines += [
            "",
            f"#### Peak memory by video length ({args.model}, {args.res}², chunks of {args.frames_chunk})",
            "",
            *frame_table(frame_rows, args.frames_chunk),
        ]
    elapsed = time.perf_counter() - start
    lines += [
        "",
        f"total benchmark time {elapsed:.0f} s"
        + (f" (kept {kept} measured rows from {args.out})" if kept else ""),
    ]
    print("\n".join(lines))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(
        args.out,
        {
            "model": args.model,
            "res": args.res,
            "rows": list(done.values()),  # with --resume: also rows of sweeps not asked for this time
            "finished": True,
            "chunk_sweep": chunk_rows,
            "frame_sweep": frame_rows,
            "fits": fits,
            "seconds": elapsed,
        },
    )
    if args.write_fit is not None:
        write_json(args.write_fit, fit_record(args, fits, command))  # atomic: the pipeline reads it
    return 0


def _measured(path: Path, model: str, res: int) -> dict:
    """The rows a previous run saved in ``path`` by (frames, chunk, mode), when it measured this model at
    this resolution (anything else is measured again)."""
    if not path.exists():
        return {}
    saved = json.loads(path.read_text())
    if saved.get("model") != model or saved.get("res") != res:
        print(
            f"[memory] {path} holds {saved.get('model')} at {saved.get('res')}²: measuring anew",
            file=sys.stderr,
        )
        return {}
    return {(r["frames"], r["chunk"], r["mode"]): r for r in saved.get("rows", [])}


def _save_rows(path: Path, model: str, res: int, rows: list[dict]) -> None:
    """Every row measured so far, atomically (``--resume`` reads them back)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {"model": model, "res": res, "rows": rows, "finished": False})


def fit_record(args, fits: dict, command: str) -> dict:
    """What the pipeline's memory line reads (latentman.generation.memory): MiB per frame of one UNet call
    per PWG mode, at this resolution in float32, with where it came from."""
    if set(fits) != set(MODES):
        raise SystemExit(f"--write-fit needs every PWG mode in --modes ({', '.join(MODES)})")
    return {
        "res": args.res,
        "dtype": "float32",
        "model": args.model,
        "per_frame_mib": {mode: round(fits[mode]["per_frame_mib"], 1) for mode in MODES},
        "fixed_mib": {mode: round(fits[mode]["fixed_mib"], 1) for mode in MODES},
        "source": f"python benchmarks/bench_memory.py {command}".rstrip(),
        "date": str(datetime.date.today()),
        "machine": machine(),
    }


if __name__ == "__main__":
    sys.exit(main())
