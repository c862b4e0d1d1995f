"""Errors a user can cause. Each carries one sentence meant for the user, and is caught at the edge
(the CLI prints it on one line and exits non-zero; the app shows it with `gr.Error`)."""

from __future__ import annotations


class LameError(Exception):
    """Base of every user-facing error of lame_tools."""


class InputError(LameError, ValueError):
    """A bad image, text or file given by the user."""


class ModelLoadError(LameError, OSError):
    """A model folder or hub id that cannot be loaded."""
