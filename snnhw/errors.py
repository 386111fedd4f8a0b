"""User-facing errors.

Every failure a user can cause (bad file, unsupported layer, network too big, wrong input shape)
raises :class:`SnnhwError`. The CLI prints its message as one line and exits with code 2; it never
shows a traceback for these.
"""


class SnnhwError(Exception):
    """A problem with the user's input: the message names the problem and the fix."""


class UnsupportedError(SnnhwError):
    """The model uses a layer, parameter or feature that snnhw (or the chosen target) cannot run."""


class InvalidFileError(SnnhwError):
    """A model, IR or input file is corrupt, truncated or of the wrong kind."""
