"""LatentMan (the paper's method): the Text2Video-Zero backbone with Spatial Latent Alignment and
Pixel-Wise Guidance switched on, a named preset. A variant that sets ``sla.enabled`` or ``pwg.enabled``
itself keeps its own value. Equal resolved settings give the same video as ``t2v_zero`` with both on
(backbone ``t2v_zero``: the sweep reuses one video, and the tables put it on that backbone's rows).
"""

from __future__ import annotations

from latentman.generation.methods.t2v_zero import METHOD as T2V_ZERO
from latentman.generation.methods.t2v_zero import TextToVideoZero

METHOD = TextToVideoZero(
    name="latentman",
    label="LatentMan (Text2Video-Zero + SLA + PWG)",
    colourmap=T2V_ZERO.colourmap,
    blocks=T2V_ZERO.blocks,
    preset={"sla": {"enabled": True}, "pwg": {"enabled": True}},
    backbone=T2V_ZERO.name,
)
