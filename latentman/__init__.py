"""LatentMan: temporally consistent animated-character videos from image diffusion models.

The package holds the library code of every workflow stage (no Snakemake inside):

    motion -> body/render -> correspondence -> generation -> metrics

Each subpackage's docstring names its input file, output file and array layouts
(see the README's "Architecture" and "Outputs" sections).
"""

from latentman.errors import LatentmanError

__all__ = ["LatentmanError", "__version__"]
__version__ = "0.1.0"
