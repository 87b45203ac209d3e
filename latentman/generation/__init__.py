"""Generation stage: render + correspondences + variant settings → frames.h5, video.mp4, video.gif.

The denoising loop is latentman.generation.pipeline; the stage for one prompt and variant is
latentman.generation.stage; the frames file is latentman.generation.storage.
"""

from latentman.generation.stage import generate_video
from latentman.generation.storage import read_frames, write_frames

__all__ = ["generate_video", "read_frames", "write_frames"]
