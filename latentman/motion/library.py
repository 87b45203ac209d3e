"""Built-in parametric motion library: text → SMPL joint rotations + root translation.

Each motion drives the 24 SMPL joints with smooth periodic or phased joint angles (radians) and a
root yaw; ground contact is made by construction: every frame the body is lifted so that its lowest
foot joint touches y = 0 (plus a ballistic or bounce height for jumps and hops), and for locomotion
the horizontal root translation is integrated so that the stance foot stays planted (no sliding).

Output of :func:`generate`: ``poses (F, 24, 3)`` axis-angle, ``transl (F, 3)`` pelvis position,
metres, Y up, facing +Z at the start. Speed, amplitude and start phase vary slightly and
deterministically with the seed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from latentman.errors import LatentmanError
from latentman.skeleton import FOOT_JOINTS, JOINT_INDEX, forward_kinematics, matrix_to_axis_angle

J = JOINT_INDEX
GRAVITY = 9.81


@dataclass(frozen=True)
class Style:
    """Per-seed variation: tempo factor, amplitude factor, start phase (radians)."""

    speed: float = 1.0
    amplitude: float = 1.0
    phase: float = 0.0

    @classmethod
    def from_seed(cls, seed: int) -> Style:
        rng = np.random.default_rng(int(seed))
        return cls(
            speed=float(rng.uniform(0.92, 1.08)),
            amplitude=float(rng.uniform(0.9, 1.1)),
            phase=float(rng.uniform(0.0, 2 * np.pi)),
        )


# ------------------------------------------------------------------------------ rotation helpers
def _rx(a):
    a = np.asarray(a, float)
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([o, z, z, z, c, -s, z, s, c], -1).reshape(*a.shape, 3, 3)


def _ry(a):
    a = np.asarray(a, float)
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([c, z, s, z, o, z, -s, z, c], -1).reshape(*a.shape, 3, 3)


def _rz(a):
    a = np.asarray(a, float)
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([c, -s, z, s, c, z, z, z, o], -1).reshape(*a.shape, 3, 3)


class _Pose:
    """Accumulates per-joint local rotation matrices for F frames.

    Sign conventions (SMPL, Y up, facing +Z): X rotation < 0 flexes a hip / swings an arm forward,
    > 0 flexes a knee and leans the spine forward; left arm raise = Z rotation > 0, right < 0.
    """

    def __init__(self, frames: int):
        self.mats = np.broadcast_to(np.eye(3), (frames, 24, 3, 3)).copy()
        self.frames = frames

    def apply(self, joint: str, matrix: np.ndarray) -> None:
        """Post-multiply: ``matrix`` acts first, in the joint's rest frame."""
        self.mats[:, J[joint]] = np.broadcast_to(matrix, (self.frames, 3, 3)) @ self.mats[:, J[joint]]

    def arms_down(self, left: np.ndarray = 1.25, right: np.ndarray = 1.25) -> None:
        """Lower the T-pose arms by the given angles (radians) in the frontal plane."""
        self.apply("left_shoulder", _rz(-np.asarray(left, float)))
        self.apply("right_shoulder", _rz(np.asarray(right, float)))

    def axis_angle(self) -> np.ndarray:
        return matrix_to_axis_angle(self.mats)


def _flat_feet(pose: _Pose, side: str, world_shank: np.ndarray, weight: float = 0.8) -> None:
    # Dorsiflex the ankle against the shank's forward tilt so the sole stays roughly level.
    pose.apply(f"{side}_ankle", _rx(-weight * world_shank))


def _smooth(u):
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3 - 2 * u)


# ----------------------------------------------------------------------------------- motions
@dataclass
class _Drive:
    pose: _Pose
    root: np.ndarray  # (F, 3, 3) global orientation
    lift: np.ndarray  # (F,) extra height above ground contact (flight), >= 0
    locomotion: bool = False  # integrate root translation from the planted foot
    stance: str = "lowest"  # planted foot: the lower one, or the one moving backward ("backward")
    shift: np.ndarray | None = None  # (F, 3) extra horizontal offset of the pelvis


