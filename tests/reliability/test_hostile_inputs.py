"""Hostile inputs across the workflow: each gives one clear line (naming the key, file or frame) before work
is wasted, and leaves no output that looks complete.

Workflow-level cases run `snakemake -n` in a copy of the repository (the checks run when the workflow
starts, before any job); file-level cases call the readers that every rule uses on damaged files.
"""

import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import copy_repo

from latentman.correspondence import read_correspondence, read_render_inputs, write_correspondence
from latentman.errors import IntermediateFileError, LatentmanError, ModelNotFoundError
from latentman.generation.storage import read_frames
from latentman.io import atomic_h5, write_dataset
from latentman.metrics.evaluate import evaluate_video
from latentman.metrics.storage import read_evaluation
from latentman.models import check_controlnet_folder, check_sd_folder
from latentman.motion import read_motion, write_motion
from latentman.motion.library import choose_motion

HEADER = "id\tmotion\tprompt\tnegative_prompt\tframes\tseed\n"


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return copy_repo(tmp_path_factory.mktemp("hostile") / "repo")


def dry_run(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_stops(result: subprocess.CompletedProcess, repo: Path, *fragments: str) -> str:
    """Exit 1, one 'latentman config error' line containing every fragment, no results written."""
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("latentman config error")]
    assert len(lines) == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert not (repo / "results").exists()
    return lines[0]


def config_case(repo: Path, name: str, text: str, *args: str) -> subprocess.CompletedProcess:
    path = repo / f"{name}.yaml"
    path.write_text(textwrap.dedent(text))
    return dry_run(repo, "--configfile", str(path), *args)


#: free-text prompts are for real SD weights: the toy default reads only its caption grammar
ANY_TEXT_MODELS = "models={stable_diffusion: embedded:tiny, controlnet_depth: embedded:tiny}"


def prompts_case(repo: Path, name: str, rows: str) -> subprocess.CompletedProcess:
    path = repo / f"{name}.tsv"
    path.write_text(HEADER + rows)
    return dry_run(repo, "--config", f"prompts={path}", ANY_TEXT_MODELS)


