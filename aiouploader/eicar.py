"""The EICAR anti-virus test file: harmless, yet reported by every scanner."""

# Joined at import time so that this source file does not itself trip virus scanners.
EICAR: bytes = b"".join((b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-", b"ANTIVIRUS-TEST-FILE!$H+H*"))
