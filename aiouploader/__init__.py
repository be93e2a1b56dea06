"""Streaming, pluggable uploads to S3."""

from .errors import UploadError
from .hookspecs import Download, DownloadStage, Upload, UploadResult, UploadStage, hookimpl

__version__ = "0.1.0"
__all__ = [
    "Download",
    "DownloadStage",
    "Upload",
    "UploadError",
    "UploadResult",
    "UploadStage",
    "__version__",
    "hookimpl",
]
