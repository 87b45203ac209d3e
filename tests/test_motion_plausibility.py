"""Wrong units and axes in imported joints are named at import, with the fix."""

import re

import numpy as np
import pytest

from latentman.motion import make_motion
from latentman.motion.plausibility import skeleton_problem


@pytest.fixture(scope="module")
def walk():
    motion = make_motion(
        {"id": "w", "motion": "a person walks forward", "frames": 8, "seed": 1, "motion_file": ""},
        {"motion": {"fps": 20, "frame_step": 1}},
    )
    return motion.joints.astype(np.float64), motion.fps


def test_a_walk_in_metres_y_up_is_plausible(walk):
    assert skeleton_problem(*walk) is None


@pytest.mark.parametrize(
    ("transform", "message"),
    [
        (lambda j: j * 1000.0, r"look like millimetres; divide them by 1000"),
        (lambda j: j * 100.0, r"look like centimetres; divide them by 100"),
        (lambda j: j * 1e-5, r"joints must be in metres"),
        (lambda j: np.stack([j[..., 0], -j[..., 2], j[..., 1]], -1), r"along \+Z.*Z-up: map \(x, y, z\)"),
        (lambda j: j * np.array([1.0, -1.0, -1.0]), r"along -Y.*upside down"),
    ],
    ids=["mm", "cm", "tiny", "z_up", "upside_down"],
)
def test_wrong_units_and_axes_are_named(walk, transform, message):
    joints, fps = walk
    problem = skeleton_problem(transform(joints), fps)
    assert problem is not None and re.search(message, problem), problem


def test_implausible_travel_is_named(walk):
    joints, fps = walk
    travel = joints.copy()
    travel[:, :, 2] += np.arange(len(joints))[:, None] * 2.0  # 2 m per frame at 20 fps = 40 m/s
    assert skeleton_problem(travel, fps).startswith("the pelvis moves up to 4")  # 40 m/s + the walk's own
    assert skeleton_problem(joints, fps / 100) is None  # slower is fine
