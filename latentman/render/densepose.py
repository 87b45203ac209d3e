"""Optional detectron2 DensePose backend (``render.iuv: densepose``): IUV from the detector on shaded renders.

This is what the official code does; the default (``exact``) reads IUV off the mesh instead. It is used
only when detectron2 with its DensePose project is installed and a local model folder is configured
(``models.densepose``: a folder with the DensePose config ``*.yaml`` and weights ``*.pkl``/``*.pth``,
e.g. densepose_rcnn_R_50_FPN_s1x). detectron2 is imported lazily; nothing here is needed otherwise.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from latentman.errors import ConfigError


def _model_files(model_dir: str | Path | None) -> tuple[Path | None, Path | None, str]:
    """(config yaml, weights, problem) of a DensePose model folder."""
    if not model_dir:
        return (
            None,
            None,
            "models.densepose is not set (a folder with the DensePose config .yaml and weights)",
        )
    folder = Path(model_dir)
    if not folder.is_dir():
        return None, None, f"models.densepose: folder {folder} does not exist"
    configs = sorted(folder.glob("*.yaml"))
    weights = sorted([*folder.glob("*.pkl"), *folder.glob("*.pth")])
    if not configs or not weights:
        return (
            None,
            None,
            f"models.densepose: {folder} needs a DensePose config *.yaml and weights *.pkl/*.pth",
        )
    return configs[0], weights[0], ""


def densepose_available(model_dir: str | Path | None = None) -> tuple[bool, str]:
    """Whether ``render.iuv: densepose`` can run, and if not, why (one line for the config check)."""
    if importlib.util.find_spec("detectron2") is None:
        return False, (
            "render.iuv: densepose needs detectron2 with its DensePose project, which is not installed "
            "(see https://github.com/facebookresearch/detectron2/tree/main/projects/DensePose); "
            "use render.iuv: exact"
        )
    if importlib.util.find_spec("densepose") is None:
        return False, (
            "render.iuv: densepose: detectron2 is installed but its DensePose project is not "
            "(pip install detectron2's projects/DensePose, see "
            "https://github.com/facebookresearch/detectron2/tree/main/projects/DensePose); "
            "use render.iuv: exact"
        )
    _, _, problem = _model_files(model_dir)
    if problem:
        return False, f"render.iuv: densepose: {problem}; use render.iuv: exact"
    return True, ""


def require_densepose(model_dir: str | Path | None) -> None:
    """Raise a ConfigError saying why the DensePose backend cannot be used, if it cannot."""
    ok, reason = densepose_available(model_dir)
    if not ok:
        raise ConfigError(reason)


def densepose_iuv(images: np.ndarray, model_dir: str | Path, device: str = "cpu") -> np.ndarray:
    """IUV ``(F, H, W, 3)`` uint8 predicted by DensePose on RGB images ``(F, H, W, 3)`` uint8.

    The highest-scoring person of each frame is kept; frames without a detection are all background.
    """
    require_densepose(model_dir)
    import torch
    from densepose import add_densepose_config
    from densepose.vis.extractor import DensePoseResultExtractor
    from detectron2.config import get_cfg
    from detectron2.engine import DefaultPredictor

    config_file, weights, _ = _model_files(model_dir)
    cfg = get_cfg()
    add_densepose_config(cfg)
    cfg.merge_from_file(str(config_file))
    cfg.MODEL.WEIGHTS = str(weights)
    cfg.MODEL.DEVICE = device
    predictor = DefaultPredictor(cfg)
    extractor = DensePoseResultExtractor()
    out = np.zeros(images.shape, dtype=np.uint8)
    with torch.no_grad():
        for index, image in enumerate(images):
            instances = predictor(np.ascontiguousarray(image[..., ::-1]))["instances"].to("cpu")
            if len(instances) == 0:
                continue
            best = int(instances.scores.argmax())
            results, boxes = extractor(instances[best : best + 1])
            if not results:
                continue
            x, y, w, h = (int(round(float(c))) for c in boxes[0])
            labels = results[0].labels.numpy().astype(np.uint8)
            uv = np.clip(results[0].uv.numpy() * 255.0, 0, 255).astype(np.uint8)
            uv[:, labels == 0] = 0
            h, w = labels.shape
            region = out[index, y : y + h, x : x + w]
            region[..., 0] = labels[: region.shape[0], : region.shape[1]]
            region[..., 1] = uv[0, : region.shape[0], : region.shape[1]]
            region[..., 2] = uv[1, : region.shape[0], : region.shape[1]]
    return out


def shaded_frames(vertices: np.ndarray, faces: np.ndarray, camera, backend: str = "auto") -> np.ndarray:
    """Grey, lit renders ``(F, H, W, 3)`` uint8 of a mesh sequence, the detector's input."""
    import trimesh

    from latentman.render.backend import open_renderer

    _, renderer = open_renderer(backend, camera.width, camera.height)
    import pyrender

    try:
        scene = pyrender.Scene(bg_color=[1.0, 1.0, 1.0, 1.0], ambient_light=[0.3, 0.3, 0.3])
        k = camera.intrinsics
        depth = camera.to_camera(vertices)[..., 2]
        view = pyrender.IntrinsicsCamera(
            fx=k[0, 0],
            fy=k[1, 1],
            cx=k[0, 2],
            cy=k[1, 2],
            znear=float(depth.min()) * 0.5,
            zfar=float(depth.max()) * 2,
        )
        poses = camera.pyrender_pose()
        if not camera.per_frame:
            poses = np.repeat(poses[None], len(vertices), axis=0)
        view_node = scene.add(view, pose=poses[0])
        light_node = scene.add(pyrender.DirectionalLight(color=np.ones(3), intensity=3.0), pose=poses[0])
        material = pyrender.MetallicRoughnessMaterial(
            baseColorFactor=[0.7, 0.7, 0.7, 1.0], metallicFactor=0.0
        )
        frames = []
        node = None
        for index, posed in enumerate(vertices):
            scene.set_pose(view_node, poses[index])  # a follow camera moves, and its light with it
            scene.set_pose(light_node, poses[index])
            mesh = pyrender.Mesh.from_trimesh(
                trimesh.Trimesh(posed, faces, process=False), material=material, smooth=True
            )
            if node is not None:
                scene.remove_node(node)
            node = scene.add(mesh)
            colour, _ = renderer.render(scene)
            frames.append(colour[..., :3].copy())
    finally:
        renderer.delete()
    return np.stack(frames)