# ----------------------------------------------------------------------------------- config.yaml
CONFIG_CASES = {
    "resolution_not_multiple_of_64": (
        "render:\n  resolution: 100\n",
        ["render.resolution", "multiple of 64"],
    ),
    "unknown_key": ("rendr:\n  resolution: 64\n", ["rendr"]),
    "reversed_sla_steps": ("generation:\n  defaults:\n    sla: {steps: [7, 0]}\n", ["sla.steps"]),
    "pwg_steps_past_schedule": (
        "variants:\n  latentman:\n    pwg: {steps: [4, 500]}\n",
        ["pwg.steps", "500"],
    ),
    "negative_delta": ("generation:\n  defaults:\n    pwg: {delta: -1}\n", ["delta"]),
    "unknown_run_variant": ("run_variants: [t2v_zero, nope]\n", ["nope"]),
    "unknown_method": ("variants:\n  t2v_zero: {method: sora}\n", ["method", "sora"]),
    "missing_sd_folder": ("models:\n  stable_diffusion: /nonexistent/sd15\n", ["models.stable_diffusion"]),
    "missing_body_file": ("models:\n  body: /nonexistent/SMPL_NEUTRAL.pkl\n", ["models.body", "smpl.is.tue"]),
    "missing_mdm_checkpoint": ("models:\n  mdm: /nonexistent/model000200000.pt\n", ["models.mdm"]),
    "missing_prompt_table": (
        "prompts: /nonexistent/prompts.tsv\n",
        ["/nonexistent/prompts.tsv", "not found"],
    ),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_bad_config_stops_before_any_job(repo, case):
    text, fragments = CONFIG_CASES[case]
    assert_stops(config_case(repo, case, text), repo, *fragments)


def test_broken_yaml_is_one_line(repo):
    result = config_case(repo, "broken", "render: {resolution: 64\n")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert "Config file is not valid JSON or YAML" in output
    assert not (repo / "results").exists()


def test_unknown_sweep_lists_the_defined_ones(repo):
    result = dry_run(repo, "sweep", "--config", "sweep=nope")
    assert_stops(result, repo, "nope", "paper")


# ----------------------------------------------------------------------------------- prompts.tsv
PROMPT_CASES = {
    "whitespace_only_prompt": ("a\ta person walks\t   \t\t4\t1\n", ["prompt"]),
    "duplicate_ids": ("a\ta person walks\ta robot\t\t4\t1\na\ta person jumps\ta robot\t\t4\t2\n", ["'a'"]),
    "one_frame": ("a\ta person walks\ta robot\t\t1\t1\n", ["frames"]),
    "frames_not_a_number": ("a\ta person walks\ta robot\t\teight\t1\n", ["frames", "eight"]),
    "negative_seed": ("a\ta person walks\ta robot\t\t4\t-3\n", ["seed"]),
    "bad_id": ("a/b\ta person walks\ta robot\t\t4\t1\n", ["id"]),
    "unknown_motion": ("a\ta person levitates\ta robot\t\t4\t1\n", ["levitates", "walk", "models.mdm"]),
    "prompt_over_token_limit": ("a\ta person walks\t" + "very " * 240 + "long\t\t4\t1\n", ["tokens", "225"]),
}


@pytest.mark.parametrize("case", sorted(PROMPT_CASES))
def test_bad_prompt_table_stops_before_any_job(repo, case):
    rows, fragments = PROMPT_CASES[case]
    assert_stops(prompts_case(repo, case, rows), repo, *fragments)


def test_missing_motion_file_is_named(repo):
    path = repo / "motion_file.tsv"
    path.write_text(
        HEADER.rstrip("\n") + "\tmotion_file\n" + "a\ta person walks\ta robot\t\t4\t1\t/nope/m.npz\n"
    )
    assert_stops(dry_run(repo, "--config", f"prompts={path}", ANY_TEXT_MODELS), repo, "/nope/m.npz")


def test_non_ascii_text_is_accepted(repo):
    result = prompts_case(
        repo, "unicode", "zürich\tun homme marche (walks) à Zürich\tun chevalier — 騎士\t\t4\t1\n"
    )
    assert_stops(result, repo, "id")  # ids name result files: ASCII only
    result = prompts_case(
        repo, "unicode2", "zurich\tun homme marche (walks) à Zürich\tun chevalier — 騎士\t\t4\t1\n"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert choose_motion("un homme marche (walks) à Zürich") == "walk"
    result = dry_run(repo, "--config", f"prompts={repo / 'unicode2.tsv'}")  # the toy default: named words
    assert_stops(result, repo, "words embedded:toy was never trained on ('chevalier', 'un', '—')")


# ------------------------------------------------------------------------------ damaged intermediates
def good_motion(tmp_path) -> Path:
    from latentman.motion import make_motion

    motion = make_motion(
        {"motion": "a person walks", "frames": 3, "seed": 1, "motion_file": ""},
        {"motion": {"fps": 20, "frame_step": 1}},
    )
    path = tmp_path / "m.npz"
    write_motion(path, motion)
    return path


def test_truncated_motion_file_names_the_rule(tmp_path):
    path = good_motion(tmp_path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(IntermediateFileError, match=r"m\.npz: not a readable motion .npz.*rule 'motion'"):
        read_motion(path)


def rewrite_joints(path: Path, change) -> None:
    """Rewrite the motion file with ``change(joints)`` in place of its joints (other arrays kept)."""
    with np.load(path) as data:
        arrays = dict(data)
    arrays["joints"] = change(arrays["joints"])
    np.savez(path, **arrays)


def test_motion_with_nan_names_the_array_and_index(tmp_path):
    path = good_motion(tmp_path)

    def poison(joints):
        joints[2, 5, 1] = np.nan
        return joints

    rewrite_joints(path, poison)
    with pytest.raises(IntermediateFileError, match=r"'joints' contains NaN.*\(2, 5, 1\)"):
        read_motion(path)


def test_motion_with_wrong_shape(tmp_path):
    path = good_motion(tmp_path)
    rewrite_joints(path, lambda joints: joints[:, :10])
    with pytest.raises(
        IntermediateFileError, match=r"'joints' has shape \(\d+, 10, 3\), expected \(\*, 22, 3\)"
    ):
        read_motion(path)


def write_render(path: Path, iuv: np.ndarray) -> None:
    with atomic_h5(path, "render") as h5:
        write_dataset(h5, "iuv", iuv)


def test_truncated_render_file(tmp_path):
    path = tmp_path / "r.h5"
    write_render(path, np.zeros((2, 16, 16, 3), np.uint8))
    path.write_bytes(path.read_bytes()[:512])
    with pytest.raises(IntermediateFileError, match="truncated or foreign.*rerun rule 'render'"):
        read_render_inputs(path, "hungarian")


def test_render_iuv_with_wrong_shape(tmp_path):
    path = tmp_path / "r.h5"
    write_render(path, np.zeros((2, 16, 16, 2), np.uint8))
    with pytest.raises(IntermediateFileError, match=r"'iuv' has shape \(2, 16, 16, 2\)"):
        read_render_inputs(path, "hungarian")


def write_corr(path: Path, source_guidance: np.ndarray) -> None:
    count, grid = source_guidance.shape[:2]
    result = {
        name: {
            "source": src,
            "grid": src.shape[1],
            "iuv": np.zeros(src.shape + (3,), np.uint8),
            "reference_index": np.arange(-1, count - 1, dtype=np.int32),
            "cost": np.zeros(count),
            "solver": "test",
        }
        for name, src in (("latent", np.full((count, 2, 2), -1, np.int32)), ("guidance", source_guidance))
    }
    write_correspondence(path, result, reference="prev", method="hungarian")


def test_correspondence_that_is_not_injective(tmp_path):
    source = np.full((2, 8, 8), -1, np.int32)
    source[1, 0, :2] = 5  # two pixels claim the same source
    write_corr(tmp_path / "c.h5", source)
    with pytest.raises(IntermediateFileError, match="frame 1 is not an injective map.*rule 'correspondence'"):
        read_correspondence(tmp_path / "c.h5")


def _correspondence_with_matches(path: Path) -> None:
    source = np.full((3, 8, 8), -1, np.int32)
    source[1, :4, :4] = np.arange(16).reshape(4, 4)
    source[2, 2:6, 2:6] = np.arange(16).reshape(4, 4) + 20
    write_corr(path, source)


def _flip_bits(path: Path, out: Path, trials: int, seed: int):
    """Yield after writing ``out`` = ``path`` with one random bit flipped, ``trials`` times."""
    data = path.read_bytes()
    rng = np.random.default_rng(seed)
    for _ in range(trials):
        bit = int(rng.integers(0, len(data) * 8))
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        out.write_bytes(bytes(flipped))
        yield bit


def test_single_bit_flips_are_caught_or_harmless(tmp_path):
    """Every flip either leaves every dataset equal or gives one IntermediateFileError: no raw exception
    from h5py, no silently changed array (datasets carry a CRC-32)."""
    _correspondence_with_matches(tmp_path / "c.h5")
    original = read_correspondence(tmp_path / "c.h5")
    caught = 0
    for bit in _flip_bits(tmp_path / "c.h5", tmp_path / "f.h5", 300, seed=1):
        try:
            got = read_correspondence(tmp_path / "f.h5")
        except IntermediateFileError as exc:
            assert "rule 'correspondence'" in str(exc), bit
            caught += 1
            continue
        assert np.array_equal(got["reference_index"], original["reference_index"]), bit
        for grid in ("latent", "guidance"):
            for key in ("iuv", "source", "cost"):
                assert np.array_equal(got[grid][key], original[grid][key]), (bit, grid, key)
    assert caught > 0


def test_changed_values_fail_the_checksum(tmp_path):
    _correspondence_with_matches(tmp_path / "c.h5")
    with h5py.File(tmp_path / "c.h5", "a") as h5:
        h5["guidance/cost"][1] = 0.5  # small datasets are stored uncompressed: gzip would not notice
    with pytest.raises(IntermediateFileError, match="'guidance/cost' does not match its checksum"):
        read_correspondence(tmp_path / "c.h5")


@pytest.mark.parametrize(
    "dataset, values, message",
    [
        ("reference_index", [-1, 2, 1], r"'/reference_index' \[-1, 2, 1\] is not a list of earlier frames"),
        ("reference_index", [0, 0, 1], r"is not a list of earlier frames"),
        ("guidance/source", -5, r"'/guidance/source' frame 1 is not an injective map"),
    ],
)
def test_stored_indices_are_range_checked(tmp_path, dataset, values, message):
    from latentman.io import checksum

    _correspondence_with_matches(tmp_path / "c.h5")
    with h5py.File(tmp_path / "c.h5", "a") as h5:
        data = h5[dataset][()]
        if dataset == "reference_index":
            data[:] = values
        else:
            data[1, 7, 7] = values
        h5[dataset][...] = data
        h5[dataset].attrs["crc32"] = checksum(data)  # a consistent file with wrong indices
    with pytest.raises(IntermediateFileError, match=message):
        read_correspondence(tmp_path / "c.h5")


def test_correspondence_of_another_resolution_than_the_frames(tmp_path):
    write_corr(tmp_path / "c.h5", np.full((2, 8, 8), -1, np.int32))
    frames = tmp_path / "f.h5"
    with atomic_h5(frames, "frames", {"settings": {"method": "t2v_zero"}}) as h5:
        write_dataset(h5, "frames", np.zeros((2, 64, 64, 3), np.uint8))
    with pytest.raises(LatentmanError, match="correspondence"):
        evaluate_video(frames, tmp_path / "c.h5", "p", "v")


def test_frames_file_that_is_a_render_file(tmp_path):
    path = tmp_path / "f.h5"
    write_render(path, np.zeros((2, 16, 16, 3), np.uint8))
    with pytest.raises(
        IntermediateFileError, match="expected a 'frames' file, found format='render'.*rerun rule 'generate'"
    ):
        read_frames(path)


def test_frames_with_wrong_dtype(tmp_path):
    path = tmp_path / "f.h5"
    with atomic_h5(path, "frames") as h5:
        write_dataset(h5, "frames", np.zeros((2, 16, 16, 3), np.float32))
    with pytest.raises(IntermediateFileError, match="'frames' has dtype float32, expected uint8"):
        read_frames(path)


def test_corrupted_eval_json(tmp_path):
    path = tmp_path / "e.json"
    path.write_text('{"format": "eval", "h_mse": ')
    with pytest.raises(IntermediateFileError, match="not a readable eval JSON.*rule 'evaluate'"):
        read_evaluation(path)


def test_old_format_version_is_rejected_not_misread(tmp_path):
    path = tmp_path / "c.h5"
    write_corr(path, np.full((2, 8, 8), -1, np.int32))
    with h5py.File(path, "a") as h5:
        h5.attrs["format_version"] = 0
    with pytest.raises(IntermediateFileError, match="format version 0.*rerun rule 'correspondence'"):
        read_correspondence(path)


# ------------------------------------------------------------------------------------------ models
def test_model_folder_missing_a_part(tmp_path):
    for part in ("unet", "vae", "text_encoder"):
        (tmp_path / "sd" / part).mkdir(parents=True)
        (tmp_path / "sd" / part / "config.json").write_text("{}")
    with pytest.raises(ModelNotFoundError, match="stable_diffusion.*tokenizer/ is missing.*v1-5/stable-diff"):
        check_sd_folder(tmp_path / "sd")


def test_controlnet_folder_without_weights(tmp_path):
    (tmp_path / "cn").mkdir()
    (tmp_path / "cn" / "config.json").write_text("{}")
    with pytest.raises(ModelNotFoundError, match="models.controlnet_depth.*no weights file.*control_v11f1p"):
        check_controlnet_folder(tmp_path / "cn")


LFS_POINTER = (
    b"version https://git-lfs.github.com/spec/v1\noid sha256:4d7a2146bd3f4c1f5e3c8b1f0b1e2f3a"
    b"4d7a2146bd3f4c1f5e3c8b1f0b1e2f3a\nsize 3438167534\n"
)


@pytest.mark.parametrize(
    "content, message",
    [
        (LFS_POINTER, "is a Git LFS pointer, not the file itself"),
        (b"", r"is empty \(0 bytes\)"),
        (b"frame,x,y,z\n0,0.1,0.9,0.0\n", "is a text file, not binary data \\(it begins 'frame,x,y,z'\\)"),
    ],
)
def test_files_that_are_not_what_their_extension_says(tmp_path, content, message):
    from latentman.body.model import read_model_file
    from latentman.motion.importers import import_motion

    for name in ("results.npy", "motion.npz"):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(LatentmanError, match=f"^motion_file {tmp_path / name}: {message}"):
            import_motion(tmp_path / name, 10, 20.0)
    (tmp_path / "SMPL_NEUTRAL.pkl").write_bytes(content)
    with pytest.raises(ModelNotFoundError, match=f"models.body: the body model file {message}"):
        read_model_file(tmp_path / "SMPL_NEUTRAL.pkl")
    (tmp_path / "cn").mkdir()
    (tmp_path / "cn" / "config.json").write_text("{}")
    (tmp_path / "cn" / "diffusion_pytorch_model.safetensors").write_bytes(content)
    with pytest.raises(ModelNotFoundError, match=f"diffusion_pytorch_model.safetensors {message}"):
        check_controlnet_folder(tmp_path / "cn")


def test_git_annex_link_without_content(tmp_path):
    from latentman.motion.importers import import_motion

    link = tmp_path / "walk.npz"
    link.symlink_to("../.git/annex/objects/Xq/3F/SHA256E-s1--ab.npz/SHA256E-s1--ab.npz")
    with pytest.raises(LatentmanError, match="is a git-annex link whose content is not here"):
        import_motion(link, 10, 20.0)


# --------------------------------------------------------------------------------------- full disk
FULL_DISK_SCRIPT = """
import resource, signal, sys
import numpy as np
from latentman.errors import OutputWriteError
from latentman.io import write_npz
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
try:
    write_npz(sys.argv[1], {"joints": np.random.default_rng(0).random((200, 22, 3))})
except OutputWriteError as error:
    print("ERROR", error)
"""


def test_full_disk_gives_one_line_and_leaves_nothing(tmp_path):
    target = tmp_path / "motion.npz"
    result = subprocess.run(
        [sys.executable, "-c", FULL_DISK_SCRIPT, str(target)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("ERROR ") and "motion.npz: could not be written" in result.stdout
    assert "free space" in result.stdout
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary copy
    assert resource.getrlimit(resource.RLIMIT_FSIZE)  # (the limit only applied to the child)
