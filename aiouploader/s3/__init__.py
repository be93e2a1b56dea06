"""The S3 side: the object-store interface, its S3 facade, the object writer, S3's errors and part limits.

``store`` is the interface and its values; ``client`` the facade over one
aiobotocore client, the only code that touches that client (``sending``: its
bodies, sent in slices and given up when S3 stops taking them); ``writer`` turns
a stream of bytes into a PutObject or a multipart upload; ``errors`` turns
S3's failures into the client's; ``parts`` holds S3's part limits and the
memory an upload needs. The configuration imports ``parts``, so no module
here imports the configuration but for types.
"""

from .client import S3, MultipartUpload
from .errors import code_and_status, translate
from .parts import MAX_PART_SIZE, MAX_PARTS, MIN_PART_SIZE, part_size_for, upload_memory
from .store import KEPT_HEADERS, ObjectInfo, ObjectStore, Stored
from .writer import ObjectWriter, Paused

__all__ = [
    "KEPT_HEADERS",
    "MAX_PARTS",
    "MAX_PART_SIZE",
    "MIN_PART_SIZE",
    "S3",
    "MultipartUpload",
    "ObjectInfo",
    "ObjectStore",
    "ObjectWriter",
    "Paused",
    "Stored",
    "code_and_status",
    "part_size_for",
    "translate",
    "upload_memory",
]
