"""Import motions from files named in the ``motion_file`` column of prompts.tsv.

Formats (chosen from content, not only the extension):

- MDM's ``results.npy``: a pickled dict with ``motion`` ``(N, 22, 3, T)`` (joint positions, Y up,
  20 fps), ``text``, ``lengths``; the first sample is used.
- AMASS-style SMPL ``.npz``: ``poses`` axis-angle, ``trans`` ``(T, 3)``, and the rate as
  ``mocap_framerate`` (AMASS SMPL-H) or ``mocap_frame_rate`` (AMASS SMPL-X); Z up → Y up. ``poses``
  ``(T, 72)`` is SMPL: all 24 joints are used, 22–23 being its hands. Any other width ≥ 66 (SMPL-H 156 =
  22 body + 15 + 15 finger joints; SMPL-X 165 = 22 body, jaw, two eyes, 15 + 15 finger joints) shares
  only the 22 body joints ``poses[:, :66]`` with SMPL; SMPL's hand joints 22–23 are set to the identity
  (rest). The fingers are not SMPL's hand joints: ``poses[:, 66:72]`` of SMPL-H is the left index finger.
- plain joint arrays ``(T, 22, 3)`` (or ``(T, 24, 3)``): ``.npy``, or ``.npz`` with ``joints`` and an
  optional ``fps`` (default: the target fps). Metres, Y up.

Every import is resampled to the target fps (duration preserved), cut to the needed frame count and
grounded (lowest foot joint of the first frame at y = 0).
"""

from __future__ import annotations

import logging
import stat
import zipfile
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from latentman import safe_pickle
from latentman.errors import LatentmanError
from latentman.io import not_the_file
from latentman.motion.clip import Motion, from_smpl, ground, require_frames
from latentman.motion.plausibility import skeleton_problem
from latentman.skeleton import NUM_HML_JOINTS

log = logging.getLogger(__name__)

#: Frame rates a motion file may state (frames per second): below 1 or above 1000 is a unit or field mistake
#: (a frame period in seconds, a timestamp), and a tiny rate would resample to millions of frames.
FPS_RANGE = (1.0, 1000.0)
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
FILE_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a directory"),
)

#: Z-up (AMASS) → Y-up: (x, y, z) → (x, z, -y), a -90° rotation about X.
Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


# ------------------------------------------------------------------------------------ resampling
def resample_times(frames: int, fps_in: float, fps_out: float) -> np.ndarray:
    """Sample times (seconds) at ``fps_out`` covering the same duration as ``frames`` at ``fps_in``."""
    duration = (frames - 1) / fps_in
    count = int(np.floor(duration * fps_out + 1e-6)) + 1
    return np.arange(count) / fps_out


def _time_grids(frames: int, fps_in: float, fps_out: float) -> tuple[np.ndarray, np.ndarray]:
    """Input sample times and output times, the latter clipped to the last input sample."""
    t_in = np.arange(frames) / fps_in
    return t_in, np.minimum(resample_times(frames, fps_in, fps_out), t_in[-1])


def resample_positions(values: np.ndarray, fps_in: float, fps_out: float) -> np.ndarray:
    """Linear resampling of ``(T, ...)`` values along time; the duration is preserved."""
    values = np.asarray(values, dtype=np.float64)
    if np.isclose(fps_in, fps_out):
        return values.copy()
    t_in, t_out = _time_grids(len(values), fps_in, fps_out)
    flat = values.reshape(len(values), -1)
    out = np.stack([np.interp(t_out, t_in, flat[:, c]) for c in range(flat.shape[1])], axis=1)
    return out.reshape(len(t_out), *values.shape[1:])


def resample_rotations(poses: np.ndarray, fps_in: float, fps_out: float) -> np.ndarray:
    """Slerp resampling of axis-angle ``(T, J, 3)`` along time; the duration is preserved."""
    poses = np.asarray(poses, dtype=np.float64)
    if np.isclose(fps_in, fps_out):
        return poses.copy()
    t_in, t_out = _time_grids(len(poses), fps_in, fps_out)
    out = np.empty((len(t_out), poses.shape[1], 3))
    for j in range(poses.shape[1]):
        out[:, j] = Slerp(t_in, Rotation.from_rotvec(poses[:, j]))(t_out).as_rotvec()
    return out


# --------------------------------------------------------------------------------------- readers
def _fail(path: Path, message: str) -> LatentmanError:
    return LatentmanError(f"motion_file {path}: {message}")


def _finite(path: Path, name: str, array: np.ndarray, integers: bool = False) -> np.ndarray:
    """``array`` as float64, refusing what would be silently misread: text, complex, integer coordinates
    (unless ``integers``), NaN and infinity."""
    array = np.asarray(array)
    kind = array.dtype.kind
    if kind == "c":
        raise _fail(
            path,
            f"'{name}' is complex (dtype {array.dtype}); positions and rotations are real numbers: store "
            "np.real of the array as float32/float64 (after checking its imaginary part is zero)",
        )
    if kind in "iub" and not integers:
        raise _fail(
            path,
            f"'{name}' holds integers (dtype {array.dtype}), not floating-point values in metres/radians; "
            "if they are millimetres divide by 1000, and store the array as float32/float64",
        )
    if not np.issubdtype(array.dtype, np.number):
        raise _fail(path, f"'{name}' is not numeric (dtype {array.dtype}); store it as float32/float64")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
        raise _fail(path, f"'{name}' contains NaN or infinite values (first at index {bad})")
    return array


