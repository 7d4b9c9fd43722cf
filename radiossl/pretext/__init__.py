"""Pretext (self-supervised) methods. Each method's whole logic lives in one file here."""
