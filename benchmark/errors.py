"""The suite's own exception types: every user-facing failure says what was expected and what to do."""
from __future__ import annotations


class BenchError(Exception):
    """Base class of every error the suite raises on purpose."""


class BitstreamError(BenchError):
    """Bytes given to a decoder are truncated, empty, corrupt or made by another codec."""


class DatasetError(BenchError):
    """A dataset root is missing, incomplete, unpaired or unreadable."""


class RegistryError(BenchError, KeyError):
    """Unknown or duplicate method / dataset / protocol name."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class ResultSchemaError(BenchError):
    """A result or published-curve file does not follow the schema; names the offending field."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


class WeightsError(BenchError):
    """A weights file is missing, not safetensors, tampered with, or belongs to another method."""


class TrainingError(BenchError):
    """Training cannot go on (non-finite loss, inconsistent checkpoint, ...)."""


class ConfigError(BenchError):
    """An option or configuration value is invalid."""


class OutputError(BenchError):
    """An output file or folder cannot be written (read-only, full disk, unsafe name); names the folder."""


class SkippedSample(DatasetError):
    """--skip-bad: this test sample's file is unreadable; the runner leaves it out (counted, never replaced)."""


class IsolationError(BenchError):
    """A sandbox could not be set up, or a method's code reached for what its role may not see."""
