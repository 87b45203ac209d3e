"""Generation stage: render + correspondences + variant settings → frames.h5 (videos: rule encode_video).

The denoising loop is latentman.generation.pipeline; the stage for one prompt and variant is
latentman.generation.stage; the frames file is latentman.generation.storage.
"""

from latentman.generation.storage import read_frames, write_frames

__all__ = ["generate_video", "read_frames", "write_frames"]


def __getattr__(name):
    # generate_video imports torch and diffusers (seconds): only jobs that generate pay for them, not the
    # video encoding, plots and gallery jobs that only read frames.h5.
    if name == "generate_video":
        from latentman.generation.stage import generate_video

        return generate_video
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
