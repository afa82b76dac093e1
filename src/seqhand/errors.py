"""The project's error base: the CLI prints these as one actionable line, never a traceback."""


class SeqhandError(Exception):
    """An error a user can act on (bad input file, wrong option, missing optional extra)."""


class MissingExtraError(SeqhandError, ImportError):
    """An optional dependency is not installed; the message says which extra to install."""

    def __init__(self, package: str, extra: str, feature: str):
        super().__init__(f"{feature} needs the '{package}' package: pip install 'seqhand[{extra}]'")
