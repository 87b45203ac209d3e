"""Body + render stage: motion → SMPL fit → per-frame depth, control image, exact IUV, face ids (HDF5).

``results/motion/{prompt}.npz`` → ``results/render/{prompt}.h5`` (layout: latentman.render.storage)
plus a preview (control image | coloured IUV) as GIF and MP4.

Steps of :func:`render_prompt`:

1. SMPL parameters for every motion frame (latentman.body.fit: the motion's own rotations, or a fit
   to its joints), then every ``motion.frame_step``-th frame: exactly the prompt row's ``frames``.
2. The body's mesh for those frames, lifted so that its lowest vertex over the whole clip is at y = 0.
3. One fixed camera for the clip (latentman.render.camera); a frame where the body leaves the image
   is an error naming the frame.
4. Per frame, one pyrender pass gives the visible face at each pixel centre (latentman.render.backend);
   barycentrics, depth and IUV follow exactly from it (latentman.render.iuv). The control image is
   normalised over the whole video.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from latentman.errors import ConfigError, IntermediateFileError
from latentman.render.backend import BACKENDS, FaceIndexRenderer
from latentman.render.camera import Camera, check_in_view, frames_out_of_view, place_camera
from latentman.render.iuv import (
    CONTROL_ENCODINGS,
    control_image,
    face_parts,
    iuv_at_pixels,
    surface_at_pixels,
)
from latentman.render.storage import read_render, write_render

__all__ = [
    "Camera",
    "RenderSettings",
    "RenderedFrames",
    "check_in_view",
    "frames_out_of_view",
    "ground_offset",
    "model_files",
    "place_camera",
    "read_render",
    "render_mesh_sequence",
    "render_prompt",
    "write_render",
]

log = logging.getLogger(__name__)

IUV_SOURCES = ("exact", "densepose")


@dataclass(frozen=True)
class RenderSettings:
    """The ``render:`` section of config.yaml, validated."""

    resolution: int = 512
    backend: str = "auto"
    iuv: str = "exact"
    control_encoding: str = "near_bright"
    yfov_deg: float = 60.0
    fill: float = 0.8
    elevation_deg: float = 5.0

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RenderSettings:
        """Settings from the ``render:`` config mapping; a bad value is a ConfigError naming its key."""
        camera = dict(config.get("camera") or {})
        defaults = cls()
        settings = cls(
            resolution=int(config.get("resolution", defaults.resolution)),
            backend=str(config.get("backend", defaults.backend)),
            iuv=str(config.get("iuv", defaults.iuv)),
            control_encoding=str(config.get("control_encoding", defaults.control_encoding)),
            yfov_deg=float(camera.get("yfov_deg", defaults.yfov_deg)),
            fill=float(camera.get("fill", defaults.fill)),
            elevation_deg=float(camera.get("elevation_deg", defaults.elevation_deg)),
        )
        if settings.resolution < 64 or settings.resolution % 64:
            raise ConfigError(
                f"render.resolution is {settings.resolution}, expected a positive multiple of 64 "
                "(the latent grid is resolution/8 and must itself be a multiple of 8)"
            )
        choices = {"backend": BACKENDS, "iuv": IUV_SOURCES, "control_encoding": CONTROL_ENCODINGS}
        for key, allowed in choices.items():
            if getattr(settings, key) not in allowed:
                raise ConfigError(
                    f"render.{key} is {getattr(settings, key)!r}, expected one of {', '.join(allowed)}"
                )
        if not 0.0 < settings.yfov_deg < 180.0:
            raise ConfigError(f"render.camera.yfov_deg is {settings.yfov_deg}, expected a value in (0, 180)")
        if not 0.0 < settings.fill <= 1.0:
            raise ConfigError(f"render.camera.fill is {settings.fill}, expected a value in (0, 1]")
        if not -89.0 <= settings.elevation_deg <= 89.0:
            raise ConfigError(
                f"render.camera.elevation_deg is {settings.elevation_deg}, expected a value in [-89, 89]"
            )
        return settings


@dataclass
class RenderedFrames:
    """Per-frame images of a clip, all ``(F, H, W, ...)``."""

    depth: np.ndarray  # float32 metres, 0 = background
    control: np.ndarray  # uint8
    iuv: np.ndarray  # uint8 (I, U, V)
    face_id: np.ndarray  # int32, -1 = background
    barycentric: np.ndarray  # float16
    mask: np.ndarray  # uint8 0/1
    camera: Camera
    backend: str  # the PyOpenGL platform used: osmesa or egl
    seconds_per_frame: float


def ground_offset(vertices: np.ndarray) -> float:
    """Vertical shift that puts the lowest vertex of the whole clip ``(F, V, 3)`` at y = 0."""
    return -float(np.asarray(vertices)[..., 1].min())


def render_mesh_sequence(
    vertices: np.ndarray,
    faces: np.ndarray,
    vertex_part: np.ndarray,
    vertex_uv: np.ndarray,
    settings: RenderSettings,
    camera: Camera | None = None,
    source: str = "render",
) -> RenderedFrames:
    """Render a posed mesh sequence ``vertices (F, V, 3)`` with per-vertex labels.

    ``camera`` defaults to :func:`place_camera` with the settings; any camera that leaves part of the
    body outside the image is an error naming the frames (``source`` names the clip).
    """
    from tqdm import tqdm

    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    if camera is None:
        camera = place_camera(
            vertices, settings.resolution, settings.yfov_deg, settings.fill, settings.elevation_deg
        )
    check_in_view(vertices, camera, source)
    frames, size = len(vertices), camera.height
    part_of_face = face_parts(faces, vertex_part)
    camera_vertices = camera.to_camera(vertices)
    depth_range = (float(camera_vertices[..., 2].min()), float(camera_vertices[..., 2].max()))
    depth = np.zeros((frames, size, camera.width), dtype=np.float32)
    face_id = np.full((frames, size, camera.width), -1, dtype=np.int32)
    barycentric = np.zeros((frames, size, camera.width, 3), dtype=np.float16)
    iuv = np.zeros((frames, size, camera.width, 3), dtype=np.uint8)
    start = time.perf_counter()
    with FaceIndexRenderer(faces, camera, depth_range, settings.backend) as renderer:
        for k in tqdm(range(frames), desc=f"render {source}", unit="frame", disable=frames < 4):
            face_id[k] = renderer.render(vertices[k])
            bary, frame_depth = surface_at_pixels(face_id[k], camera_vertices[k], faces, camera)
            depth[k] = frame_depth
            barycentric[k] = bary
            iuv[k] = iuv_at_pixels(face_id[k], bary, faces, part_of_face, vertex_part, vertex_uv)
        backend = renderer.platform
    elapsed = (time.perf_counter() - start) / max(frames, 1)
    return RenderedFrames(
        depth=depth,
        control=control_image(depth, settings.control_encoding),
        iuv=iuv,
        face_id=face_id,
        barycentric=barycentric,
        mask=(face_id >= 0).astype(np.uint8),
        camera=camera,
        backend=backend,
        seconds_per_frame=elapsed,
    )


def model_files(models: Mapping[str, Any], render: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Model files rule render reads besides the motion (Snakemake input).

    The user's body file, DensePose UV data and, with ``render.iuv: densepose``, the DensePose model
    folder; the built-in body ships with latentman and is not listed.
    """
    files = {}
    body = models.get("body") or "builtin"
    if body != "builtin":
        files["body"] = str(body)
    if models.get("densepose_uv"):
        files["densepose_uv"] = str(models["densepose_uv"])
    if render is not None and render.get("iuv") == "densepose" and models.get("densepose"):
        files["densepose"] = str(models["densepose"])
    return files


