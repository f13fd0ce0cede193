"""Checks on the arguments of internal-protocol operations.

The service instance validates tenant input against JSON schemas first;
these checks stand behind that so that a vHSM never answers a malformed
request with an internal error, whoever sent it.
"""

from cryptocloud.common import exception

_MISSING = object()


def get(args: dict, name: str, kind, *, required: bool = False,
        default=None, max_len: int | None = None):
    """Return ``args[name]`` checked against ``kind`` (a type or tuple)."""
    value = args.get(name, _MISSING)
    if value is _MISSING or value is None:
        if required:
            raise exception.InvalidInput(reason='%s is required' % name)
        return default
    # bool is an int subclass; never accept it where a number is meant.
    if not isinstance(value, kind) or (
            isinstance(value, bool) and kind in (int, (int,))):
        raise exception.InvalidInput(
            reason='%s has the wrong type (%s)' % (name, type(value).__name__))
    if max_len is not None and len(value) > max_len:
        raise exception.InvalidInput(
            reason='%s is longer than %d' % (name, max_len))
    return value


def get_int(args: dict, name: str, *, required: bool = False, default=None,
            minimum: int | None = None, maximum: int | None = None):
    """Return an integer argument within ``[minimum, maximum]``."""
    value = get(args, name, int, required=required, default=default)
    if value is None:
        return None
    if (minimum is not None and value < minimum) or (
            maximum is not None and value > maximum):
        raise exception.InvalidInput(
            reason='%s must be between %s and %s' % (name, minimum, maximum))
    return value


def get_choice(args: dict, name: str, choices, *, default=None):
    """Return a string argument that must be one of ``choices``."""
    value = get(args, name, str, default=default)
    if value is not None and value not in choices:
        raise exception.InvalidInput(
            reason='%s must be one of %s' % (name, ', '.join(sorted(choices))))
    return value
