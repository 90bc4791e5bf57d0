"""The project's error family: every failure a user can cause names the file, key or machine at fault."""


class ProjectError(Exception):
    """Base class for all errors raised by `common`."""


class ConfigError(ProjectError, ValueError):
    """A YAML config is missing, malformed, or has an unknown, mistyped or out-of-range key."""


class AudioError(ProjectError, ValueError):
    """A WAV file is unreadable, truncated, or has the wrong rate, channel count or format."""


class DataError(ProjectError, ValueError):
    """A data root, machine folder or split is missing or unusable (e.g. no abnormal clips)."""


class ModelError(ProjectError, ValueError):
    """A saved model or its sidecar is missing or does not match the features it is asked to score."""


class MetricError(ProjectError, ValueError):
    """Scores or labels cannot give a metric (one class only, non-finite scores, length mismatch)."""


class DownloadError(ProjectError):
    """A download failed (network, HTTP status, checksum, disk space) or its archive has unexpected contents."""


class LockError(ProjectError):
    """Another run holds the result or model folder this run would write (names the process holding it)."""
