"""The render camera: perspective, square pixels, in front of the body; fixed, or following it (dolly).

Conventions (stored in the render file's ``/camera`` group):

- ``extrinsics`` ``(4, 4)`` maps world points to camera coordinates with OpenCV axes: x right, y down,
  z forward along the view axis, so ``z`` is the metric depth stored in ``/depth``;
- ``intrinsics`` ``(3, 3)`` maps camera coordinates to pixels: ``(u, v) = (K @ X)[:2] / z``, with ``u``
  to the right and ``v`` down in pixel units; pixel ``(row i, column j)`` has its centre at
  ``(u, v) = (j + 0.5, i + 0.5)``, so the image spans ``[0, W] × [0, H]``.

The camera sits on the +Z side of the motion and looks towards -Z, raised by ``elevation_deg`` and
tilted down by the same angle, aimed at the centre of the bounding box of all frames; its distance
is the smallest at which every vertex of every frame lies within the central ``fill`` fraction of the
image (|ndc| ≤ fill on both axes), found in closed form.

``render.camera.mode`` (:func:`choose_camera`):

- ``fixed``: one camera for the whole video, framing every frame at once (the paper's setup). A clip
  that travels far makes the body small: a 120-frame walk covers metres, and the body shrinks to a few
  dozen pixels at the far end.
- ``follow``: a dolly. The camera keeps the fixed camera's orientation and moves parallel to the ground
  with the body's smoothed horizontal pelvis track, so the body stays framed in every frame; its height
  does not follow (a jump still rises in the image). The track is smoothed (a straight-line fit plus a
  Gaussian-filtered residual, :data:`FOLLOW_SMOOTHING_S`) because the pelvis sways and bobs with every
  step: a camera locked to it would cancel that motion on screen and shake the whole view at the step
  frequency, which the control images would pass on to the generated video as jitter. The extrinsics
  are then per frame ``(F, 4, 4)``; intrinsics stay shared.
- ``auto`` (default): ``follow`` when, under the fixed camera, the body's image size (the larger side of
  its bounding box) falls below ``auto_follow_below`` of the image in some frame, else ``fixed``.

Depth stays metric in either mode and the control image is normalised over the whole video
(latentman.render.iuv.control_image), never per frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from latentman.errors import ConfigError

#: Closest a vertex may come to the camera, metres (keeps the near clipping plane sensible).
MIN_DEPTH = 0.1
CAMERA_MODES = ("fixed", "follow", "auto")
#: Gaussian sigma (seconds) of the pelvis-track smoothing of a follow camera: longer than a step
#: (0.5-0.6 s for a walk), so the gait's sway and bob stay on screen, while turns are still followed.
FOLLOW_SMOOTHING_S = 0.5


@dataclass(frozen=True)
class Camera:
    """A pinhole camera: intrinsics ``(3, 3)``, world→camera extrinsics ``(4, 4)`` (OpenCV axes), or
    ``(F, 4, 4)`` for a camera that moves (one per video frame; points then come as ``(F, ..., 3)``)."""

    intrinsics: np.ndarray
    extrinsics: np.ndarray
    width: int
    height: int

    @property
    def per_frame(self) -> bool:
        """True for a moving camera (extrinsics ``(F, 4, 4)``)."""
        return np.ndim(self.extrinsics) == 3

    def frame(self, index: int) -> Camera:
        """The camera of video frame ``index`` (a fixed camera is the same in every frame)."""
        if not self.per_frame:
            return self
        return Camera(self.intrinsics, self.extrinsics[index], self.width, self.height)

    def frame_extrinsics(self, frames: int) -> np.ndarray:
        """Extrinsics ``(F, 4, 4)`` of ``frames`` video frames (a fixed camera repeated)."""
        if self.per_frame:
            if len(self.extrinsics) != frames:
                raise ValueError(f"camera has {len(self.extrinsics)} frames, expected {frames}")
            return np.asarray(self.extrinsics, dtype=np.float64)
        return np.repeat(np.asarray(self.extrinsics, dtype=np.float64)[None], frames, axis=0)

    @property
    def yfov_deg(self) -> float:
        return float(np.degrees(2.0 * np.arctan(self.height / 2.0 / self.intrinsics[1, 1])))

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """World points ``(..., 3)`` → camera coordinates ``(..., 3)`` (x right, y down, z forward)."""
        points = np.asarray(points, dtype=np.float64)
        if not self.per_frame:
            return points @ self.extrinsics[:3, :3].T + self.extrinsics[:3, 3]
        frames = len(self.extrinsics)
        if points.ndim < 2 or points.shape[0] != frames:
            raise ValueError(
                f"a per-frame camera ({frames} frames) needs points (F, ..., 3), got {points.shape}"
            )
        flat = points.reshape(frames, -1, 3)
        moved = np.einsum("fij,fnj->fni", self.extrinsics[:, :3, :3], flat) + self.extrinsics[:, None, :3, 3]
        return moved.reshape(points.shape)

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points ``(..., 3)`` → pixel coordinates ``(..., 2)`` (u, v) and depth ``(...)``."""
        cam = self.to_camera(points)
        depth = cam[..., 2]
        safe = np.where(np.abs(depth) > 1e-12, depth, 1e-12)
        k = self.intrinsics
        u = k[0, 0] * cam[..., 0] / safe + k[0, 2]
        v = k[1, 1] * cam[..., 1] / safe + k[1, 2]
        return np.stack([u, v], axis=-1), depth

    def pyrender_pose(self) -> np.ndarray:
        """Camera-to-world pose ``(4, 4)`` (``(F, 4, 4)`` per frame) in OpenGL axes (x right, y up, looking
        down -z), for pyrender."""
        opencv_to_opengl = np.diag([1.0, -1.0, -1.0, 1.0])
        return np.linalg.inv(self.extrinsics) @ opencv_to_opengl