def _rate(path: Path, name: str, value) -> float:
    """A frame rate field as a float in :data:`FPS_RANGE`, or one line naming the field and the fix."""
    array = np.asarray(value)
    low, high = FPS_RANGE
    expected = f"one number of frames per second between {low:g} and {high:g} (e.g. 30, 60 or 120)"
    if array.dtype.kind in "USO":
        shown = str(array.reshape(-1)[0])[:40] if array.size else ""
        raise _fail(path, f"'{name}' is text ({shown!r}), expected {expected}; store it as a number")
    if array.dtype.kind not in "iuf" or array.size != 1:
        raise _fail(path, f"'{name}' has dtype {array.dtype} and shape {array.shape}, expected {expected}")
    rate = float(array.reshape(()))
    if not np.isfinite(rate) or not low <= rate <= high:
        hint = (
            "; it looks like a frame period in seconds: store 1 / period"
            if np.isfinite(rate) and 0 < rate < low
            else ""
        )
        raise _fail(path, f"'{name}' is {rate:g}, expected {expected}{hint}")
    return rate


def _joints_array(path: Path, array: np.ndarray, name: str) -> np.ndarray:
    array = _finite(path, name, array)
    if array.ndim != 3 or array.shape[1] not in (22, 24) or array.shape[2] != 3:
        raise _fail(path, f"'{name}' has shape {array.shape}, expected (frames, 22, 3)")
    return array[:, :NUM_HML_JOINTS]


def _regular_file(path: Path) -> None:
    """Refuse a FIFO, device, socket or directory before opening it: reading a pipe would wait forever."""
    mode = path.stat().st_mode  # follows symbolic links
    if stat.S_ISREG(mode):
        return
    kind = next((what for test, what in FILE_KINDS if test(mode)), "not a regular file")
    raise _fail(
        path,
        f"is {kind}, not a regular file; name a .npy/.npz motion file in the motion_file column of "
        "prompts.tsv",
    )


def _check_npz_headers(path: Path) -> None:
    """Every member's declared array size against its stored size, before :func:`np.load` allocates."""
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            with archive.open(info) as member:
                safe_pickle.read_npy_header(member, info.file_size, name)


def _load(path: Path):
    """The arrays of a ``.npy``/``.npz`` file, its format chosen by content (an .npy named .npz is read
    as .npy, with a warning); headers are checked against the file's size before anything is allocated."""
    _regular_file(path)
    problem = not_the_file(path)
    if problem:
        raise _fail(path, problem)
    with open(path, "rb") as handle:
        head = handle.read(6)
    is_npz = head.startswith(ZIP_MAGICS)
    if not is_npz and head != NPY_MAGIC:
        raise _fail(
            path,
            f"is neither a .npy nor a .npz file (it begins {head!r}); export the motion with numpy.save "
            "or numpy.savez",
        )
    if is_npz != (path.suffix.lower() == ".npz"):
        actual, named = (".npz", path.suffix or "no extension") if is_npz else (".npy", path.suffix)
        log.warning("motion_file %s: the file is a %s file named %s; read as %s", path, actual, named, actual)
    try:
        if is_npz:
            _check_npz_headers(path)
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        return safe_pickle.load_npy(path)
    except (safe_pickle.UnsafePickleError, safe_pickle.DeclaredSizeError) as exc:
        raise _fail(path, exc.reason) from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _fail(path, f"cannot be read as .npy/.npz ({first}); export it again") from None


def _length(path: Path, data: dict, frames: int) -> int:
    """MDM's ``lengths[0]``: an integer 2..frames (default: all frames)."""
    if "lengths" not in data or not len(np.atleast_1d(data["lengths"])):
        return frames
    value = np.atleast_1d(data["lengths"])[0]
    if np.asarray(value).dtype.kind not in "iuf" or not np.isfinite(float(value)) or float(value) % 1:
        raise _fail(
            path, f"'lengths'[0] is {value!r}, expected a whole number of frames; fix or drop 'lengths'"
        )
    length = int(value)
    if not 2 <= length <= frames:
        raise _fail(
            path,
            f"'lengths'[0] is {length}, but 'motion' holds {frames} frames (expected 2..{frames}); fix "
            "or drop 'lengths'",
        )
    return length


def _fit(path: Path, joints: np.ndarray, fps_in: float, frames: int, fps: float) -> np.ndarray:
    joints = resample_positions(joints, fps_in, fps)
    require_frames(len(joints), frames, f"motion_file {path}")
    return ground(joints[:frames])


