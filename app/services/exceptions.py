"""Domain exceptions raised by services; the edges map them to HTTP codes and messages."""


class DomainError(Exception):
    """Base class: a business rule refused the operation. `code` is a stable key."""

    code = "domain_error"
    http_status = 422

    def __init__(self, message, code=None, **details):
        super().__init__(message)
        self.message = str(message)
        if code:
            self.code = code
        self.details = details


class NotFound(DomainError):
    code = "not_found"
    http_status = 404


class Forbidden(DomainError):
    code = "forbidden"
    http_status = 403


class Conflict(DomainError):
    code = "conflict"
    http_status = 409


class ValidationFailed(DomainError):
    code = "validation_failed"
    http_status = 422
