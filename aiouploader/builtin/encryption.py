"""``encryption``: age v1 (X25519) encryption of what S3 stores; decryption on GET."""