def _video_frames(motion_frames: int, row: Mapping[str, Any], frame_step: int, source: str) -> np.ndarray:
    """Indices of the motion frames that become video frames: every frame_step-th, ``frames`` of them."""
    frames = int(row["frames"])
    needed = (frames - 1) * frame_step + 1
    if motion_frames != needed:
        raise IntermediateFileError(
            f"{source}: has {motion_frames} motion frames, prompt {row.get('id', '?')!r} with "
            f"frames={frames} and motion.frame_step={frame_step} needs {needed}; rerun rule 'motion' "
            "(snakemake --cores all --forcerun motion)"
        )
    return np.arange(0, needed, frame_step)


def render_prompt(
    motion_path: str | os.PathLike,
    output_path: str | os.PathLike,
    gif_path: str | os.PathLike | None,
    mp4_path: str | os.PathLike | None,
    render_config: Mapping[str, Any],
    row: Mapping[str, Any],
    frame_step: int = 1,
    body_spec: str = "builtin",
    densepose_uv: str | None = None,
    densepose_model: str | None = None,
) -> dict[str, Any]:
    """The body + render stage for one prompt: motion file → render file (+ preview).

    Nothing is written unless every step succeeds (atomic writes). Returns a short summary
    (frames, fit method and error, backend, seconds per frame) for the log.
    """
    from latentman.body import load_body
    from latentman.body.fit import fit_motion
    from latentman.motion import read_motion

    settings = RenderSettings.from_config(render_config)
    if settings.iuv == "densepose":
        from latentman.render.densepose import require_densepose

        require_densepose(densepose_model)
    motion = read_motion(motion_path)
    keep = _video_frames(motion.num_frames, row, int(frame_step), str(motion_path))
    body = load_body(body_spec, densepose_uv=densepose_uv)
    smpl = fit_motion(motion, body).take(keep)
    log.info("%s: SMPL %s, mean joint error %.2f mm", motion_path, smpl.method, smpl.fit_error_mm)
    vertices, _ = body.forward(smpl.global_orient, smpl.body_pose, smpl.transl, betas=smpl.betas)
    lift = ground_offset(vertices)
    vertices = vertices.astype(np.float64)
    vertices[..., 1] += lift
    smpl.transl = smpl.transl + np.array([0.0, lift, 0.0], dtype=np.float32)
    if not np.isfinite(vertices).all():
        raise IntermediateFileError(f"{motion_path}: the posed body has NaN vertices; rerun rule 'motion'")
    rendered = render_mesh_sequence(
        vertices, body.faces, body.vertex_part, body.vertex_uv, settings, source=str(motion_path)
    )
    iuv = rendered.iuv
    if settings.iuv == "densepose":
        from latentman.render.densepose import densepose_iuv, shaded_frames

        iuv = densepose_iuv(
            shaded_frames(vertices, body.faces, rendered.camera, settings.backend), densepose_model
        )
    rest_vertices, _ = body.forward(np.zeros((1, 3)), np.zeros((1, 69)), np.zeros((1, 3)))
    vertex_iuv = np.concatenate(
        [
            np.asarray(body.vertex_part, dtype=np.float32)[:, None],
            np.asarray(body.vertex_uv, dtype=np.float32),
        ],
        axis=1,
    )
    fps = float(motion.fps) / int(frame_step)
    write_render(
        output_path,
        {
            "smpl": {
                "global_orient": smpl.global_orient,
                "body_pose": smpl.body_pose,
                "transl": smpl.transl,
                "betas": smpl.betas,
                "fit_error_mm": smpl.fit_error_mm,
                "fit": smpl.method,
                "body": body.name,
            },
            "camera": rendered.camera,
            "depth": rendered.depth,
            "control": rendered.control,
            "control_encoding": settings.control_encoding,
            "iuv": iuv,
            "face_id": rendered.face_id,
            "barycentric": rendered.barycentric,
            "mask": rendered.mask,
            "mesh": {"rest_vertices": rest_vertices[0], "faces": body.faces, "vertex_iuv": vertex_iuv},
        },
        attrs={
            "fps": fps,
            "frame_step": int(frame_step),
            "motion_source": motion.source,
            "iuv_source": settings.iuv,
            "backend": rendered.backend,
            "settings": vars(settings),
        },
    )
    if gif_path is not None and mp4_path is not None:
        from latentman.render.preview import write_render_preview

        try:
            write_render_preview(rendered.control, iuv, fps, gif_path, mp4_path)
        except BaseException:
            # All outputs or none: a render file without its preview would look finished.
            Path(output_path).unlink(missing_ok=True)
            raise
    summary = {
        "frames": int(len(keep)),
        "fit": smpl.method,
        "fit_error_mm": round(smpl.fit_error_mm, 3),
        "backend": rendered.backend,
        "seconds_per_frame": round(rendered.seconds_per_frame, 4),
    }
    log.info("%s: %s", output_path, summary)
    return summary
