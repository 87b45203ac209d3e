"""DensePose-style per-vertex labels: part index ``I`` in 1..24 and per-part ``U, V`` in [0, 1].

Part numbering (DensePose's): the pairs come from DensePose's own data format description
(facebookresearch/DensePose, ``challenge/2019_COCO_DensePose/data_format.md``: "1, 2 = Torso,
3 = Right Hand, 4 = Left Hand, 5 = Left Foot, 6 = Right Foot, 7, 9 = Upper Leg Right, 8, 10 = Upper Leg
Left, 11, 13 = Lower Leg Right, 12, 14 = Lower Leg Left, 15, 17 = Upper Arm Left, 16, 18 = Upper Arm Right,
19, 21 = Lower Arm Left, 20, 22 = Lower Arm Right, 23, 24 = Head"). Which half of a pair is which is not
stated there; we follow the commonly used table: torso 1 back / 2 front, legs back (7, 8, 11, 12) / front
(9, 10, 13, 14), arms inside (15, 16, 19, 20) / outside (17, 18, 21, 22), head 23 right / 24 left.
"Inside" of an arm is its anterior (biceps, inner elbow) side, which faces +Z (the body's front) in the
T-pose rest.

Labels are computed once per body from its rest (zero pose, zero betas) template: every vertex goes to the
limb segment of its dominant skinning joint, a segment splits front/back by the sign of the vertex's offset
from the bone along the body's facing direction (+Z), the head splits by the sign of x. U, V are smooth in
each part: limbs and torso are cylindrical (V along the bone from parent to child joint, U the angle around
it, over the half circle of that half); hands, feet and the head are planar projections. Both are rescaled to
span [0, 1] inside each part. Because labels belong to vertices, a surface point keeps its (I, U, V) in every
frame.

With DensePose's own ``UV_Processed.mat`` (for a 6890-vertex SMPL body) :func:`labels_from_densepose_uv` maps
its per-UV-vertex labels to SMPL vertices instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from latentman.errors import ConfigError
from latentman.skeleton import JOINT_INDEX

NUM_PARTS = 24
SMPL_NUM_VERTICES = 6890

#: Human-readable name of every DensePose part, index = part number (0 = background).
PART_NAMES = (
    "background",
    "torso_back",
    "torso_front",
    "right_hand",
    "left_hand",
    "left_foot",
    "right_foot",
    "upper_leg_right_back",
    "upper_leg_left_back",
    "upper_leg_right_front",
    "upper_leg_left_front",
    "lower_leg_right_back",
    "lower_leg_left_back",
    "lower_leg_right_front",
    "lower_leg_left_front",
    "upper_arm_left_inside",
    "upper_arm_right_inside",
    "upper_arm_left_outside",
    "upper_arm_right_outside",
    "lower_arm_left_inside",
    "lower_arm_right_inside",
    "lower_arm_left_outside",
    "lower_arm_right_outside",
    "head_right",
    "head_left",
)

# Segments: (SMPL joints whose vertices belong to it, axis from joint, axis to joint, kind, parts).
# kind "split": cylindrical halves; parts = (front/inside part, back/outside part).
# kind "planar": one part; U along `lateral` axis, V along the bone.  kind "head": split by x sign.
_J = JOINT_INDEX
_SEGMENTS = (
    (
        ("pelvis", "spine1", "spine2", "spine3", "left_collar", "right_collar"),
        "pelvis",
        "neck",
        "split",
        (2, 1),
    ),
    (("left_hip",), "left_hip", "left_knee", "split", (10, 8)),
    (("right_hip",), "right_hip", "right_knee", "split", (9, 7)),
    (("left_knee",), "left_knee", "left_ankle", "split", (14, 12)),
    (("right_knee",), "right_knee", "right_ankle", "split", (13, 11)),
    (("left_shoulder",), "left_shoulder", "left_elbow", "split", (15, 17)),
    (("right_shoulder",), "right_shoulder", "right_elbow", "split", (16, 18)),
    (("left_elbow",), "left_elbow", "left_wrist", "split", (19, 21)),
    (("right_elbow",), "right_elbow", "right_wrist", "split", (20, 22)),
    (("left_wrist", "left_hand"), "left_wrist", "left_hand", "planar", (4,)),
    (("right_wrist", "right_hand"), "right_wrist", "right_hand", "planar", (3,)),
    (("left_ankle", "left_foot"), "left_ankle", "left_foot", "planar", (5,)),
    (("right_ankle", "right_foot"), "right_ankle", "right_foot", "planar", (6,)),
    (("neck", "head"), "neck", "head", "head", (24, 23)),
)

_FRONT = np.array([0.0, 0.0, 1.0])
_UP = np.array([0.0, 1.0, 0.0])
_LEFT = np.array([1.0, 0.0, 0.0])


def _rescale(values: np.ndarray) -> np.ndarray:
    """Map ``values`` linearly onto [0, 1] (a constant maps to 0.5)."""
    lo, hi = float(values.min()), float(values.max())
    if hi - lo < 1e-12:
        return np.full_like(values, 0.5)
    return (values - lo) / (hi - lo)


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


def compute_vertex_labels(
    vertices: np.ndarray, weights: np.ndarray, joints: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-vertex DensePose part and U, V from a rest-pose body's geometry and skinning.

    Args:
        vertices: ``(V, 3)`` rest template (T-pose, Y up, facing +Z, left = +X).
        weights: ``(V, 24)`` skinning weights in SMPL joint order.
        joints: ``(24, 3)`` rest joints.

    Returns:
        ``vertex_part`` ``(V,)`` uint8 in 1..24 and ``vertex_uv`` ``(V, 2)`` float32 in [0, 1].
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    joints = np.asarray(joints, dtype=np.float64)
    dominant = np.asarray(weights).argmax(axis=1)
    part = np.zeros(len(vertices), dtype=np.uint8)
    uv = np.zeros((len(vertices), 2), dtype=np.float64)
    for members, start_name, end_name, kind, parts in _SEGMENTS:
        mask = np.isin(dominant, [_J[name] for name in members])
        if not mask.any():
            continue
        index = np.flatnonzero(mask)
        start, end = joints[_J[start_name]], joints[_J[end_name]]
        axis = _unit(end - start)
        rel = vertices[index] - start
        along = rel @ axis
        if kind == "split":
            # Angle around the bone, measured from the facing direction (front half) or its opposite
            # (back half), so that each half is one continuous range with no wrap-around inside it.
            e1 = _FRONT - (_FRONT @ axis) * axis
            if np.linalg.norm(e1) < 1e-6:  # bone along Z (e.g. a foot): fall back to "up"
                e1 = _UP - (_UP @ axis) * axis
            e1 = _unit(e1)
            e2 = np.cross(axis, e1)
            x1, x2 = rel @ e1, rel @ e2
            front = x1 >= 0.0
            for is_front, part_id in ((True, parts[0]), (False, parts[1])):
                sel = front == is_front
                if not sel.any():
                    continue
                sign = 1.0 if is_front else -1.0
                angle = np.arctan2(sign * x2[sel], sign * x1[sel])
                part[index[sel]] = part_id
                uv[index[sel], 0] = _rescale(angle)
                uv[index[sel], 1] = _rescale(along[sel])
        elif kind == "planar":
            lateral = _FRONT if abs(axis @ _FRONT) < 0.7 else _LEFT
            lateral = _unit(lateral - (lateral @ axis) * axis)
            part[index] = parts[0]
            uv[index, 0] = _rescale(rel @ lateral)
            uv[index, 1] = _rescale(along)
        else:  # head: left (+x) and right halves, planar side view (U front-back, V up)
            left = vertices[index, 0] >= joints[_J["head"], 0]
            for is_left, part_id in ((True, parts[0]), (False, parts[1])):
                sel = left == is_left
                if not sel.any():
                    continue
                part[index[sel]] = part_id
                uv[index[sel], 0] = _rescale(rel[sel] @ _FRONT)
                uv[index[sel], 1] = _rescale(rel[sel] @ _UP)
    if (part == 0).any():  # cannot happen with 24-joint weights; kept as a guard for odd files
        raise ConfigError(
            "body model: some vertices have no DensePose part; the skinning weights look broken"
        )
    return part, uv.astype(np.float32)


def labels_from_densepose_uv(path: str | Path, num_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-SMPL-vertex part and U, V from DensePose's ``UV_Processed.mat``.

    The file describes DensePose's UV-unwrapped SMPL mesh: ``All_vertices`` (1-indexed SMPL vertex of every
    UV vertex), ``All_U_norm``, ``All_V_norm`` (per UV vertex), ``All_Faces`` (1-indexed UV-vertex triangles)
    and ``All_FaceIndices`` (part of every face). A SMPL vertex on a seam between parts has several UV copies;
    we keep the copy whose part is most frequent among its faces (ties: lowest part), so IUV right at a part
    border is approximate, as in any per-vertex labelling.

    Raises:
        ConfigError: the body is not SMPL topology, or the file is missing or lacks a key.
    """
    import scipy.io

    path = Path(path)
    key_hint = "config key models.densepose_uv"
    if num_vertices != SMPL_NUM_VERTICES:
        raise ConfigError(
            f"{key_hint}: DensePose's UV file {path} is for the {SMPL_NUM_VERTICES}-vertex SMPL mesh, "
            f"but the body has {num_vertices} vertices; use an official SMPL model file or drop the UV file"
        )
    if not path.is_file():
        raise ConfigError(f"{key_hint}: {path} does not exist (DensePose's UV_Processed.mat)")
    try:
        data = scipy.io.loadmat(path)
    except Exception as exc:  # scipy raises several types for a bad file
        raise ConfigError(f"{key_hint}: cannot read {path} as a .mat file ({exc})") from None
    needed = ("All_FaceIndices", "All_Faces", "All_U_norm", "All_V_norm", "All_vertices")
    missing = [key for key in needed if key not in data]
    if missing:
        raise ConfigError(
            f"{key_hint}: {path} lacks {', '.join(missing)}; is it DensePose's UV_Processed.mat?"
        )
    smpl_vertex = np.asarray(data["All_vertices"]).reshape(-1).astype(np.int64) - 1
    u = np.asarray(data["All_U_norm"], dtype=np.float64).reshape(-1)
    v = np.asarray(data["All_V_norm"], dtype=np.float64).reshape(-1)
    faces = np.asarray(data["All_Faces"]).astype(np.int64) - 1
    face_part = np.asarray(data["All_FaceIndices"]).reshape(-1).astype(np.int64)
    count = len(smpl_vertex)
    if not (len(u) == len(v) == count and faces.ndim == 2 and faces.shape[1] == 3):
        raise ConfigError(f"{key_hint}: {path} has inconsistent array sizes")
    if len(face_part) != len(faces) or face_part.min() < 1 or face_part.max() > NUM_PARTS:
        raise ConfigError(f"{key_hint}: {path}: All_FaceIndices must hold one part in 1..24 per face")
    if smpl_vertex.min() < 0 or smpl_vertex.max() >= num_vertices or faces.min() < 0 or faces.max() >= count:
        raise ConfigError(f"{key_hint}: {path} indexes vertices outside the SMPL mesh")

    # Part votes per UV vertex, then per SMPL vertex: the majority part wins; its UV copy gives U, V.
    votes = np.zeros((count, NUM_PARTS + 1), dtype=np.int64)
    np.add.at(votes, (faces.reshape(-1), np.repeat(face_part, 3)), 1)
    uv_vertex_part = votes.argmax(axis=1)
    smpl_votes = np.zeros((num_vertices, NUM_PARTS + 1), dtype=np.int64)
    np.add.at(smpl_votes, (smpl_vertex, uv_vertex_part), votes[np.arange(count), uv_vertex_part])
    part = smpl_votes.argmax(axis=1)
    if (smpl_votes.sum(axis=1) == 0).any():
        raise ConfigError(f"{key_hint}: {path} does not cover every SMPL vertex")
    vertex_uv = np.zeros((num_vertices, 2), dtype=np.float32)
    # Among the copies with the winning part, the first one in file order supplies U, V.
    chosen = np.full(num_vertices, -1, dtype=np.int64)
    for uv_index in np.flatnonzero(uv_vertex_part == part[smpl_vertex])[::-1]:
        chosen[smpl_vertex[uv_index]] = uv_index
    chosen = np.where(chosen < 0, 0, chosen)
    vertex_uv[:, 0] = np.clip(u[chosen], 0.0, 1.0)
    vertex_uv[:, 1] = np.clip(v[chosen], 0.0, 1.0)
    return part.astype(np.uint8), vertex_uv