def _plausible(path: Path, motion: Motion) -> Motion:
    """Wrong units or axes run to the end without a complaint: name them here, with the fix."""
    problem = skeleton_problem(motion.joints, motion.fps)
    if problem:
        raise _fail(path, problem)
    return motion


def import_motion(path: str | Path, frames: int, fps: float, text: str = "", seed: int = 0) -> Motion:
    """Read a motion file of any supported format as ``frames`` frames at ``fps``.

    Raises:
        LatentmanError: unreadable file, unknown layout, wrong shapes, NaN/inf values, too short.
    """
    path = Path(path)
    if not path.exists():
        missing = "file not found (check the motion_file column of prompts.tsv)"
        # not_the_file reads nothing of a broken link, and a missing path cannot be a pipe
        raise _fail(path, not_the_file(path) if path.is_symlink() else missing)
    data = _load(path)
    source = f"file:{path}"
    if isinstance(data, np.ndarray) and data.dtype == object and data.shape == ():
        data = data.item()
    if isinstance(data, dict) and "motion" in data:  # MDM results.npy
        motion = np.asarray(data["motion"])
        if motion.ndim != 4 or motion.shape[1:3] not in ((22, 3), (24, 3)):
            raise _fail(path, f"'motion' has shape {motion.shape}, expected (samples, 22, 3, frames)")
        length = _length(path, data, motion.shape[-1])
        joints = _joints_array(path, np.transpose(motion[0, :, :, :length], (2, 0, 1)), "motion")
        texts = data.get("text")
        if not text and texts is not None and len(texts):
            text = str(texts[0])
        joints = _fit(path, joints, 20.0, frames, fps)
        return _plausible(path, Motion(joints.astype(np.float32), float(fps), text, source, int(seed)))
    if isinstance(data, dict) and "poses" in data:  # AMASS-style SMPL
        # AMASS SMPL-H files name the rate mocap_framerate, its SMPL-X files mocap_frame_rate
        rate_key = next((k for k in ("mocap_framerate", "mocap_frame_rate") if k in data), None)
        for key in ("trans", rate_key):
            if key not in data:
                missing = key or "mocap_framerate' or 'mocap_frame_rate"
                needs = "poses, trans, mocap_framerate or mocap_frame_rate"
                raise _fail(path, f"AMASS-style file lacks '{missing}' (needs {needs})")
        poses = _finite(path, "poses", data["poses"])
        trans = _finite(path, "trans", data["trans"])
        rate = _rate(path, rate_key, data[rate_key])
        if poses.ndim != 2 or poses.shape[1] < 66:
            expected = "(frames, 72), (frames, 156) or (frames, 165)"
            raise _fail(path, f"'poses' has shape {poses.shape}, expected {expected}")
        if trans.shape != (len(poses), 3):
            raise _fail(path, f"'trans' has shape {trans.shape}, expected ({len(poses)}, 3)")
        smpl = np.zeros((len(poses), 24, 3))
        # SMPL (72 values) has 24 joints, 22-23 its hands. SMPL-H (156) and SMPL-X (165) share only the 22
        # body joints; what follows is fingers (SMPL-H: left index first) or jaw and eyes (SMPL-X), not
        # SMPL's hand joints, which stay at rest.
        count = 24 if poses.shape[1] == 72 else 22
        smpl[:, :count] = poses[:, : count * 3].reshape(len(poses), count, 3)
        # Rotate the world, not the body: the root orientation and translation go Z up → Y up.
        root = Rotation.from_matrix(Z_UP_TO_Y_UP) * Rotation.from_rotvec(smpl[:, 0])
        smpl[:, 0] = root.as_rotvec()
        trans = trans @ Z_UP_TO_Y_UP.T
        smpl = resample_rotations(smpl, rate, fps)
        trans = resample_positions(trans, rate, fps)
        require_frames(len(smpl), frames, f"motion_file {path}")
        return _plausible(path, from_smpl(smpl[:frames], trans[:frames], fps, text, source, seed))
    if isinstance(data, dict) and "joints" in data:  # plain joints .npz
        joints = _joints_array(path, data["joints"], "joints")
        fps_in = _rate(path, "fps", data["fps"]) if "fps" in data else float(fps)
        joints = _fit(path, joints, fps_in, frames, fps)
        return _plausible(path, Motion(joints.astype(np.float32), float(fps), text, source, int(seed)))
    if isinstance(data, np.ndarray):  # plain joints .npy
        joints = _fit(path, _joints_array(path, data, "array"), float(fps), frames, fps)
        return _plausible(path, Motion(joints.astype(np.float32), float(fps), text, source, int(seed)))
    keys = sorted(data) if isinstance(data, dict) else type(data).__name__
    raise _fail(
        path,
        f"unknown layout (found {keys}); expected MDM results.npy ('motion'), AMASS .npz "
        "('poses', 'trans', 'mocap_framerate') or joints (frames, 22, 3) in .npy or .npz ('joints')",
    )
