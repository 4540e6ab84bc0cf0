"""The errors of SExtractor mode: bad files and values, said in one line."""


class SExtractorConfigError(ValueError):
    """A configuration or kernel file that cannot be used, with a message that says what to do."""


class SExtractorInputError(SExtractorConfigError):
    """A .sex/.param/.conv/.nnw file, value or input image that cannot be used; the message names the
    file (and line) and what to do."""
