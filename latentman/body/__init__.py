"""Body stage: SMPL-format body models (built-in or the user's SMPL file) and DensePose-style labels."""

from latentman.body.model import BodyModel, load_body

__all__ = ["BodyModel", "load_body"]
