"""Tuner over Ray Tune (the training layer writes this module)."""

from __future__ import annotations
