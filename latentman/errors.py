"""One exception type for every problem a user can fix (bad config, missing weights, bad files).

Workflow scripts catch :class:`LatentmanError` and print its message as a single line, so users
never see a traceback from deep inside a library for a mistake in their own input.
"""


class LatentmanError(Exception):
    """A user-facing error: the message names the key, file or frame and says what to do."""


class ConfigError(LatentmanError):
    """The config or prompt table holds a value that is not allowed."""


class ModelNotFoundError(LatentmanError):
    """A configured model path is missing or incomplete."""


class IntermediateFileError(LatentmanError):
    """A file between stages is missing, truncated, foreign or of an old format."""


class OutputWriteError(LatentmanError):
    """An output could not be written (disk full, quota, file too large); nothing was left behind."""
