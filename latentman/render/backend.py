"""pyrender offscreen rendering of face indices: backend choice (OSMesa / EGL) and the raster pass.

The only thing taken from OpenGL is *which face is visible at each pixel centre*: every triangle is
drawn unlit in a flat colour that encodes its index (24-bit RGB, 0 = background). Depth, barycentric
coordinates and IUV are then computed exactly from that face and the camera (latentman.render.iuv),
so they never depend on depth-buffer precision or on colour blending.

pyrender draws into a 4× multisampled framebuffer and enables GL_MULTISAMPLE for every pass except
its segmentation pass; averaging samples would mix the colours of neighbouring faces into indices of
unrelated faces at every silhouette and triangle edge. :class:`FaceIndexRenderer` therefore keeps
GL_MULTISAMPLE off while it draws (single-sample rasterisation at pixel centres), and it checks every
decoded index.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import numpy as np

from latentman.errors import ConfigError, LatentmanError
from latentman.render.camera import Camera

BACKENDS = ("auto", "osmesa", "egl")


def gpu_visible() -> bool:
    """True when an NVIDIA GPU is visible to this process (device node present, not hidden by env)."""
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    if hidden is not None and hidden.strip() in ("", "-1"):
        return False
    return os.path.exists("/dev/nvidia0") or os.path.exists("/dev/nvidiactl")


def select_backend(backend: str) -> str:
    """The PyOpenGL platform for ``render.backend``: auto → egl when a GPU is visible, else osmesa.

    Once PyOpenGL has been imported its platform is fixed for the process: ``auto`` then keeps it,
    and an explicit backend that differs is an error.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"render.backend is {backend!r}, expected one of {', '.join(BACKENDS)}")
    loaded = os.environ.get("PYOPENGL_PLATFORM") if "OpenGL" in sys.modules else None
    if backend == "auto":
        if loaded in ("osmesa", "egl"):
            return loaded
        return "egl" if gpu_visible() else "osmesa"
    if loaded is not None and loaded != backend:
        raise ConfigError(
            f"render.backend is {backend!r} but OpenGL was already loaded in this process for "
            f"{loaded!r}; run the render in a fresh process or set render.backend: auto"
        )
    return backend


def _start_hint(platform: str) -> str:
    if platform == "osmesa":
        return (
            "OSMesa (CPU rendering) could not start: install the Debian/Ubuntu package libosmesa6 "
            "(apt-get install libosmesa6), or mesalib in a conda environment"
        )
    return (
        "EGL (GPU rendering) could not start: it needs an NVIDIA driver with libEGL (Debian package "
        "libegl1); set render.backend: osmesa to render on the CPU (needs libosmesa6)"
    )


def open_renderer(backend: str, width: int, height: int):
    """(platform, pyrender OffscreenRenderer) on the chosen backend; else an error naming what to install."""
    platform = select_backend(backend)
    os.environ["PYOPENGL_PLATFORM"] = platform
    try:
        import pyrender

        return platform, pyrender.OffscreenRenderer(width, height)
    except Exception as exc:  # noqa: BLE001 - import and context errors vary by platform and driver
        raise LatentmanError(
            f"render.backend {backend!r} ({platform}): {_start_hint(platform)} ({type(exc).__name__}: {exc})"
        ) from None


@contextlib.contextmanager
def _single_sample() -> Iterator[None]:
    """Keep GL_MULTISAMPLE off while pyrender draws (it enables it for every non-segmentation pass)."""
    import pyrender.renderer as pyrender_renderer
    from OpenGL.GL import GL_MULTISAMPLE, glDisable

    original = pyrender_renderer.glEnable

    def enable_except_multisample(capability):
        if capability == GL_MULTISAMPLE:
            glDisable(GL_MULTISAMPLE)
        else:
            original(capability)

    pyrender_renderer.glEnable = enable_except_multisample
    try:
        yield
    finally:
        pyrender_renderer.glEnable = original