def _look_rotation(elevation_deg: float) -> np.ndarray:
    """World→camera rotation ``(3, 3)`` (OpenCV axes) of a camera looking at -Z, pitched down by elevation."""
    e = np.radians(elevation_deg)
    back = np.array([0.0, np.sin(e), np.cos(e)])  # from the target towards the camera
    up = np.array([0.0, np.cos(e), -np.sin(e)])
    right = np.array([1.0, 0.0, 0.0])
    # Rows: camera x (right), y (down), z (forward = -back).
    return np.stack([right, -up, -back])


def place_camera(
    vertices: np.ndarray, resolution: int, yfov_deg: float, fill: float, elevation_deg: float
) -> Camera:
    """The fixed camera for a clip whose mesh vertices over all frames are ``vertices (F, V, 3)``.

    Raises:
        ConfigError: a camera setting outside its range (names the ``render.camera`` key).
    """
    if not 0.0 < yfov_deg < 180.0:
        raise ConfigError(f"render.camera.yfov_deg is {yfov_deg}, expected a value in (0, 180)")
    if not 0.0 < fill <= 1.0:
        raise ConfigError(f"render.camera.fill is {fill}, expected a value in (0, 1]")
    if not -89.0 <= elevation_deg <= 89.0:
        raise ConfigError(f"render.camera.elevation_deg is {elevation_deg}, expected a value in [-89, 89]")
    points = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    target = 0.5 * (points.min(axis=0) + points.max(axis=0))
    rotation = _look_rotation(elevation_deg)
    local = (points - target) @ rotation.T  # camera axes, origin at the target
    tan_half = np.tan(np.radians(yfov_deg) / 2.0)
    # A point at offset (x, y, a) from the target has depth d + a with the camera d behind the target;
    # it is inside |ndc| <= fill when max(|x|, |y|) <= fill * tan_half * (d + a).
    needed = np.maximum(np.abs(local[:, 0]), np.abs(local[:, 1])) / (fill * tan_half) - local[:, 2]
    distance = float(max(needed.max(), (MIN_DEPTH - local[:, 2]).max()))
    # Camera centre c = target - distance * forward; extrinsics t = -R c.
    centre = target - distance * rotation[2]
    extrinsics = np.eye(4)
    extrinsics[:3, :3] = rotation
    extrinsics[:3, 3] = -rotation @ centre
    focal = resolution / 2.0 / tan_half
    intrinsics = np.array([[focal, 0.0, resolution / 2.0], [0.0, focal, resolution / 2.0], [0.0, 0.0, 1.0]])
    return Camera(intrinsics=intrinsics, extrinsics=extrinsics, width=int(resolution), height=int(resolution))


def dolly_track(track: np.ndarray, fps: float, smoothing_s: float = FOLLOW_SMOOTHING_S) -> np.ndarray:
    """Horizontal camera displacement ``(F, 3)`` (y = 0, mean 0) following ``track (F, 3)``, smoothed.

    The track's straight-line fit is kept exactly and only the residual is Gaussian-filtered (sigma
    ``smoothing_s * fps`` frames), as if the clip continued along that line beyond its ends: a filter
    alone averages a one-sided window at the ends, so the camera would lag a steady walk there, and
    repeating the end value would hand the last step's sway to the camera.
    """
    from scipy.ndimage import gaussian_filter1d

    track = np.asarray(track, dtype=np.float64).reshape(-1, 3)
    frames = len(track)
    shift = np.zeros((frames, 3))
    if frames < 2:
        return shift
    time = np.arange(frames, dtype=np.float64)
    design = np.stack([np.ones(frames), time - time.mean()], axis=1)
    for axis in (0, 2):
        coef, *_ = np.linalg.lstsq(design, track[:, axis], rcond=None)
        line = design @ coef
        residual = track[:, axis] - line
        sigma = max(float(smoothing_s) * float(fps), 1e-6)
        shift[:, axis] = line + gaussian_filter1d(residual, sigma, mode="constant")
    shift[:, (0, 2)] -= shift[:, (0, 2)].mean(axis=0)
    return shift


