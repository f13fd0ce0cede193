"""Exceptions that carry their HTTP status and a message for the caller.

Every error a tenant or an operator can see is one of these.  The message
is built from keyword arguments with ``msg_fmt``; it must never contain key
material or plaintext, so callers pass identifiers, never values.
"""

import http


class CryptoCloudException(Exception):
    """Base class: ``code`` is the HTTP status, ``msg_fmt`` the message."""

    code: int = http.HTTPStatus.INTERNAL_SERVER_ERROR
    msg_fmt: str = 'An unknown error occurred.'

    def __init__(self, message: str | None = None, **kwargs):
        self.kwargs = kwargs
        if message is None:
            try:
                message = self.msg_fmt % kwargs
            except (KeyError, TypeError):
                message = self.msg_fmt
        self.message = message
        super().__init__(message)

    @property
    def error_type(self) -> str:
        return type(self).__name__

    def to_dict(self) -> dict:
        return {'code': int(self.code), 'type': self.error_type,
                'message': self.message}


class InvalidInput(CryptoCloudException):
    code = http.HTTPStatus.BAD_REQUEST
    msg_fmt = 'Invalid input: %(reason)s'


class Unauthorized(CryptoCloudException):
    code = http.HTTPStatus.UNAUTHORIZED
    msg_fmt = 'Authentication required: %(reason)s'


class Forbidden(CryptoCloudException):
    code = http.HTTPStatus.FORBIDDEN
    msg_fmt = 'Forbidden: %(reason)s'


class NotFound(CryptoCloudException):
    code = http.HTTPStatus.NOT_FOUND
    msg_fmt = 'Resource could not be found.'


class KeyNotFound(NotFound):
    msg_fmt = 'Key %(key_id)s could not be found.'


class KeyVersionNotFound(NotFound):
    msg_fmt = 'Version %(version)s of key %(key_id)s could not be found.'


class ResourceNotFound(NotFound):
    """A control-plane row (node, vHSM group, service, task...) is gone."""

    msg_fmt = '%(kind)s %(id)s could not be found.'


class Conflict(CryptoCloudException):
    code = http.HTTPStatus.CONFLICT
    msg_fmt = 'Conflict: %(reason)s'


class KeyNameExists(Conflict):
    msg_fmt = 'A key named %(name)s already exists in this project.'


class InvalidState(Conflict):
    msg_fmt = ('%(kind)s %(resource_id)s is %(state)s; %(action)s is not '
               'allowed in that state.')


class TaskNotOwned(Conflict):
    """Another conductor holds the task's lease now."""

    msg_fmt = 'Task %(task_id)s is held by %(holder)s, not %(owner)s.'


class InvalidKeyState(InvalidState):
    msg_fmt = ('Key %(key_id)s is %(state)s; %(action)s is not allowed '
               'in that state.')


class NoValidHost(CryptoCloudException):
    code = http.HTTPStatus.CONFLICT
    msg_fmt = 'No valid host was found: %(reason)s'


class NodeFull(NoValidHost):
    """Another placement took the node's last slot meanwhile."""

    msg_fmt = ('No valid host was found: node %(host)s already runs '
               '%(used)d %(kind)s(s), its capacity.')


class IncompatibleKeyUsage(InvalidInput):
    msg_fmt = ('Key %(key_id)s (%(algorithm)s, purpose %(purpose)s) cannot '
               'be used for %(operation)s.')


class DecryptionFailed(InvalidInput):
    msg_fmt = ('The ciphertext could not be decrypted: it is malformed, '
               'was tampered with, or the key, key version or associated '
               'data differ from encryption.')


class KeyVersionTooOld(InvalidInput):
    msg_fmt = ('Version %(version)s of key %(key_id)s is below the minimum '
               'decryption version %(minimum)s.')


class NotExportable(Forbidden):
    msg_fmt = 'Key %(key_id)s is not exportable.'


class PayloadTooLarge(CryptoCloudException):
    code = http.HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    msg_fmt = 'The request body is larger than %(limit)s bytes.'


class ServiceUnavailable(CryptoCloudException):
    code = http.HTTPStatus.SERVICE_UNAVAILABLE
    msg_fmt = 'Service unavailable: %(reason)s'


class WorkloadStartFailed(ServiceUnavailable):
    """A vHSM or service instance did not come up on a compute node."""

    msg_fmt = 'Workload %(workload_id)s did not start: %(reason)s'


class WorkloadPrepareFailed(WorkloadStartFailed):
    """A standby workload could not be made ready on a compute node."""

    msg_fmt = 'Workload %(workload_id)s could not be prepared: %(reason)s'


class ComputeTooOld(ServiceUnavailable):
    """The compute RPC cap is below what a call needs (rolling upgrade)."""

    msg_fmt = ('Compute node %(host)s cannot %(action)s: that needs compute '
               'RPC %(version)s, and the client is capped below it (a '
               'node of an older release is still running).')


class VHSMUnavailable(ServiceUnavailable):
    msg_fmt = 'No vHSM of the group could be reached: %(reason)s'


class KeystoreUnavailable(ServiceUnavailable):
    """The vHSM group's keystore database does not answer (restarting)."""

    msg_fmt = ('The keystore database cannot be reached (%(reason)s); '
               'retry shortly.')


class CryptoBackendError(CryptoCloudException):
    """The crypto library is missing something required (start-up error)."""

    msg_fmt = 'Cryptographic backend error: %(reason)s'


class ConfigurationError(CryptoCloudException):
    msg_fmt = 'Configuration error: %(reason)s'


class ImageError(CryptoCloudException):
    """Building or pushing a workload image failed."""

    msg_fmt = 'Image error: %(reason)s'


class RegistryError(ImageError):
    """The image registry cannot be reached or refused a request."""

    code = http.HTTPStatus.BAD_GATEWAY
    msg_fmt = 'Image registry %(address)s: %(reason)s'


class WorkloadDriverError(ServiceUnavailable):
    """A compute node's workload driver (its container engine) failed."""

    msg_fmt = 'Workload driver error: %(reason)s'


def from_dict(data: dict) -> CryptoCloudException:
    """Rebuild an exception sent over the internal protocol."""
    by_name = {c.__name__: c for c in _all_subclasses(CryptoCloudException)}
    cls = by_name.get(data.get('type'))
    code = int(data.get('code', 500))
    message = str(data.get('message', ''))
    if cls is None:
        exc = CryptoCloudException(message)
        exc.code = code
        return exc
    exc = cls(message)
    exc.code = code
    return exc


def _all_subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)