def encode_face_colours(num_faces: int) -> np.ndarray:
    """RGBA uint8 colour ``(T, 4)`` of every face: index + 1 in 24-bit little-endian RGB."""
    if num_faces >= 2**24 - 1:
        raise LatentmanError(f"render: {num_faces} faces is more than a 24-bit face index can hold")
    code = np.arange(1, num_faces + 1, dtype=np.int64)
    return np.stack(
        [code & 255, (code >> 8) & 255, (code >> 16) & 255, np.full(num_faces, 255)], axis=-1
    ).astype(np.uint8)


def decode_face_colours(rgb: np.ndarray) -> np.ndarray:
    """Face index ``(H, W)`` int32 (-1 = background) of an RGB image made with :func:`encode_face_colours`."""
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] | (rgb[..., 1] << 8) | (rgb[..., 2] << 16)).astype(np.int32) - 1


class FaceIndexRenderer:
    """Renders the visible face at every pixel centre for one video (one OffscreenRenderer, one camera,
    fixed or moving).

    Use as a context manager so that the OpenGL context is released at the end.
    """

    def __init__(
        self, faces: np.ndarray, camera: Camera, depth_range: tuple[float, float], backend: str = "auto"
    ):
        """``depth_range``: (nearest, farthest) vertex depth of the whole clip, for the clipping planes."""
        self.faces = np.asarray(faces, dtype=np.int64)
        self.camera = camera
        self.platform, self._renderer = open_renderer(backend, camera.width, camera.height)
        import pyrender

        self._pyrender = pyrender
        self._colours = np.repeat(encode_face_colours(len(self.faces)), 3, axis=0)
        self._scene = pyrender.Scene(bg_color=[0.0, 0.0, 0.0, 0.0], ambient_light=[0.0, 0.0, 0.0])
        # Planes with a margin around the clip: nothing clipped, and a fine depth test.
        near, far = float(depth_range[0]), float(depth_range[1])
        k = camera.intrinsics
        pyrender_camera = pyrender.IntrinsicsCamera(
            fx=k[0, 0], fy=k[1, 1], cx=k[0, 2], cy=k[1, 2], znear=max(near * 0.5, 1e-3), zfar=far * 2.0 + 1.0
        )
        self._poses = camera.pyrender_pose()  # (4, 4), or (F, 4, 4) for a camera that moves
        first = self._poses[0] if camera.per_frame else self._poses
        self._camera_node = self._scene.add(pyrender_camera, pose=first)
        self._mesh_node = None

    def render(self, vertices: np.ndarray, frame: int = 0) -> np.ndarray:
        """Visible face index ``(H, W)`` int32 (-1 = background) of the mesh posed at ``vertices (V, 3)``,
        seen from the camera of video frame ``frame``."""
        pyrender = self._pyrender
        if self.camera.per_frame:
            self._scene.set_pose(self._camera_node, self._poses[frame])
        positions = np.asarray(vertices, dtype=np.float32)[self.faces].reshape(-1, 3)
        primitive = pyrender.Primitive(
            positions=positions, color_0=self._colours, mode=pyrender.GLTF.TRIANGLES
        )
        if self._mesh_node is not None:
            self._scene.remove_node(self._mesh_node)
        self._mesh_node = self._scene.add(pyrender.Mesh([primitive]))
        flags = pyrender.RenderFlags.FLAT | pyrender.RenderFlags.SKIP_CULL_FACES
        with _single_sample():
            colour, _ = self._renderer.render(self._scene, flags=flags)
        face_id = decode_face_colours(colour[..., :3])
        if face_id.max() >= len(self.faces):
            raise LatentmanError(
                f"render ({self.platform}): the face-index image holds colours that are no face index "
                "(blended by the OpenGL driver); report this with the output of glxinfo/eglinfo"
            )
        return face_id

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.delete()
            self._renderer = None

    def __enter__(self) -> FaceIndexRenderer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
