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

OSMesa and EGL give byte-identical face indices (hence depth, IUV, mask and control image). pyrender draws
into OSMesa's window-system buffer, which Mesa draws upside down (y = 0 at the top, as a window: the
viewport's y scale negated and the bottom edge rule for ties), but into a framebuffer object on EGL (y = 0
at the bottom). Window coordinates then round differently, and a pixel centre that lies exactly on the
edge shared by two faces goes to one face on OSMesa and to the other on EGL (measured on Mesa 22.3
llvmpipe: 1 to 9 face-index pixels of 1 to 4 million, in 5 of 7 clips). :class:`FaceIndexRenderer`
therefore draws into framebuffer objects with the clip origin at the upper left (``glClipControl``, OpenGL
4.5), which Mesa implements with the same negated viewport and edge rule, and reads the image back
flipped: the same pixels as OSMesa (7 of 7 clips).

``render.backend: auto`` uses EGL when it works, else OSMesa: a probe in a subprocess (PyOpenGL's platform is
fixed for a process once loaded) creates an EGL context and renders a tiny scene; its answer is cached for
the process and logged with the reason (:func:`egl_probe`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Iterator

import numpy as np

from latentman.errors import ConfigError, LatentmanError
from latentman.render.camera import Camera

log = logging.getLogger(__name__)

BACKENDS = ("auto", "osmesa", "egl")

# Seconds the EGL probe may take before auto gives up on EGL (it takes about 2 s: importing pyrender).
EGL_PROBE_TIMEOUT_S = 60.0

# Run with PYOPENGL_PLATFORM=egl in a fresh interpreter: pyrender's EGL context (its device platform,
# EGL_DEVICE_ID), one triangle drawn in a face-index colour, read back. Prints the GL renderer and version.
_EGL_PROBE_CODE = """
import numpy as np
import pyrender
from OpenGL import GL
from pyrender.platforms import egl

try:
    devices = egl.query_devices()
except RuntimeError:  # no device query extension: pyrender then uses the default display
    devices = None
if devices == []:
    raise SystemExit("EGL lists no device (no EGL vendor library: Mesa's libegl-mesa0 or the GPU driver's)")
renderer = pyrender.OffscreenRenderer(8, 8)
GL.glClipControl(GL.GL_UPPER_LEFT, GL.GL_NEGATIVE_ONE_TO_ONE)  # as FaceIndexRenderer draws on EGL
scene = pyrender.Scene(bg_color=[0.0, 0.0, 0.0, 0.0], ambient_light=[0.0, 0.0, 0.0])
positions = np.array([[-1.0, -1.0, -1.0], [1.0, -1.0, -1.0], [0.0, 1.0, -1.0]], dtype=np.float32)
colours = np.tile(np.array([[1, 2, 3, 255]], dtype=np.uint8), (3, 1))
triangle = pyrender.Primitive(positions=positions, color_0=colours, mode=pyrender.GLTF.TRIANGLES)
scene.add(pyrender.Mesh([triangle]))
scene.add(pyrender.IntrinsicsCamera(fx=4.0, fy=4.0, cx=4.0, cy=4.0, znear=0.1, zfar=10.0))
flags = pyrender.RenderFlags.FLAT | pyrender.RenderFlags.SKIP_CULL_FACES
colour, _ = renderer.render(scene, flags=flags)
name = GL.glGetString(GL.GL_RENDERER).decode() + ", OpenGL " + GL.glGetString(GL.GL_VERSION).decode()
renderer.delete()
if tuple(colour[4, 4, :3]) != (1, 2, 3):
    raise SystemExit("the test triangle came back as " + str(tuple(colour[4, 4, :3])) + " on " + name)
print(name)
"""

_egl_probe_result: tuple[bool, str] | None = None


def egl_probe(refresh: bool = False) -> tuple[bool, str]:
    """(whether EGL renders here, why): the probe's GL renderer, or the reason it failed.

    Runs once per process (cached; ``refresh`` runs it again) in a subprocess with PYOPENGL_PLATFORM=egl
    and this process's environment; never raises.
    """
    global _egl_probe_result
    if _egl_probe_result is not None and not refresh:
        return _egl_probe_result
    env = {**os.environ, "PYOPENGL_PLATFORM": "egl"}
    try:
        done = subprocess.run(
            [sys.executable, "-c", _EGL_PROBE_CODE],
            env=env,
            capture_output=True,
            text=True,
            timeout=EGL_PROBE_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        result = (False, f"the EGL probe did not run ({type(exc).__name__}: {exc})")
    else:
        lines = [line.strip() for line in (done.stderr or "").splitlines() if line.strip()]
        if done.returncode == 0 and done.stdout.strip():
            result = (True, f"EGL rendered a test triangle on {done.stdout.strip().splitlines()[-1]}")
        else:
            last = lines[-1] if lines else f"exit status {done.returncode}, no message"
            result = (False, f"the EGL probe failed: {last}")
    _egl_probe_result = result
    return result


def select_backend(backend: str) -> str:
    """The PyOpenGL platform for ``render.backend``: auto → egl when the EGL probe renders, else osmesa.

    Once PyOpenGL has been imported its platform is fixed for the process: ``auto`` then keeps it,
    and an explicit backend that differs is an error.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"render.backend is {backend!r}, expected one of {', '.join(BACKENDS)}")
    loaded = os.environ.get("PYOPENGL_PLATFORM") if "OpenGL" in sys.modules else None
    if backend == "auto":
        if loaded in ("osmesa", "egl"):
            return loaded
        works, reason = egl_probe()
        platform = "egl" if works else "osmesa"
        log.info("render.backend auto: %s (%s)", platform, reason)
        return platform
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
        "EGL could not start: it needs libEGL with a vendor library, the GPU driver's (NVIDIA) or Mesa's "
        "software one (Debian packages libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1); set "
        "render.backend: osmesa to render with OSMesa (needs libosmesa6)"
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
def _single_sample(upper_left: bool = False) -> Iterator[None]:
    """Keep GL_MULTISAMPLE off while pyrender draws (it enables it for every non-segmentation pass);
    ``upper_left``: draw with the clip origin at the upper left (module docstring)."""
    import pyrender.renderer as pyrender_renderer
    from OpenGL.GL import GL_MULTISAMPLE, GL_NEGATIVE_ONE_TO_ONE, GL_UPPER_LEFT, glClipControl, glDisable

    original = pyrender_renderer.glEnable

    def enable_except_multisample(capability):
        if upper_left:  # pyrender's context is current here
            glClipControl(GL_UPPER_LEFT, GL_NEGATIVE_ONE_TO_ONE)
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
        # pyrender draws into a framebuffer object on every platform but OSMesa: draw it upside down, as
        # Mesa draws OSMesa's window-system buffer, so that both break edge ties alike (module docstring).
        self._upper_left = self.platform != "osmesa"
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
        with _single_sample(self._upper_left):
            colour, _ = self._renderer.render(self._scene, flags=flags)
        if self._upper_left:
            colour = colour[::-1]
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