def follow_camera(
    vertices: np.ndarray,
    resolution: int,
    yfov_deg: float,
    fill: float,
    elevation_deg: float,
    track: np.ndarray | None = None,
    fps: float = 20.0,
) -> Camera:
    """A dolly camera ``(F, 4, 4)`` for ``vertices (F, V, 3)``: the fixed camera's orientation, moved with
    :func:`dolly_track` of ``track (F, 3)`` (default: every frame's vertex mean), as close as every frame,
    seen from its own camera, allows (the fixed camera's closed form on the track-relative vertices)."""
    vertices = np.asarray(vertices, dtype=np.float64)
    track = vertices.mean(axis=1) if track is None else np.asarray(track, dtype=np.float64)
    shift = dolly_track(track, fps)
    # Camera k sees point p as the fixed camera sees p - shift_k: R (p - s_k) + t.
    base = place_camera(vertices - shift[:, None], resolution, yfov_deg, fill, elevation_deg)
    extrinsics = np.repeat(base.extrinsics[None], len(vertices), axis=0)
    extrinsics[:, :3, 3] -= shift @ base.extrinsics[:3, :3].T
    return Camera(base.intrinsics, extrinsics, base.width, base.height)


def body_image_size(vertices: np.ndarray, camera: Camera) -> np.ndarray:
    """Per frame, the larger side of the body's image bounding box as a fraction of the image ``(F,)``."""
    uv, _ = camera.project(vertices)
    extent = uv.max(axis=1) - uv.min(axis=1)  # (F, 2): width, height in pixels
    return np.maximum(extent[:, 0] / camera.width, extent[:, 1] / camera.height)


def choose_camera(
    vertices: np.ndarray,
    resolution: int,
    yfov_deg: float,
    fill: float,
    elevation_deg: float,
    mode: str = "auto",
    auto_follow_below: float = 0.4,
    track: np.ndarray | None = None,
    fps: float = 20.0,
) -> tuple[Camera, str]:
    """The camera for ``render.camera.mode`` and the mode used (``fixed`` or ``follow``).

    Raises:
        ConfigError: an unknown mode or a threshold outside (0, 1].
    """
    if mode not in CAMERA_MODES:
        raise ConfigError(f"render.camera.mode is {mode!r}, expected one of {', '.join(CAMERA_MODES)}")
    if not 0.0 < auto_follow_below <= 1.0:
        raise ConfigError(
            f"render.camera.auto_follow_below is {auto_follow_below}, expected a value in (0, 1]"
        )
    if mode == "follow":
        return follow_camera(vertices, resolution, yfov_deg, fill, elevation_deg, track, fps), "follow"
    fixed = place_camera(vertices, resolution, yfov_deg, fill, elevation_deg)
    if mode == "auto" and float(body_image_size(vertices, fixed).min()) < auto_follow_below:
        return follow_camera(vertices, resolution, yfov_deg, fill, elevation_deg, track, fps), "follow"
    return fixed, "fixed"


def frames_out_of_view(vertices: np.ndarray, camera: Camera) -> list[int]:
    """Frames (0-based) of ``vertices (F, V, 3)`` where a vertex projects outside the image or behind it."""
    uv, depth = camera.project(vertices)
    outside = (
        (depth < MIN_DEPTH / 2)
        | (uv[..., 0] < 0)
        | (uv[..., 0] > camera.width)
        | (uv[..., 1] < 0)
        | (uv[..., 1] > camera.height)
    )
    return [int(f) for f in np.nonzero(outside.any(axis=-1))[0]]


def check_in_view(vertices: np.ndarray, camera: Camera, source: str = "render") -> None:
    """Raise a one-line error naming every frame where part of the body leaves the image."""
    bad = frames_out_of_view(vertices, camera)
    if bad:
        listed = ", ".join(str(f) for f in bad[:20]) + (" …" if len(bad) > 20 else "")
        raise ConfigError(
            f"{source}: the body leaves the camera's image in {len(bad)} of {len(vertices)} frames "
            f"(video frames {listed}, counted from 0); lower render.camera.fill or widen "
            "render.camera.yfov_deg"
        )
