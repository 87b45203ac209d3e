"""The render file ``results/render/{prompt}.h5`` (format "render"): its record, writer and validating reader.

Layout (every per-frame dataset chunked one frame at a time, gzip):

- ``/smpl/{global_orient (F,3), body_pose (F,69), transl (F,3)}`` float32 (smplx convention, the
  grounded mesh of the video frames), ``/smpl/betas (B,)``, ``/smpl/joint_error_mm (22,)`` float32
  (every joint's mean fit error over the motion's frames, zeros for "direct"); attrs ``fit_error_mm``
  (their mean), ``fit`` ("direct" | "optimised"), ``body``;
- ``/camera/intrinsics (3,3)``, ``/camera/extrinsics (F,4,4)`` world→camera of every video frame, OpenCV
  axes (latentman.render.camera); attrs ``resolution``, ``yfov_deg``, ``mode`` ("fixed": the same
  extrinsics in every frame, "follow": a dolly along the pelvis track), ``convention``;
- ``/depth (F,H,W)`` float32 metres along the view axis, 0 = background;
- ``/control (F,H,W)`` uint8 ControlNet depth image, attr ``encoding``;
- ``/iuv (F,H,W,3)`` uint8: I part 0..24 (0 = background), U, V 0..255;
- ``/face_id (F,H,W)`` int32 (-1 = background), ``/barycentric (F,H,W,3)`` float16;
- ``/mask (F,H,W)`` uint8 0/1;
- ``/mesh/{rest_vertices (V,3) float32, faces (T,3) int64, vertex_iuv (V,3) float32 [part, U, V]}``.

Root attrs: ``fps`` (video), ``frame_step``, ``motion_source``, ``iuv_source``, ``backend``, ``settings``
(the render settings, JSON); the identity (format version 4, latentman.io.Identity): ``prompt_id``,
``settings_hash`` (of the prompt, the root attrs above and ``made_from``), ``made_from`` (JSON:
``{"motion": the motion file's settings_hash}``). :class:`RenderRecord` is the file's content in memory;
:func:`write_render` takes it, :func:`read_render` returns the fields asked for as a dict.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from latentman.errors import IntermediateFileError
from latentman.io import (
    Identity,
    atomic_h5,
    check_identity,
    identity_hash,
    open_intermediate,
    read_attr,
    read_h5_dataset,
    read_identity,
    write_dataset,
    write_identity,
)
from latentman.render.settings import RenderSettings
from latentman.skeleton import NUM_HML_JOINTS

if TYPE_CHECKING:
    from latentman.body.fit import SmplFit
    from latentman.render.camera import Camera

FRAME_DATASETS = ("depth", "control", "iuv", "face_id", "barycentric", "mask")


@dataclass(frozen=True, eq=False)
class RenderRecord:
    """What a render file holds (the layout above), as latentman.render.stage.run makes it."""

    smpl: SmplFit  # the fit of the video frames: /smpl datasets, attrs fit_error_mm and fit (its method)
    body: str  # /smpl attr body: the body model's name
    camera: Camera  # /camera (intrinsics, the extrinsics of every frame, resolution, yfov_deg)
    camera_mode: str  # /camera attr mode: fixed | follow
    depth: np.ndarray
    control: np.ndarray
    control_encoding: str  # /control attr encoding
    iuv: np.ndarray
    face_id: np.ndarray
    barycentric: np.ndarray
    mask: np.ndarray
    rest_vertices: np.ndarray  # /mesh/rest_vertices
    faces: np.ndarray  # /mesh/faces
    vertex_iuv: np.ndarray  # /mesh/vertex_iuv
    fps: float  # root attrs from here on
    frame_step: int
    motion_source: str
    iuv_source: str
    backend: str
    settings: RenderSettings

    def attrs(self) -> dict[str, Any]:
        """The root attributes, in the order they are written."""
        return {
            "fps": self.fps,
            "frame_step": self.frame_step,
            "motion_source": self.motion_source,
            "iuv_source": self.iuv_source,
            "backend": self.backend,
            "settings": vars(self.settings),
        }


def render_identity(record: RenderRecord, identity: Identity | None = None) -> Identity:
    """The identity :func:`write_render` records: ``identity``'s prompt and made_from, and the settings
    hash of the prompt, the record's root attributes and made_from (unless ``identity`` gives one)."""
    identity = identity or Identity()
    made_from = dict(identity.made_from or {})
    settings_hash = identity.settings_hash or identity_hash(
        {"prompt": identity.prompt, "attrs": record.attrs(), "made_from": made_from}
    )
    return Identity(prompt=identity.prompt, settings_hash=settings_hash, made_from=made_from)


