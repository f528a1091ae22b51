"""Compile errors: every problem of one compile, collected and reported together.

The classes live in ``airflowdsl.errors`` (one module for every public exception); this
module keeps their DSL-side import path.
"""

from __future__ import annotations

from airflowdsl.errors import CompileError, CompileProblem

__all__ = ["CompileError", "CompileProblem"]
