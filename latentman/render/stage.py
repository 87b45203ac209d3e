"""The body + render stage for one prompt: motion file → the render file's record (:func:`run`).

1. :func:`pose_clip`: SMPL parameters for every motion frame (latentman.body.fit: the motion's own
   rotations, or a fit to its joints), then every ``frame_step``-th frame, exactly ``frames`` of them;
   the mesh of those frames is lifted so that its lowest vertex over the whole clip is at y = 0.
2. :func:`latentman.render.frames.render_mesh_sequence`: one camera for the clip, fixed or following the
   pelvis (``render.camera.mode``), one pyrender pass per frame; depth, IUV, face ids, barycentrics and
   the control image follow exactly from it.
3. :func:`render_record`: what the render file holds (:class:`~latentman.render.storage.RenderRecord`;
   layout: latentman.render.storage). workflow_scripts/render.py writes it and the control | IUV preview.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from latentman.errors import IntermediateFileError
from latentman.render.frames import RenderedFrames, ground_offset, render_mesh_sequence
from latentman.render.settings import RenderSettings
from latentman.render.storage import RenderRecord
from latentman.skeleton import JOINT_NAMES

log = logging.getLogger(__name__)


def video_frames(motion_frames: int, frames: int, frame_step: int, source: str, prompt: str) -> np.ndarray:
    """Indices of the motion frames that become video frames: every frame_step-th, ``frames`` of them."""
    needed = (frames - 1) * frame_step + 1
    if motion_frames != needed:
        raise IntermediateFileError(
            f"{source}: has {motion_frames} motion frames, prompt {prompt!r} with "
            f"frames={frames} and motion.frame_step={frame_step} needs {needed}; rerun rule 'motion' "
            "(snakemake --cores all --forcerun motion)"
        )
    return np.arange(0, needed, frame_step)


#: One joint in one frame may miss by this many times ``render.max_fit_error_mm`` (the bound of the mean).
WORST_FIT_FACTOR = 4.0


def pose_clip(motion, body, keep: np.ndarray, source: str, max_fit_error_mm: float = float("inf")):
    """(SMPL parameters of the kept frames, grounded mesh vertices ``(F, V, 3)`` float64); a fit whose
    mean joint error exceeds ``max_fit_error_mm`` is refused (wrong units or axes, not a body), and one
    whose worst joint in its worst frame misses by more than :data:`WORST_FIT_FACTOR` times that (a spike
    the mean hides)."""
    from latentman.body.fit import fit_motion

    smpl = fit_motion(motion, body).take(keep)
    if smpl.method == "direct":
        log.info("%s: SMPL direct (the motion's own rotations)", source)
    else:
        worst = np.argsort(-smpl.joint_error_mm)[:3]
        log.info(
            "%s: SMPL optimised, mean joint error %.1f mm (shared joints %.1f mm; worst %s)",
            source,
            smpl.fit_error_mm,
            smpl.shared_error_mm,
            ", ".join(f"{JOINT_NAMES[j]} {smpl.joint_error_mm[j]:.0f} mm" for j in worst),
        )
    if not smpl.fit_error_mm <= max_fit_error_mm:
        raise IntermediateFileError(
            f"{source}: the body fits the motion's joints with a mean error of {smpl.fit_error_mm:.0f} mm "
            f"(render.max_fit_error_mm = {max_fit_error_mm:g}); joints must be metres, Y up, in "
            "SMPL/HumanML3D order: check the motion file's units and axes"
        )
    if not smpl.worst_error_mm <= WORST_FIT_FACTOR * max_fit_error_mm:
        frame, joint = smpl.worst_at
        raise IntermediateFileError(
            f"{source}: the body misses joint {JOINT_NAMES[joint]} in motion frame {frame} by "
            f"{smpl.worst_error_mm:.0f} mm (more than {WORST_FIT_FACTOR:g} x render.max_fit_error_mm = "
            f"{max_fit_error_mm:g}; mean {smpl.fit_error_mm:.0f} mm): a one-frame spike or a joint out of "
            "place in the motion file; fix that frame or raise render.max_fit_error_mm"
        )
    vertices, _ = body.forward(smpl.global_orient, smpl.body_pose, smpl.transl, betas=smpl.betas)
    lift = ground_offset(vertices)
    vertices = vertices.astype(np.float64)
    vertices[..., 1] += lift
    smpl.transl = smpl.transl + np.array([0.0, lift, 0.0], dtype=np.float32)
    if not np.isfinite(vertices).all():
        raise IntermediateFileError(f"{source}: the posed body has NaN vertices; rerun rule 'motion'")
    return smpl, vertices


def check_body_coverage(mask: np.ndarray, min_pixels: int, source: str) -> None:
    """Refuse a render whose body covers fewer than ``min_pixels`` pixels in some frame."""
    counts = np.asarray(mask).reshape(len(mask), -1).sum(axis=1)
    small = np.flatnonzero(counts < min_pixels)
    if len(small):
        frame = int(small[np.argmin(counts[small])])
        raise IntermediateFileError(
            f"{source}: the body covers {int(counts[frame])} pixels in frame {frame} ({len(small)} of "
            f"{len(counts)} frames under render.min_body_pixels = {min_pixels}): it is out of view or "
            "tiny; check render.camera.fill and the motion's units and travel"
        )


@dataclass(frozen=True)
class RenderInputs:
    """What the stage reads for one prompt: the motion file, the prompt's frames and the body files."""

    motion: str | os.PathLike  # results/motion/{prompt}.npz
    prompt: str  # the prompt id, for messages
    frames: int  # video frames
    frame_step: int = 1  # motion.frame_step: every frame_step-th motion frame is a video frame
    body: str = "builtin"  # models.body
    densepose_uv: str | None = None  # models.densepose_uv
    densepose: str | None = None  # models.densepose (render.iuv: densepose)


