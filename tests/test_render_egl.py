"""The EGL render backend on this machine (Mesa's software EGL: device platform, llvmpipe), against OSMesa.

PyOpenGL fixes its platform when it is first imported, so every render here runs in its own subprocess:
one with render.backend egl, one with osmesa, one with auto, and one with auto and a broken EGL.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from latentman.render import backend

REPO = Path(__file__).resolve().parent.parent
MESA_EGL_VENDOR = Path("/usr/share/glvnd/egl_vendor.d/50_mesa.json")

# An 8-frame walk at 512² (the paper's size) through latentman.render.frames: every array that the render
# file stores per pixel. This clip has a pixel centre on an edge shared by two faces (frame 4), which EGL and
# OSMesa broke differently before FaceIndexRenderer drew y-flipped into framebuffer objects.
RENDER_SCRIPT = """
import json, logging, sys
import numpy as np
from latentman.body import load_body
from latentman.body.fit import fit_motion
from latentman.motion import make_motion
from latentman.render.frames import ground_offset, render_mesh_sequence
from latentman.render.settings import RenderSettings

logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
backend, out, resolution, frames = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
row = {"id": "clip", "motion": "a person walks forward", "frames": 2 * frames, "seed": 3, "motion_file": ""}
motion = make_motion(row, {"motion": {"fps": 20, "frame_step": 2}})
body = load_body("builtin")
smpl = fit_motion(motion, body).take(np.arange(0, 2 * frames, 2))
vertices, _ = body.forward(smpl.global_orient, smpl.body_pose, smpl.transl, betas=smpl.betas)
vertices = vertices.astype(np.float64)
vertices[..., 1] += ground_offset(vertices)
settings = RenderSettings(resolution=resolution, backend=backend)
rendered = render_mesh_sequence(vertices, body.faces, body.vertex_part, body.vertex_uv, settings)
keys = ("depth", "control", "iuv", "face_id", "barycentric", "mask")
np.savez(out, **{key: getattr(rendered, key) for key in keys})
print(json.dumps({"backend": rendered.backend}))
"""
ARRAYS = ("depth", "control", "iuv", "face_id", "barycentric", "mask")


def render_in_subprocess(
    tmp_path: Path, name: str, render_backend: str, env_extra=None, resolution: int = 512, frames: int = 8
):
    """(backend used, stderr, arrays) of the walk rendered in a fresh interpreter."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    env.pop("PYOPENGL_PLATFORM", None)  # conftest sets osmesa for this process; the backend decides here
    out = tmp_path / f"{name}.npz"
    done = subprocess.run(
        [sys.executable, "-c", RENDER_SCRIPT, render_backend, str(out), str(resolution), str(frames)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    used = json.loads(done.stdout.strip().splitlines()[-1])["backend"]
    with np.load(out) as arrays:
        return used, done.stderr, {key: arrays[key] for key in arrays.files}


@pytest.fixture(scope="module")
def egl_works():
    """Skip where Mesa's EGL is not installed; where it is, EGL must work (a failure, not a skip)."""
    works, reason = backend.egl_probe(refresh=True)
    if not works and not MESA_EGL_VENDOR.exists():
        pytest.skip(f"no EGL here ({reason}); tools/install.sh installs Mesa's software EGL")
    assert works, f"Mesa's EGL is installed ({MESA_EGL_VENDOR}) but does not render: {reason}"
    return reason


@pytest.mark.slow
def test_egl_renders_byte_identical_to_osmesa(tmp_path, egl_works):
    used_egl, _, egl = render_in_subprocess(tmp_path, "egl", "egl")
    used_osmesa, _, osmesa = render_in_subprocess(tmp_path, "osmesa", "osmesa")
    assert (used_egl, used_osmesa) == ("egl", "osmesa")
    assert egl["mask"].sum() > 8 * 10_000  # the body is there, in every frame
    for key in ARRAYS:
        assert egl[key].dtype == osmesa[key].dtype and egl[key].shape == osmesa[key].shape, key
        differ = int(np.count_nonzero(egl[key] != osmesa[key]))
        assert egl[key].tobytes() == osmesa[key].tobytes(), f"{key}: {differ} values differ"


@pytest.mark.slow
def test_auto_picks_egl_when_it_works_and_osmesa_when_egl_is_broken(tmp_path, egl_works):
    used, log, auto = render_in_subprocess(tmp_path, "auto", "auto", resolution=128, frames=2)
    assert used == "egl"
    assert "render.backend auto: egl (EGL rendered a test triangle on " in log
    # A broken EGL (a device that does not exist): the probe fails, auto renders with OSMesa, and says why.
    used, log, fallback = render_in_subprocess(
        tmp_path, "broken", "auto", {"EGL_DEVICE_ID": "99"}, resolution=128, frames=2
    )
    assert used == "osmesa"
    assert "render.backend auto: osmesa (the EGL probe failed: ValueError: Invalid device ID (99))" in log
    for key in ARRAYS:
        assert auto[key].tobytes() == fallback[key].tobytes(), key


def test_egl_probe_reasons_and_cache(monkeypatch, caplog):
    """No EGL vendor library: one line saying so; the answer is cached for the process."""
    monkeypatch.setattr(backend, "_egl_probe_result", None)
    monkeypatch.setenv("__EGL_VENDOR_LIBRARY_FILENAMES", "/nonexistent/egl_vendor.json")
    works, reason = backend.egl_probe()
    assert not works
    assert reason.startswith("the EGL probe failed: EGL lists no device (no EGL vendor library")
    runs = []
    monkeypatch.setattr(backend.subprocess, "run", lambda *a, **k: runs.append(a))
    assert backend.egl_probe() == (works, reason) and not runs  # cached: no second subprocess
    # auto in a process where OpenGL is not loaded yet: the probe decides, and the log says why.
    monkeypatch.delitem(sys.modules, "OpenGL", raising=False)
    with caplog.at_level(logging.INFO, logger=backend.__name__):
        assert backend.select_backend("auto") == "osmesa"
    assert f"render.backend auto: osmesa ({reason})" in caplog.text


def test_egl_probe_that_cannot_start_is_a_reason_not_a_crash(monkeypatch):
    monkeypatch.setattr(backend, "_egl_probe_result", None)

    def timeout(*args, **kwargs):
        raise subprocess.TimeoutExpired(args[0], backend.EGL_PROBE_TIMEOUT_S)

    monkeypatch.setattr(backend.subprocess, "run", timeout)
    works, reason = backend.egl_probe()
    assert not works and reason.startswith("the EGL probe did not run (TimeoutExpired:")
