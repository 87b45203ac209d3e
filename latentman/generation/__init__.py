"""Generation stage: render + correspondences + variant settings → frames.h5 (videos: rule encode_video).

The methods (backbones and presets) are latentman.generation.methods; the denoising loop is
latentman.generation.pipeline; the stage for one prompt and variant is latentman.generation.stage
(``run(GenerationInputs, GenerationSettings) -> FramesRecord``); the frames file is
latentman.generation.storage.
"""

from latentman.generation.settings import GenerationSettings
from latentman.generation.storage import FramesRecord, read_frames, write_frames

__all__ = ["FramesRecord", "GenerationInputs", "GenerationSettings", "read_frames", "run", "write_frames"]


def __getattr__(name):
    # the stage imports torch and diffusers (seconds): only jobs that generate pay for them, not the video
    # encoding, plots and gallery jobs that only read frames.h5.
    if name in ("run", "GenerationInputs"):
        from latentman.generation import stage

        return getattr(stage, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
