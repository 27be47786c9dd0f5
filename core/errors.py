"""Every typed error of ManyAngles, in one place.

Each error a client can cause carries a stable ``code`` (JSON error bodies, CLI messages), the
HTTP status the service answers with, and the CLI's exit code. Messages name the problem and
never contain image bytes, embeddings or keys.

May import: nothing of core.
"""

from __future__ import annotations


class ManyAnglesError(Exception):
    """Base class of every error ManyAngles raises on purpose."""

    code = "error"
    http_status = 500
    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __reduce__(self) -> tuple[object, ...]:
        # Errors cross process boundaries (worker processes, Ray replicas): keep the message
        # and any extra state when pickled.
        return (_rebuild, (type(self), self.message, self.__dict__))


def _rebuild(cls: type[ManyAnglesError], message: str, state: dict[str, object]) -> ManyAnglesError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


# --- bad input (exit 3) ----------------------------------------------------------------------
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
    """Several faces and no choice made: ``faces`` (bbox, score; largest first, the order a face
    index counts in) let a client ask which one is meant without another call."""

    code = "multiple_faces"

    def __init__(self, message: str, faces: list[dict[str, object]] | None = None) -> None:
        super().__init__(message)
        self.faces = faces or []


class InvalidName(InvalidInput):
    code = "invalid_name"


class InvalidDataset(InvalidInput):
    code = "invalid_dataset"


class InvalidRequest(InvalidInput):
    """A malformed request: a missing field, a value of the wrong type or out of range."""

    code = "invalid_request"


# --- configuration (exit 2 / 7) --------------------------------------------------------------
class InvalidSetting(ManyAnglesError):
    """A setting has an unknown name or a bad value; raised at start, before any work."""

    code = "invalid_setting"
    http_status = 500
    exit_code = 2


class ModelUnavailable(ManyAnglesError):
    """A configured model cannot be loaded (weights absent or broken)."""

    code = "model_unavailable"
    http_status = 503
    exit_code = 7


class GenerationFailed(ManyAnglesError):
    """The view generator could not produce views (e.g. out of GPU memory at the smallest chunk)."""

    code = "generation_failed"
    http_status = 503
    exit_code = 7


# --- state (exit 4 / 5 / 6) ------------------------------------------------------------------
class PersonNotFound(ManyAnglesError):
    code = "person_not_found"
    http_status = 404
    exit_code = 4


class PersonExists(ManyAnglesError):
    code = "person_exists"
    http_status = 409
    exit_code = 5


class PhotoExists(ManyAnglesError):
    """The photo added to a person is already one of theirs (same bytes)."""

    code = "photo_exists"
    http_status = 409
    exit_code = 5


class LastPhoto(ManyAnglesError):
    """Removing this image would leave the person without an uploaded photo."""

    code = "last_photo"
    http_status = 409
    exit_code = 6