def _gait(t, style, freq, hip_amp, knee_swing, knee_stance, arm_amp, elbow, lean):
    phase = 2 * np.pi * freq * style.speed * t + style.phase
    amp = style.amplitude
    pose = _Pose(len(t))
    for side, offset, arm_sign in (("left", 0.0, 1.0), ("right", np.pi, -1.0)):
        phi = phase + offset
        hip = -hip_amp * amp * np.sin(phi)
        knee = knee_stance + knee_swing * amp * np.clip(np.cos(phi), 0, None) ** 1.5
        pose.apply(f"{side}_hip", _rx(hip))
        pose.apply(f"{side}_knee", _rx(knee))
        _flat_feet(pose, side, lean + hip + knee, weight=0.6)
        # Arms swing against the same-side leg.
        pose.apply(f"{side}_shoulder", _rx(arm_amp * amp * np.sin(phi)))
        pose.apply(f"{side}_elbow", _ry(-arm_sign * (elbow + 0.2 * np.clip(-np.sin(phi), 0, None))))
    pose.arms_down()
    pose.apply("spine1", _rx(np.full(len(t), lean * 0.5)))
    pose.apply("spine2", _rx(np.full(len(t), lean * 0.5)))
    pose.apply("spine3", _ry(0.08 * amp * np.sin(phase)))
    root = _ry(-0.06 * amp * np.sin(phase))
    return pose, root, phase


def _walk(t, style):
    pose, root, _ = _gait(t, style, 1.0, 0.45, 1.0, 0.08, 0.4, 0.25, 0.04)
    return _Drive(pose, root, np.zeros(len(t)), locomotion=True, stance="backward")


def _run(t, style):
    pose, root, phase = _gait(t, style, 1.45, 1.0, 1.7, 0.25, 0.7, 1.4, 0.2)
    lift = 0.05 * style.amplitude * np.sin(phase - style.phase) ** 2
    return _Drive(pose, root, lift, locomotion=True, stance="backward")


def _jump(t, style):
    """Crouch, ballistic flight, landing; repeats every cycle."""
    duration = float(t[-1]) if len(t) > 1 else 1.0
    flight = min(0.45 * style.amplitude, 0.7 * max(duration, 0.2))
    prep = min(0.3, 0.55 * max(duration - flight, 0.05))
    land = 0.35
    cycle = prep + flight + land
    u = np.mod(t * style.speed, cycle)
    crouch = np.where(
        u < prep,
        np.sin(np.pi * u / prep * 0.5) ** 2 * (1 - _smooth((u - 0.6 * prep) / (0.4 * prep))),
        np.where(u > prep + flight, np.sin(np.pi * np.clip((u - prep - flight) / land, 0, 1)) * 0.8, 0.0),
    )
    in_air = (u >= prep) & (u <= prep + flight)
    tau = np.clip(u - prep, 0, flight)
    lift = np.where(in_air, GRAVITY * tau * (flight - tau) / 2, 0.0)
    pose = _Pose(len(t))
    depth = 0.9 * crouch
    for side in ("left", "right"):
        pose.apply(f"{side}_hip", _rx(-1.0 * depth - 0.2 * in_air))
        pose.apply(f"{side}_knee", _rx(1.7 * depth + 0.35 * in_air))
        _flat_feet(pose, side, 0.4 * depth - 1.0 * depth + 1.7 * depth, weight=0.7)
        pose.apply(f"{side}_ankle", _rx(0.4 * in_air))  # pointed toes in the air
    pose.apply("spine1", _rx(0.4 * depth))
    # Arms swing back in the crouch and up in the flight.
    swing = 0.8 * depth - 1.6 * in_air * np.sin(np.pi * tau / max(flight, 1e-6))
    pose.apply("left_shoulder", _rx(swing))
    pose.apply("right_shoulder", _rx(swing))
    pose.arms_down()
    root = _rx(0.35 * depth)
    return _Drive(pose, root, lift)


def _wave(t, style):
    phase = 2 * np.pi * 2.0 * style.speed * t + style.phase
    raise_in = _smooth(t / 0.3 + 0.4)
    pose = _Pose(len(t))
    pose.arms_down(left=1.25, right=1.25 - 1.45 * raise_in)
    pose.apply("right_elbow", _rz(raise_in * (-1.5 + 0.35 * style.amplitude * np.sin(phase))))
    pose.apply("right_shoulder", _ry(0.35 * raise_in))  # arm slightly forward of the body plane
    pose.apply("spine3", _rz(0.05 * raise_in))
    pose.apply("head", _rz(0.05 * np.sin(0.5 * phase)))
    return _Drive(pose, np.broadcast_to(np.eye(3), (len(t), 3, 3)).copy(), np.zeros(len(t)))


