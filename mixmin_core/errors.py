"""One error hierarchy for everything the library raises on bad input or bad config."""


class MixminError(Exception):
    """Base class of every error mixmin raises on purpose."""


class ConfigError(MixminError):
    """A configuration field has an invalid value (the message names the field)."""


class InputError(MixminError, ValueError):
    """User data (arrays, files, tables) is malformed (the message names what and where)."""
