"""Stick-figure previews of a motion: ``(F, 22, 3)`` joints → frames ``(F, H, W, 3)`` uint8 → GIF / MP4.

Drawn with matplotlib's 3D axes (Agg, no display), the ground plane at y = 0, left limbs blue, right
limbs red; written with imageio through :func:`latentman.io.atomic_path`.
"""

from __future__ import annotations

import numpy as np

from latentman.skeleton import NUM_HML_JOINTS, PARENTS

_LEFT = {1, 4, 7, 10, 13, 16, 18, 20}
_RIGHT = {2, 5, 8, 11, 14, 17, 19, 21}


def render_frames(joints: np.ndarray, size: int = 256, title: str = "") -> np.ndarray:
    """Render every frame of ``joints`` ``(F, 22, 3)`` (Y up) as ``(F, size, size, 3)`` uint8 images."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    joints = np.asarray(joints, dtype=np.float64)
    dpi = 100
    fig = plt.figure(figsize=(size / dpi, size / dpi), dpi=dpi)
    ax = fig.add_subplot(projection="3d")
    # The view follows the pelvis so that travelling motions stay large in the frame.
    half = 1.0
    height = max(1.9, joints[:, :, 1].max() + 0.1)
    frames = []
    try:
        for k in range(len(joints)):
            centre = joints[k, 0, [0, 2]]
            ax.cla()
            # Plot (x, z, y) so that matplotlib's vertical axis is the motion's Y.
            ax.set_xlim(centre[0] - half, centre[0] + half)
            ax.set_ylim(centre[1] - half, centre[1] + half)
            ax.set_zlim(0, height)
            ax.set_box_aspect((1, 1, height / (2 * half)))
            ax.view_init(elev=15, azim=-60)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_zticks([])
            gx, gz = np.meshgrid(
                np.linspace(-half, half, 2) + centre[0], np.linspace(-half, half, 2) + centre[1]
            )
            ax.plot_surface(gx, gz, np.zeros_like(gx), color="0.85", alpha=0.5)
            for child in range(1, NUM_HML_JOINTS):
                parent = PARENTS[child]
                colour = "tab:blue" if child in _LEFT else "tab:red" if child in _RIGHT else "0.2"
                seg = joints[k, [parent, child]]
                ax.plot(seg[:, 0], seg[:, 2], seg[:, 1], color=colour, linewidth=2)
            ax.set_title(f"{title} {k + 1}/{len(joints)}".strip(), fontsize=7)
            fig.canvas.draw()
            frames.append(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
    finally:
        plt.close(fig)
    return np.stack(frames)


def preview_title(prompt_id: str, motion) -> str:
    """The preview's title: the prompt and where its motion came from; for a built-in motion, which one
    and the word that chose it ("p1: wave (verb 'waves')"), so a surprising choice is seen before
    anything is rendered. The word is the motion's stored ``reason``; a motion without one (a file
    written before it was stored) has it worked out again from its text."""
    kind, _, name = motion.source.partition(":")
    if kind != "builtin":
        return f"{prompt_id}: {kind}"
    why = getattr(motion, "reason", "")
    if not why:
        from latentman.errors import LatentmanError
        from latentman.motion.library import explain_motion

        try:
            chosen, why = explain_motion(motion.text)
        except LatentmanError:
            chosen = ""
        if chosen != name:
            return f"{prompt_id}: {name}"
    return f"{prompt_id}: {name} ({why.split(' (also')[0]})"