def write_render(path: str | os.PathLike, record: RenderRecord, identity: Identity | None = None) -> None:
    """Write a render file atomically (a failure leaves no file at ``path``).

    ``identity``: the prompt id and ``made_from`` (``{"motion": settings hash}``) to record (see
    :func:`render_identity`); without one they are empty.
    """
    smpl = record.smpl
    camera = record.camera
    frames = len(record.depth)
    with atomic_h5(path, "render", record.attrs()) as h5:
        write_identity(h5, render_identity(record, identity))
        group = h5.create_group("smpl")
        for name in ("global_orient", "body_pose", "transl"):
            write_dataset(group, name, np.asarray(getattr(smpl, name), dtype=np.float32))
        write_dataset(group, "betas", np.asarray(smpl.betas, dtype=np.float32), per_frame=False)
        joint_error = np.asarray(smpl.joint_error_mm, dtype=np.float32)
        write_dataset(group, "joint_error_mm", joint_error, per_frame=False, units="mm")
        group.attrs["fit_error_mm"] = float(smpl.fit_error_mm)
        group.attrs["fit"] = str(smpl.method)
        group.attrs["body"] = str(record.body)
        group = h5.create_group("camera")
        write_dataset(group, "intrinsics", camera.intrinsics.astype(np.float64), per_frame=False)
        write_dataset(group, "extrinsics", camera.frame_extrinsics(frames), per_frame=False)
        group.attrs["resolution"] = int(camera.height)
        group.attrs["yfov_deg"] = float(camera.yfov_deg)
        group.attrs["mode"] = str(record.camera_mode)
        group.attrs["convention"] = (
            "extrinsics (F, 4, 4): world->camera of every frame, OpenCV axes (x right, y down, z forward); "
            "pixel (u, v) = (K X)[:2] / z, pixel (i, j) centre at (j + 0.5, i + 0.5)"
        )
        write_dataset(h5, "depth", np.asarray(record.depth, dtype=np.float32), units="metres")
        write_dataset(
            h5, "control", np.asarray(record.control, dtype=np.uint8), encoding=record.control_encoding
        )
        write_dataset(h5, "iuv", np.asarray(record.iuv, dtype=np.uint8))
        write_dataset(h5, "face_id", np.asarray(record.face_id, dtype=np.int32))
        write_dataset(h5, "barycentric", np.asarray(record.barycentric, dtype=np.float16))
        write_dataset(h5, "mask", np.asarray(record.mask, dtype=np.uint8))
        group = h5.create_group("mesh")
        write_dataset(
            group, "rest_vertices", np.asarray(record.rest_vertices, dtype=np.float32), per_frame=False
        )
        write_dataset(group, "faces", np.asarray(record.faces, dtype=np.int64), per_frame=False)
        write_dataset(group, "vertex_iuv", np.asarray(record.vertex_iuv, dtype=np.float32), per_frame=False)


FIELDS = (*FRAME_DATASETS, "smpl", "camera", "mesh")


def read_render_identity(path: str | os.PathLike, expected: Identity | None = None) -> Identity:
    """The identity a render file records (after its format checks), compared with ``expected``."""
    return read_render(path, (), expected)["identity"]


def read_render(
    path: str | os.PathLike, fields: Collection[str] = FIELDS, expected: Identity | None = None
) -> dict[str, Any]:
    """Read ``fields`` of a render file and run every check that applies to them.

    ``expected``: the identity the file must hold (prompt id, settings hash, made_from; ``None`` = not
    checked); the recorded one comes back as ``identity``.

    Fields: the frame datasets (``depth``, ``control``, ``iuv``, ``face_id``, ``barycentric``, ``mask``),
    ``smpl`` (dict of arrays, ``joint_error_mm`` included, + ``fit_error_mm``, ``fit``, ``body``),
    ``camera`` (``intrinsics``, ``extrinsics`` ``(F, 4, 4)``, ``resolution``, ``yfov_deg``,
    ``camera_mode``) and ``mesh`` (``rest_vertices``, ``faces``, ``vertex_iuv``); the root ``attrs`` and
    ``control_encoding`` always come along. Frame datasets are checked for shape (F, R, R[, C]) with R a
    multiple of 64, dtype and finiteness; cross-dataset checks
    (index ranges, one foreground in face_id, mask and depth) run on the fields read.

    Raises:
        IntermediateFileError: missing, foreign or old file, or a dataset with the wrong shape, dtype,
            range or non-finite values, or another identity than ``expected``; the message names the
            file and says to rerun rule 'render'.
    """
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise ValueError(f"read_render: unknown field(s) {sorted(unknown)}; fields: {', '.join(FIELDS)}")
    fmt = "render"
    with open_intermediate(path, fmt) as h5:
        identity = check_identity(path, fmt, read_identity(h5), expected)
        out: dict[str, Any] = {"attrs": {key: read_attr(h5, key) for key in h5.attrs}, "identity": identity}
        shape: tuple[int, ...] | None = None
        for name in (f for f in FRAME_DATASETS if f in fields):
            channels = (3,) if name in ("iuv", "barycentric") else ()
            expected = (*(shape or (None, None, None)), *channels)
            out[name] = read_h5_dataset(h5, name, fmt, shape=expected, dtype=FRAME_DTYPES[name])
            if shape is None:
                shape = out[name].shape[:3]
                frames, height, width = shape
                if frames < 1 or height != width or height % 64:
                    raise IntermediateFileError(
                        f"{h5.filename}: '{name}' has shape {out[name].shape}, expected (F, R, R) frames "
                        "with R a multiple of 64; rerun rule 'render'"
                    )
        if "control" in h5:
            out["control_encoding"] = read_attr(h5["control"], "encoding", "near_bright")
        if "smpl" in fields:
            out["smpl"] = _read_smpl(h5, fmt, shape[0] if shape else None)
        if "camera" in fields:
            out.update(_read_camera(h5, fmt, shape[1] if shape else None, shape[0] if shape else None))
        if "mesh" in fields:
            vertices = read_h5_dataset(h5, "mesh/rest_vertices", fmt, shape=(None, 3), dtype=np.float32)
            out["rest_vertices"] = vertices
            out["faces"] = read_h5_dataset(h5, "mesh/faces", fmt, shape=(None, 3), dtype=(np.int32, np.int64))
            out["vertex_iuv"] = read_h5_dataset(
                h5, "mesh/vertex_iuv", fmt, shape=(vertices.shape[0], 3), dtype=np.float32
            )
    _check_consistency(out, str(path))
    return out


