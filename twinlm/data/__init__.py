"""Data: downloads (sha256, cache), tokenizers, token windows and batches, SMS spam, the
embedded corpus."""
