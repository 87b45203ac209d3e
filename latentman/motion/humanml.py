"""HumanML3D's 263-d motion features → 22 joint positions (``recover_from_ric``).

Feature layout per frame (22 joints): ``[0]`` root angular velocity about Y, ``[1:3]`` root linear
velocity (x, z) in the root's facing frame, ``[3]`` root height, ``[4:67]`` the 21 non-root joint
positions relative to the root in its facing frame (RIC), then joint rotations (6-d, 126),
velocities (66) and foot contacts (4), which recovery does not need. Output: metres, Y up.
"""

from __future__ import annotations

import torch

FEATURE_DIM = 263


def _qrot(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Rotate vectors ``(..., 3)`` by unit quaternions ``(..., 4)`` (w, x, y, z)."""
    qvec = q[..., 1:]
    uv = torch.cross(qvec, v, dim=-1)
    uuv = torch.cross(qvec, uv, dim=-1)
    return v + 2 * (q[..., :1] * uv + uuv)


def _qinv(q: torch.Tensor) -> torch.Tensor:
    return q * torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=q.dtype, device=q.device)


def recover_root(data: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Root rotations ``(..., T, 4)`` (quaternions) and positions ``(..., T, 3)`` from ``(..., T, 263)``."""
    rot_vel = data[..., 0]
    angle = torch.zeros_like(rot_vel)
    # Velocities of frame t move the root to frame t + 1.
    angle[..., 1:] = rot_vel[..., :-1]
    angle = torch.cumsum(angle, dim=-1)
    quat = torch.zeros(*data.shape[:-1], 4, dtype=data.dtype, device=data.device)
    quat[..., 0] = torch.cos(angle)
    quat[..., 2] = torch.sin(angle)
    pos = torch.zeros(*data.shape[:-1], 3, dtype=data.dtype, device=data.device)
    pos[..., 1:, 0] = data[..., :-1, 1]
    pos[..., 1:, 2] = data[..., :-1, 2]
    pos = torch.cumsum(_qrot(_qinv(quat), pos), dim=-2)
    pos[..., 1] = data[..., 3]
    return quat, pos


def recover_from_ric(data: torch.Tensor, joints_num: int = 22) -> torch.Tensor:
    """Joint positions ``(..., T, joints_num, 3)`` from de-normalised HumanML3D features ``(..., T, 263)``."""
    quat, root = recover_root(data)
    local = data[..., 4 : (joints_num - 1) * 3 + 4].reshape(*data.shape[:-1], joints_num - 1, 3)
    inv = _qinv(quat)[..., None, :].expand(*local.shape[:-1], 4)
    world = _qrot(inv, local)
    world[..., 0] = world[..., 0] + root[..., None, 0]
    world[..., 2] = world[..., 2] + root[..., None, 2]
    return torch.cat([root[..., None, :], world], dim=-2)
