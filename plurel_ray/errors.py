"""Typed errors that users can cause, each with a message that says what to fix."""


class PlurelError(Exception):
    """Base class of every error a user can cause (bad config, schema, file, arguments)."""


class ConfigError(PlurelError, ValueError):
    """A `Config` field holds a value it cannot hold; the message names the field."""


class SchemaError(PlurelError, ValueError):
    """An SQL schema cannot drive generation; the message names the table and column."""


class DatasetError(PlurelError, OSError):
    """A dataset folder is missing, incomplete or not ours; the message names the path."""


class StoreError(PlurelError, OSError):
    """A node store on disk is missing, truncated, corrupted or of another format version;
    the message names the file and says how to rebuild it."""


class SamplerError(PlurelError, ValueError):
    """A sampler was asked for something its stores cannot give (unknown table or column,
    empty task, out-of-range batch); the message names it."""


class EmptySourceError(SamplerError):
    """A sampler source has no item in its split (no row of its table holds the target
    column there): nothing to sample. Callers that skip such tasks catch this type; the
    message names the source, its table and store."""


class ModelError(PlurelError, OSError):
    """A text encoder model cannot be loaded (package not installed, folder incomplete,
    architecture or pooling we do not implement); the message names the file and the fix."""


class EncoderMismatchError(PlurelError, ValueError):
    """A checkpoint would train or be evaluated on stores whose text another encoder
    embedded than the one it was trained with; the message names both encoders and the
    fix (re-embed, or --allow-encoder-mismatch)."""


class BatchError(PlurelError, ValueError):
    """A context batch lacks a field, has a wrong shape or an id out of range; the message
    names the field and what the sampler must send instead."""


class CheckpointError(PlurelError, ValueError):
    """A checkpoint cannot be read into a Relational Transformer (missing file, missing or
    unexpected parameter names, wrong shapes); the message lists them and says what to pass."""


class HubError(PlurelError, OSError):
    """The Hugging Face Hub refused or failed a push or download (unknown repo or revision,
    rejected token, Hub unreachable); the message names the repo and says what to fix and
    never holds the token. `transient` is True when trying again may succeed (HTTP 5xx or
    429, connection errors)."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


def is_native_panic(err: BaseException) -> bool:
    """Whether `err` is a Rust panic surfacing from `plurel_ray._native` (pyo3's
    `PanicException`, a `BaseException` that `except Exception` does not catch).

    Args:
        err: the caught exception.
    """
    kind = type(err)
    return kind.__name__ == "PanicException" and kind.__module__ == "pyo3_runtime"