def _squat(t, style):
    period = 2.2 / style.speed
    depth = style.amplitude * 0.5 * (1 - np.cos(2 * np.pi * t / period))
    pose = _Pose(len(t))
    for side in ("left", "right"):
        pose.apply(f"{side}_hip", _rx(-1.55 * depth))
        pose.apply(f"{side}_knee", _rx(1.9 * depth))
        _flat_feet(pose, side, 0.35 * depth - 1.55 * depth + 1.9 * depth, weight=0.9)
    pose.apply("spine1", _rx(0.25 * depth))
    pose.arms_down(1.25 - 0.1 * depth, 1.25 - 0.1 * depth)
    pose.apply("left_shoulder", _rx(-1.3 * depth))
    pose.apply("right_shoulder", _rx(-1.3 * depth))
    return _Drive(pose, _rx(0.35 * depth), np.zeros(len(t)))


def _kick(t, style):
    period = 1.3 / style.speed
    u = np.mod(t / period + 0.05, 1.0)
    lift = np.sin(np.pi * u) ** 2 * style.amplitude
    chamber = np.clip(np.sin(2 * np.pi * u), 0, None)
    pose = _Pose(len(t))
    pose.apply("right_hip", _rx(-1.3 * lift))
    pose.apply("right_knee", _rx(1.3 * chamber * (1 - 0.6 * lift) + 0.1))
    pose.apply("left_knee", _rx(np.full(len(t), 0.15)))
    pose.apply("left_hip", _rx(np.full(len(t), -0.1)))
    _flat_feet(pose, "left", 0.05, weight=1.0)
    pose.apply("spine1", _rx(-0.2 * lift))
    pose.arms_down(1.0, 1.0)
    pose.apply("left_elbow", _ry(np.full(len(t), -1.6)))
    pose.apply("right_elbow", _ry(np.full(len(t), 1.6)))
    pose.apply("left_shoulder", _rx(-0.3 - 0.3 * lift))
    pose.apply("right_shoulder", _rx(-0.3 + 0.3 * lift))
    return _Drive(pose, _ry(0.15 * lift), np.zeros(len(t)))


def _punch(t, style):
    period = 1.0 / style.speed
    u = np.mod(t / period + style.phase / (2 * np.pi), 1.0)
    left = np.clip(np.sin(2 * np.pi * u), 0, None) ** 2 * style.amplitude
    right = np.clip(-np.sin(2 * np.pi * u), 0, None) ** 2 * style.amplitude
    pose = _Pose(len(t))
    for side, ext, sign in (("left", left, 1.0), ("right", right, -1.0)):
        # Guard: upper arm down-forward, forearm up; punch: arm straight forward at shoulder height.
        pose.apply(f"{side}_shoulder", _rz(-sign * 1.1 * (1 - ext)))
        pose.apply(f"{side}_shoulder", _ry(-sign * (0.9 + 0.65 * ext)))
        pose.apply(f"{side}_elbow", _rz(-sign * 1.7 * (1 - ext)))
        pose.apply(f"{side}_hip", _rx(np.full(len(t), -0.15)))
        pose.apply(f"{side}_knee", _rx(np.full(len(t), 0.25)))
        _flat_feet(pose, side, 0.1, weight=1.0)
    pose.apply("spine2", _ry(0.35 * (right - left)))
    return _Drive(pose, _ry(0.1 * (right - left)), np.zeros(len(t)))


def _turn(t, style):
    duration = max(float(t[-1]), 1e-6)
    span = min(max(duration, 1.0), 2.0) / style.speed
    yaw = np.pi * _smooth(t / span)
    step = 2 * np.pi * 1.6 * style.speed * t
    pose = _Pose(len(t))
    for side, offset in (("left", 0.0), ("right", np.pi)):
        up = np.clip(np.sin(step + offset), 0, None) * (t < span + 0.2)
        pose.apply(f"{side}_hip", _rx(-0.35 * up * style.amplitude))
        pose.apply(f"{side}_knee", _rx(0.7 * up * style.amplitude))
        _flat_feet(pose, side, 0.35 * up, weight=0.8)
    pose.arms_down()
    pose.apply("left_elbow", _ry(np.full(len(t), -0.3)))
    pose.apply("right_elbow", _ry(np.full(len(t), 0.3)))
    return _Drive(pose, _ry(yaw), np.zeros(len(t)), locomotion=True)


