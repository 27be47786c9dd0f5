"""Typed errors of the core library.

Every error a client can cause carries a stable ``code`` (used in JSON error bodies and CLI
messages) and the HTTP status the service answers with. Messages name the problem and never
contain image bytes or embeddings.
"""

from __future__ import annotations


class ManyAnglesError(Exception):
    """Base class of every error the core library raises on purpose."""

    code = "error"
    http_status = 500
    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --- bad input -------------------------------------------------------------------------------
class InvalidInput(ManyAnglesError):
    """The caller sent something we refuse; nothing was changed."""

    code = "invalid_input"
    http_status = 422
    exit_code = 3


class InvalidImage(InvalidInput):
    code = "invalid_image"


class EmptyImage(InvalidImage):
    code = "empty_image"


class NotAnImage(InvalidImage):
    code = "not_an_image"


class UnsupportedImageFormat(InvalidImage):
    code = "unsupported_image_format"


class TruncatedImage(InvalidImage):
    code = "truncated_image"


class ImageTooLarge(InvalidImage):
    """Too many bytes (HTTP 413) or too many pixels (a decompression bomb)."""

    code = "image_too_large"
    http_status = 413


class NoFaceFound(InvalidInput):
    code = "no_face"


class MultipleFaces(InvalidInput):
    code = "multiple_faces"


class InvalidName(InvalidInput):
    code = "invalid_name"


class InvalidDataset(InvalidInput):
    code = "invalid_dataset"


# --- state -----------------------------------------------------------------------------------
class PersonExists(ManyAnglesError):
    code = "person_exists"
    http_status = 409
    exit_code = 5


class PersonNotFound(ManyAnglesError):
    code = "person_not_found"
    http_status = 404
    exit_code = 4


class NotCalibrated(ManyAnglesError):
    code = "not_calibrated"
    http_status = 409
    exit_code = 6


# --- configuration ---------------------------------------------------------------------------
class ModelUnavailable(ManyAnglesError):
    """A configured model cannot be loaded (weights absent or broken)."""

    code = "model_unavailable"
    http_status = 503
    exit_code = 7


class StoreSchemaError(ManyAnglesError):
    code = "store_schema"
    exit_code = 8