FRAME_DTYPES = {
    "depth": np.float32,
    "control": np.uint8,
    "iuv": np.uint8,
    "face_id": np.int32,
    "barycentric": (np.float16, np.float32),
    "mask": np.uint8,
}


def _read_smpl(h5, fmt: str, frames: int | None) -> dict[str, Any]:
    smpl: dict[str, Any] = {
        "global_orient": read_h5_dataset(h5, "smpl/global_orient", fmt, shape=(frames, 3), dtype=np.float32),
        "body_pose": read_h5_dataset(h5, "smpl/body_pose", fmt, shape=(frames, 69), dtype=np.float32),
        "transl": read_h5_dataset(h5, "smpl/transl", fmt, shape=(frames, 3), dtype=np.float32),
        "betas": read_h5_dataset(h5, "smpl/betas", fmt, shape=(None,), dtype=np.float32),
        "joint_error_mm": read_h5_dataset(
            h5, "smpl/joint_error_mm", fmt, shape=(NUM_HML_JOINTS,), dtype=np.float32
        ),
    }
    for key in ("fit_error_mm", "fit", "body"):
        if key not in h5["smpl"].attrs:
            raise IntermediateFileError(
                f"{h5.filename}: attribute 'smpl/{key}' is missing; rerun rule 'render'"
            )
        smpl[key] = read_attr(h5["smpl"], key)
    return smpl


def _read_camera(h5, fmt: str, height: int | None, frames: int | None) -> dict[str, Any]:
    camera = {
        "intrinsics": read_h5_dataset(h5, "camera/intrinsics", fmt, shape=(3, 3)),
        "extrinsics": read_h5_dataset(h5, "camera/extrinsics", fmt, shape=(frames, 4, 4)),
        "resolution": int(read_attr(h5["camera"], "resolution", -1)),
        "yfov_deg": float(read_attr(h5["camera"], "yfov_deg", np.nan)),
        "camera_mode": read_attr(h5["camera"], "mode", ""),
    }
    if camera["camera_mode"] not in ("fixed", "follow"):
        raise IntermediateFileError(
            f"{h5.filename}: camera mode {camera['camera_mode']!r} is neither 'fixed' nor 'follow'; "
            "rerun rule 'render'"
        )
    if height is not None and camera["resolution"] != height:
        raise IntermediateFileError(
            f"{h5.filename}: camera resolution {camera['resolution']} does not match the {height}² frames; "
            "rerun rule 'render'"
        )
    return camera


def _check_consistency(out: dict[str, Any], source: str) -> None:
    """Cross-dataset checks on the fields read: index ranges and one foreground in every frame dataset."""
    hint = "rerun rule 'render'"
    faces = out.get("faces")
    if faces is not None and faces.size and (faces.min() < 0 or faces.max() >= len(out["rest_vertices"])):
        raise IntermediateFileError(f"{source}: 'mesh/faces' indexes vertices that do not exist; {hint}")
    face_id = out.get("face_id")
    if face_id is not None and face_id.min() < -1:
        raise IntermediateFileError(f"{source}: 'face_id' holds indices below -1; {hint}")
    if face_id is not None and faces is not None and face_id.max() >= len(faces):
        raise IntermediateFileError(f"{source}: 'face_id' holds indices outside -1..{len(faces) - 1}; {hint}")
    if "iuv" in out and out["iuv"][..., 0].max() > 24:
        raise IntermediateFileError(f"{source}: 'iuv' part labels exceed 24; {hint}")
    if "mask" in out and out["mask"].max() > 1:
        raise IntermediateFileError(f"{source}: 'mask' holds values other than 0 and 1; {hint}")
    foregrounds = {
        name: value
        for name, value in (
            ("face_id", None if face_id is None else face_id >= 0),
            ("mask", out["mask"] > 0 if "mask" in out else None),
            ("depth", out["depth"] > 0 if "depth" in out else None),
        )
        if value is not None
    }
    reference = next(iter(foregrounds.values()), None)
    if any(not np.array_equal(reference, value) for value in foregrounds.values()):
        raise IntermediateFileError(
            f"{source}: {', '.join(repr(n) for n in foregrounds)} disagree on the foreground; {hint}"
        )