def render_record(
    smpl, body, rendered: RenderedFrames, iuv: np.ndarray, settings: RenderSettings, **attrs: Any
) -> RenderRecord:
    """The render file's record; ``attrs`` are its root attributes other than ``settings`` and ``backend``
    (``fps``, ``frame_step``, ``motion_source``, ``iuv_source``)."""
    rest_vertices, _ = body.forward(np.zeros((1, 3)), np.zeros((1, 69)), np.zeros((1, 3)))
    vertex_iuv = np.concatenate(
        [np.asarray(body.vertex_part, np.float32)[:, None], np.asarray(body.vertex_uv, np.float32)], axis=1
    )
    return RenderRecord(
        smpl=smpl,
        body=body.name,
        camera=rendered.camera,
        camera_mode=rendered.camera_mode,
        depth=rendered.depth,
        control=rendered.control,
        control_encoding=settings.control_encoding,
        iuv=iuv,
        face_id=rendered.face_id,
        barycentric=rendered.barycentric,
        mask=rendered.mask,
        rest_vertices=rest_vertices[0],
        faces=body.faces,
        vertex_iuv=vertex_iuv,
        backend=rendered.backend,
        settings=settings,
        **attrs,
    )


def run(inputs: RenderInputs, settings: RenderSettings) -> RenderRecord:
    """Motion file → the render file's record for one prompt. Computes; writes nothing (the workflow script
    writes the record with :func:`latentman.render.storage.write_render` and the preview)."""
    from latentman.body import load_body
    from latentman.motion.storage import read_motion

    if settings.iuv == "densepose":
        from latentman.render.densepose import require_densepose

        require_densepose(inputs.densepose)
    motion_path = inputs.motion
    frame_step = int(inputs.frame_step)
    motion = read_motion(motion_path)
    keep = video_frames(motion.num_frames, int(inputs.frames), frame_step, str(motion_path), inputs.prompt)
    body = load_body(inputs.body, densepose_uv=inputs.densepose_uv)
    smpl, vertices = pose_clip(motion, body, keep, str(motion_path), settings.max_fit_error_mm)
    fps = float(motion.fps) / frame_step
    pelvis = smpl.transl.astype(np.float64) + body.rest_pelvis(smpl.betas)[None]
    rendered = render_mesh_sequence(
        vertices,
        body.faces,
        body.vertex_part,
        body.vertex_uv,
        settings,
        source=str(motion_path),
        track=pelvis,
        fps=fps,
    )
    log.info(
        "%s: camera %s (render.camera.mode = %s)", motion_path, rendered.camera_mode, settings.camera_mode
    )
    check_body_coverage(rendered.mask, settings.min_body_pixels, str(motion_path))
    iuv = rendered.iuv
    if settings.iuv == "densepose":
        from latentman.render.densepose import densepose_iuv, shaded_frames

        shaded = shaded_frames(vertices, body.faces, rendered.camera, settings.backend)
        iuv = densepose_iuv(shaded, inputs.densepose)
    summary = {
        "frames": int(len(keep)),
        "fit": smpl.method,
        "fit_error_mm": round(smpl.fit_error_mm, 3),
        "camera": rendered.camera_mode,
        "backend": rendered.backend,
        "seconds_per_frame": round(rendered.seconds_per_frame, 4),
    }
    log.info("%s: %s", inputs.prompt, summary)
    return render_record(
        smpl,
        body,
        rendered,
        iuv,
        settings,
        fps=fps,
        frame_step=frame_step,
        motion_source=motion.source,
        iuv_source=settings.iuv,
    )
