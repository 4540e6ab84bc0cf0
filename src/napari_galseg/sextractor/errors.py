"""The one error type of SExtractor mode: bad files and values, said in one line."""


class SExtractorInputError(ValueError):
    """A .sex/.param/.conv file, value or input image that cannot be used; the message names the
    file (and line) and what to do."""
