"""Resumable uploads (tus 1.0.0) on routes with ``resumable = true``: one upload session over several requests."""