def _dance(t, style):
    phase = 2 * np.pi * 1.0 * style.speed * t + style.phase
    amp = style.amplitude
    bounce = 0.5 * (1 - np.cos(2 * phase))
    pose = _Pose(len(t))
    for side, sign in (("left", 1.0), ("right", -1.0)):
        pose.apply(f"{side}_hip", _rx(-0.25 * bounce))
        pose.apply(f"{side}_knee", _rx(0.45 * bounce))
        _flat_feet(pose, side, 0.2 * bounce, weight=0.9)
        raise_ = 1.25 - amp * (1.2 + 0.9 * np.sin(phase + (0 if sign > 0 else np.pi)))
        pose.apply(f"{side}_shoulder", _rz(-sign * raise_))
        pose.apply(f"{side}_elbow", _rz(sign * 0.8 * (0.5 + 0.5 * np.sin(2 * phase))))
    pose.apply("spine1", _rz(0.15 * amp * np.sin(phase)))
    pose.apply("spine3", _rz(-0.12 * amp * np.sin(phase)))
    pose.apply("head", _rz(0.1 * np.sin(phase)))
    root = _ry(0.45 * amp * np.sin(phase / 2)) @ _rz(0.08 * amp * np.sin(phase))
    shift = np.zeros((len(t), 3))
    shift[:, 0] = 0.12 * amp * (np.sin(phase) - np.sin(style.phase))
    return _Drive(pose, root, np.zeros(len(t)), shift=shift)


def _jumping_jacks(t, style):
    phase = 2 * np.pi * 1.1 * style.speed * t
    spread = 0.5 * (1 - np.cos(phase)) * style.amplitude
    pose = _Pose(len(t))
    pose.arms_down(1.25 - 2.7 * spread, 1.25 - 2.7 * spread)
    pose.apply("left_hip", _rz(0.32 * spread))
    pose.apply("right_hip", _rz(-0.32 * spread))
    pose.apply("left_ankle", _rz(-0.3 * spread))
    pose.apply("right_ankle", _rz(0.3 * spread))
    for side in ("left", "right"):
        pose.apply(f"{side}_knee", _rx(0.25 * np.abs(np.sin(phase))))
    lift = 0.07 * np.abs(np.sin(phase))
    return _Drive(pose, np.broadcast_to(np.eye(3), (len(t), 3, 3)).copy(), lift)


def _stand(t, style):
    phase = 2 * np.pi * 0.25 * style.speed * t + style.phase
    pose = _Pose(len(t))
    pose.arms_down(1.3 + 0.03 * np.sin(phase), 1.3 + 0.03 * np.sin(phase))
    pose.apply("spine3", _rx(0.03 * np.sin(phase)))
    pose.apply("head", _ry(0.1 * np.sin(0.5 * phase)))
    return _Drive(pose, _rz(0.02 * np.sin(phase)), np.zeros(len(t)))


# --------------------------------------------------------------------------- the library table
def _forms(*bases: str) -> tuple[str, ...]:
    """Base verbs and their usual inflections (walks, walking, walked, jogging, dancing, ...)."""
    out: set[str] = set()
    for base in bases:
        out |= {base, base + "s", base + "es", base + "ing", base + "ed"}
        if base.endswith("e"):
            out |= {base[:-1] + "ing", base + "d"}
        cvc = len(base) > 2 and base[-1] not in "aeiouwxy" and base[-2] in "aeiou" and base[-3] not in "aeiou"
        if cvc:  # jog → jogging, spin → spinning
            out |= {base + base[-1] + "ing", base + base[-1] + "ed"}
    return tuple(sorted(out))


