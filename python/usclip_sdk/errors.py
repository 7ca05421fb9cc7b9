"""Typed errors of the SDK. Every failure a user can meet is one of these (or a plain
ValueError/TypeError from argument validation), with a message that says what was expected,
what was found and, where it helps, what is available."""
from __future__ import annotations

__all__ = [
    "UsclipError",
    "InvalidInputError",
    "BundleError",
    "BundleIntegrityError",
    "BundleSignatureError",
    "BundleVersionError",
    "BackendUnavailableError",
    "DeviceError",
    "EngineError",
]


class UsclipError(Exception):
    """Base class of every usclip error."""


class InvalidInputError(UsclipError, ValueError):
    """A frame, file or argument the SDK cannot use (also a ValueError)."""


class BundleError(UsclipError):
    """A model bundle that cannot be used: missing files, bad manifest."""


class BundleIntegrityError(BundleError):
    """A bundle file whose size or sha256 does not match the manifest."""


class BundleSignatureError(BundleIntegrityError):
    """A bundle refused by its signature check (trusted keys configured). ``reason`` says which:
    "unsigned", "malformed", "untrusted-key", "other-bundle" or "bad-signature"."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class BundleVersionError(BundleError):
    """A bundle whose format version this SDK does not read."""


class BackendUnavailableError(UsclipError):
    """The requested inference backend (or its runtime library) is not available here."""


class DeviceError(UsclipError):
    """A device (GPU) problem: no driver, no device, out of memory, launch failure."""


class EngineError(UsclipError):
    """A TensorRT engine that is stale, foreign or failed to build/load."""
