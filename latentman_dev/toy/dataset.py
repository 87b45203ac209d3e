"""Clips of the toy domain: built-in motions on the built-in body, rendered and painted.

:func:`render_clip` poses one built-in motion with per-clip variation (shape, pose jitter, facing
direction, camera height, field of view and framing), renders it with the workflow's own renderer (so the
ControlNet image has exactly the workflow's encoding, normalised over the clip) and paints every frame
from its exact IUV with the clip's outfit (:mod:`latentman.toy.domain`). :func:`build_dataset` makes a
deterministic set of clips for training or evaluation.

Arrays of a clip: ``images (F, H, W, 3)`` uint8, ``control (F, H, W)`` uint8, ``iuv (F, H, W, 3)`` uint8,
``mask (F, H, W)`` bool.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from latentman.motion import library
from latentman.toy import domain

MOTION_FPS = 20.0
FRAME_STEP = 2  # the workflow's default motion.frame_step


@dataclass
class Clip:
    motion: str
    outfit: domain.Outfit
    images: np.ndarray
    control: np.ndarray
    iuv: np.ndarray
    mask: np.ndarray
    # what render_clip was called with: the same call with another outfit repaints the same clip
    seed: int = 0
    vary: bool = True
    held_out_colours: bool = False

    @property
    def caption(self) -> str:
        return self.outfit.caption()


def _rotation_y(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def render_clip(
    body,
    motion: str,
    seed: int,
    frames: int,
    resolution: int,
    outfit: domain.Outfit | None = None,
    held_out_colours: bool = False,
    vary: bool = True,
    backend: str = "auto",
    one_phase: bool = False,
) -> Clip:
    """One painted clip of the built-in motion ``motion``; everything random comes from ``seed``.

    ``vary=False`` keeps the workflow's default view (facing the camera, default camera, mean shape), as
    the workflow renders a prompt. ``outfit`` replaces the random outfit, everything else (view, shape,
    pattern phases) unchanged: the clip repainted. ``one_phase`` paints every frame with one pattern phase
    (a temporally consistent clip, for the motion adapter); by default each frame draws its own phase, the
    image model's augmentation (a video of such frames flickers).
    """
    from latentman.render import RenderSettings, ground_offset, render_mesh_sequence

    rng = np.random.default_rng([int(seed), 7])
    poses, transl = library.generate(motion, (frames - 1) * FRAME_STEP + 1, MOTION_FPS, int(seed))
    poses, transl = poses[::FRAME_STEP], transl[::FRAME_STEP]
    betas = np.zeros(body.num_betas)
    settings = RenderSettings(resolution=resolution, backend=backend, fill=0.8, elevation_deg=5.0)
    facing = 0.0
    if vary:
        betas = rng.normal(0.0, 0.6, size=body.num_betas)
        poses = poses.copy()
        poses[:, 1:] += rng.normal(0.0, 0.05, size=(1, 23, 3))
        facing = float(rng.normal(0.0, 0.6)) if rng.random() < 0.7 else float(rng.uniform(-np.pi, np.pi))
        settings = RenderSettings(
            resolution=resolution,
            backend=backend,
            yfov_deg=float(rng.uniform(45.0, 65.0)),
            fill=float(rng.uniform(0.65, 0.9)),
            elevation_deg=float(rng.uniform(-5.0, 20.0)),
        )
    vertices, _ = body.forward(
        poses[:, 0], poses[:, 1:].reshape(frames, 69), body.transl_for_pelvis(transl, betas), betas
    )
    vertices = vertices.astype(np.float64)
    if facing:
        centre = vertices.reshape(-1, 3).mean(axis=0)
        vertices = (vertices - centre) @ _rotation_y(facing).T + centre
    vertices[..., 1] += ground_offset(vertices)
    rendered = render_mesh_sequence(
        vertices, body.faces, body.vertex_part, body.vertex_uv, settings, source=f"toy {motion}"
    )
    drawn = domain.random_outfit(rng, held_out=held_out_colours)  # always drawn: the phases stay the same
    outfit = drawn if outfit is None else outfit
    rest, rest_joints = body.forward(np.zeros((1, 3)), np.zeros((1, 69)), np.zeros((1, 3)), betas)
    # Light from the camera's upper left, in world axes (the camera looks along -Z).
    rotation = rendered.camera.extrinsics[:3, :3]
    light = rotation.T @ np.array([-0.35, -0.55, -1.0])  # OpenCV camera axes: y down, z forward
    light = -light / np.linalg.norm(light)
    images = np.empty((frames, resolution, resolution, 3), dtype=np.uint8)
    clip_phase = rng.random(3) if one_phase else None
    for k in range(frames):
        normals = domain.vertex_normals(vertices[k], body.faces)
        images[k] = domain.paint(
            outfit,
            rendered.iuv[k],
            rendered.face_id[k],
            rendered.barycentric[k],
            rest[0].astype(np.float64),
            normals,
            body.faces,
            light,
            rest_joints[0, 15].astype(np.float64),
            clip_phase if one_phase else rng.random(3),
        )
    return Clip(
        motion,
        outfit,
        images,
        rendered.control,
        rendered.iuv,
        rendered.mask > 0,
        int(seed),
        vary,
        held_out_colours,
    )


def train_motions() -> list[str]:
    return [name for name in library.MOTIONS if name not in domain.HELD_OUT_MOTIONS]


def build_dataset(
    clips: int, frames: int, resolution: int, seed: int, held_out: bool = False, progress: bool = True
):
    """Yield ``clips`` painted clips: training motions and colours, or (``held_out``) the held-out ones."""
    from tqdm import tqdm

    from latentman.body import load_body

    body = load_body("builtin")
    motions = list(domain.HELD_OUT_MOTIONS) if held_out else train_motions()
    for index in tqdm(range(clips), desc="toy clips", disable=not progress):
        motion = motions[index % len(motions)]
        yield render_clip(body, motion, seed * 100_003 + index, frames, resolution, held_out_colours=held_out)