class MatchesAnotherPerson(ManyAnglesError):
    """A photo added to a person is identified as someone else (``force`` adds it anyway):
    ``match`` (person_id, name, score, threshold) says who."""

    code = "matches_another_person"
    http_status = 409
    exit_code = 6

    def __init__(self, message: str, match: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.match = match


class NotThisPerson(ManyAnglesError):
    """A photo added to a person does not verify as them: scored against the person as verify
    scores a claim, under the one-to-one threshold (``force`` adds it anyway); ``match`` holds
    that person, the score and the threshold."""

    code = "not_this_person"
    http_status = 409
    exit_code = 6

    def __init__(self, message: str, match: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.match = match


class AlreadyEnrolled(MatchesAnotherPerson):
    """A new person's photo is identified as a person already enrolled (under another name:
    a duplicate enrollment, or a lookalike): ``match`` says who; ``force`` enrolls anyway."""

    code = "already_enrolled"


class TooLargeForRequest(ManyAnglesError):
    """Work that fits a batch command, not one HTTP request, on a gallery of this size."""

    code = "too_large_for_request"
    http_status = 409
    exit_code = 6


class NotCalibrated(ManyAnglesError):
    code = "not_calibrated"
    http_status = 409
    exit_code = 6


class ModelNotFound(ManyAnglesError):
    code = "model_not_found"
    http_status = 404
    exit_code = 4


class ModelNotReady(ManyAnglesError):
    """A model switch is refused: images still lack its vectors, or persons would be lost."""

    code = "model_not_ready"
    http_status = 409
    exit_code = 6


class KeyNotFound(ManyAnglesError):
    code = "key_not_found"
    http_status = 404
    exit_code = 4


class KeyRevoked(ManyAnglesError):
    """The API key was revoked already (revocation is for good: make a new key)."""

    code = "key_revoked"
    http_status = 409
    exit_code = 6


class ChangesUnavailable(ManyAnglesError):
    """A change token from another copy of the gallery (restored, replaced) or from its future:
    the changes since it cannot be told; the client reads the tables again."""

    code = "changes_unavailable"
    http_status = 409
    exit_code = 6


class ModelMismatch(ManyAnglesError):
    """Vectors of one model met a gallery of another (e.g. a pruned or retired model)."""

    code = "model_mismatch"
    http_status = 409
    exit_code = 6


class StoreSchemaError(ManyAnglesError):
    code = "store_schema"
    exit_code = 8


class StoreCorrupt(ManyAnglesError):
    """SQLite's integrity_check failed: the service refuses to start on this store."""

    code = "store_corrupt"
    http_status = 503
    exit_code = 8


class StoreUnavailable(ManyAnglesError):
    """The database server (``store_url``) cannot be reached: nothing was read or changed."""

    code = "store_unavailable"
    http_status = 503
    exit_code = 8


# --- service (HTTP only) ---------------------------------------------------------------------
class ServiceBusy(ManyAnglesError):
    """A deployment's queue is full: the client should retry after ``retry_after_s``."""

    code = "busy"
    http_status = 503
    exit_code = 9

    def __init__(self, message: str, retry_after_s: int = 5) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ReplicaLost(ServiceBusy):
    """A replica died (or restarted) while it held this request; nothing was stored and the
    request may be retried as is once Serve has replaced the replica."""

    code = "replica_lost"


class AnswerLost(ServiceBusy):
    """The API replica that held this request was lost before it answered (its process or its
    host died): Serve's proxy answers for it. Unlike ``replica_lost``, the outcome is unknown: a
    read may be retried as is; an enrollment, added photo or deletion may have completed."""

    code = "answer_lost"

    def __init__(self, message: str, retry_after_s: int = 2) -> None:
        super().__init__(message, retry_after_s)


class ModelSwitching(ServiceBusy):
    """The active model changed while this request ran (its vectors are of the old one): nothing
    was stored or answered; a retry runs on the new model."""

    code = "model_switching"

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message, retry_after_s)

    @classmethod
    def unless(cls, active: str | None, used: str) -> None:
        """Raise when the gallery's active model, ``active`` (None: none yet), is not ``used``."""
        if active is not None and active != used:
            raise cls(f"the active model is now {active} (this request used {used}); retry")


class Unauthorized(ManyAnglesError):
    code = "unauthorized"
    http_status = 401
    exit_code = 10


class Forbidden(ManyAnglesError):
    """A valid key whose scope does not allow the call."""

    code = "forbidden"
    http_status = 403
    exit_code = 10


ALL_ERRORS: tuple[type[ManyAnglesError], ...] = (
    InvalidInput,
    InvalidImage,
    EmptyImage,
    NotAnImage,
    UnsupportedImageFormat,
    TruncatedImage,
    ImageTooLarge,
    NoFaceFound,
    MultipleFaces,
    InvalidName,
    InvalidDataset,
    InvalidRequest,
    InvalidSetting,
    ModelUnavailable,
    GenerationFailed,
    PersonNotFound,
    PersonExists,
    NotCalibrated,
    ModelNotFound,
    ModelNotReady,
    ModelMismatch,
    StoreSchemaError,
    StoreCorrupt,
    ServiceBusy,
    ReplicaLost,
    AnswerLost,
    ModelSwitching,
    Unauthorized,
    Forbidden,
)