@dataclass(frozen=True)
class BuiltinMotion:
    name: str
    words: tuple[str, ...]  # single words that select it
    phrases: tuple[tuple[str, str], ...]  # two-word phrases that select it (checked first)
    drive: Callable[[np.ndarray, Style], _Drive]
    examples: tuple[str, ...] = ()  # shown in error messages and docs


MOTIONS: dict[str, BuiltinMotion] = {
    m.name: m
    for m in (
        BuiltinMotion(
            "jumping_jacks",
            (),
            (("jumping", "jack"), ("jumping", "jacks"), ("star", "jumps"), ("star", "jump")),
            _jumping_jacks,
            (
                "jumping jacks",
                "star jumps",
            ),
        ),
        BuiltinMotion(
            "walk",
            _forms("walk", "stroll", "march", "stride", "wander", "amble", "pace") + ("walker",),
            (),
            _walk,
            (
                "walks",
                "strolls",
                "marches",
            ),
        ),
        BuiltinMotion(
            "run",
            _forms("run", "jog", "sprint", "dash", "race") + ("ran", "runner"),
            (),
            _run,
            (
                "runs",
                "jogs",
                "sprints",
            ),
        ),
        BuiltinMotion(
            "jump",
            _forms("jump", "hop", "leap", "bounce") + ("leapt",),
            (),
            _jump,
            (
                "jumps",
                "hops",
                "leaps",
            ),
        ),
        BuiltinMotion(
            "wave",
            _forms("wave", "greet", "salute") + ("hello", "hi", "goodbye", "bye"),
            (),
            _wave,
            ("waves", "greets", "hello"),
        ),
        BuiltinMotion(
            "squat",
            _forms("squat", "crouch", "duck", "kneel", "knelt"),
            (),
            _squat,
            (
                "squats",
                "crouches",
                "kneels",
            ),
        ),
        BuiltinMotion("kick", _forms("kick"), (), _kick, ("kicks",)),
        BuiltinMotion(
            "punch",
            _forms("punch", "box", "jab", "strike", "hit", "fight") + ("boxer",),
            (),
            _punch,
            ("punches", "boxes", "jabs"),
        ),
        BuiltinMotion(
            "turn",
            _forms("turn", "spin", "rotate", "pivot", "twirl") + ("spun",),
            (("turn", "around"),),
            _turn,
            (
                "turns around",
                "spins",
                "pivots",
            ),
        ),
        BuiltinMotion(
            "dance",
            _forms("dance", "boogie", "groove", "sway") + ("dancer",),
            (),
            _dance,
            (
                "dances",
                "grooves",
                "sways",
            ),
        ),
        BuiltinMotion(
            "stand",
            _forms("stand", "idle", "wait", "breathe") + ("stood", "still"),
            (),
            _stand,
            (
                "stands",
                "idles",
                "waits",
            ),
        ),
    )
}


def describe_motions() -> str:
    """One line listing every built-in motion with a few of its trigger words."""
    return "; ".join(f"{m.name} ({', '.join(m.examples)})" for m in MOTIONS.values())


#: Words after which an -ing/-ed form modifies a noun ("in running shoes", "a walking stick"): not the verb.
_MODIFIER_CONTEXT = frozenset("a an the in with of on his her their its my your for and".split())


def _verb_score(tokens: list[str], i: int, motion: BuiltinMotion) -> int:
    """How surely ``tokens[i]`` (a word of ``motion``) is the sentence's verb: 0 (a noun such as
    "dancer", or a participle modifying a noun, "in running shoes"), 1 (an -ing or -ed form after a
    noun or "is": "a dancer spinning"), 2 (a finite verb: "waves", "kicks", "turn")."""
    token = tokens[i]
    previous = tokens[i - 1] if i > 0 else ""
    if token.endswith("er") and any(token[:-k] in motion.words for k in (1, 2, 3)):
        return 0  # agent noun: dancer, jumper, runner
    if token.endswith(("ing", "ed")) or token in ("spun", "stood"):
        return 0 if previous in _MODIFIER_CONTEXT else 1
    return 2


def explain_motion(text: str) -> tuple[str, str]:
    """(built-in motion, why): the motion word most likely to be the verb, the first of equals.

    Prefers a finite verb ("a man in running shoes waves hello" → wave, by "waves") over an -ing or
    -ed form ("a dancer spinning" → turn, by "spinning"), and either over an agent noun or a participle
    that modifies a noun ("dancer", "in running shoes"). Two-word phrases ("turn around") count as verbs.

    Raises:
        LatentmanError: nothing in the text matches a built-in motion (lists what exists and how
            to configure MDM for free text).
    """
    tokens = re.findall(r"[a-z]+", str(text).lower())
    candidates = []  # (-score, position, motion, word)
    for i, token in enumerate(tokens):
        pair = (token, tokens[i + 1]) if i + 1 < len(tokens) else None
        for motion in MOTIONS.values():
            if pair in motion.phrases:
                candidates.append((-2, i, motion.name, " ".join(pair)))
            elif token in motion.words:
                candidates.append((-_verb_score(tokens, i, motion), i, motion.name, token))
    if not candidates:
        raise LatentmanError(
            f"motion text {text!r} matches no built-in motion; built-in motions: {describe_motions()}. "
            "For free text, set models.mdm (and models.mdm_clip) in config.yaml to an MDM checkpoint, "
            "or give the prompt a motion_file"
        )
    score, _, name, word = min(candidates)
    kind = {-2: "verb", -1: "verb form", 0: "word"}[score]
    others = sorted({c[2] for c in candidates} - {name})
    why = f"{kind} {word!r}" + (f" (also named: {', '.join(others)})" if others else "")
    return name, why


def choose_motion(text: str) -> str:
    """Name of the built-in motion the text asks for (:func:`explain_motion` says why)."""
    return explain_motion(text)[0]


# ------------------------------------------------------------------------------------ assembly
def _ground(joints: np.ndarray) -> np.ndarray:
    """Lowest foot-joint height per frame ``(F,)``."""
    return joints[:, FOOT_JOINTS, 1].min(axis=1)


def _plant(joints: np.ndarray, stance: str) -> np.ndarray:
    """Horizontal root offsets ``(F, 2)`` (x, z) that keep the stance foot fixed on the ground.

    The stance foot of a frame pair is the one lower in the earlier frame (``lowest``) or, for
    straight-line gaits, the one moving backward relative to the pelvis (``backward``); the root
    moves by the opposite of that foot's horizontal displacement relative to the root.
    """
    feet = {"left": [7, 10], "right": [8, 11]}
    offsets = np.zeros((len(joints), 2))
    for k in range(1, len(joints)):
        prev = joints[k - 1]
        moves = {s: joints[k, i][:, [0, 2]].mean(0) - prev[i][:, [0, 2]].mean(0) for s, i in feet.items()}
        if stance == "backward":
            side = min(feet, key=lambda s: moves[s][1])
        else:
            side = min(feet, key=lambda s: prev[feet[s], 1].min())
        offsets[k] = offsets[k - 1] - moves[side]
    return offsets


def generate(name: str, frames: int, fps: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Built-in motion ``name`` as SMPL rotations.

    Returns:
        poses ``(F, 24, 3)`` float64 axis-angle and transl ``(F, 3)`` float64 pelvis position, with
        the lowest foot joint of the first frame at y = 0.
    """
    if name not in MOTIONS:
        raise LatentmanError(f"unknown built-in motion {name!r}; built-in motions: {', '.join(MOTIONS)}")
    if frames < 2:
        raise LatentmanError(f"built-in motion {name!r}: needs at least 2 frames, got {frames}")
    if frames > 60 * fps:
        raise LatentmanError(
            f"built-in motion {name!r}: {frames} frames at {fps:g} fps is longer than 60 s; "
            "lower frames or motion.frame_step"
        )
    style = Style.from_seed(seed)
    t = np.arange(frames) / float(fps)
    drive = MOTIONS[name].drive(t, style)
    poses = drive.pose.axis_angle()
    poses[:, 0] = matrix_to_axis_angle(drive.root)
    joints, _ = forward_kinematics(poses, np.zeros((frames, 3)))
    transl = np.zeros((frames, 3))
    if drive.locomotion:
        transl[:, [0, 2]] = _plant(joints, drive.stance)
    if drive.shift is not None:
        transl += drive.shift
    transl[:, 1] = -_ground(joints) + drive.lift
    # Motion starts at the origin of the ground plane.
    transl[:, [0, 2]] -= transl[0, [0, 2]]
    return poses, transl
