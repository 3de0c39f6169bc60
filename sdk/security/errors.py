"""What a request that may not be served raises, for the HTTP server to answer: 401
(`AuthenticationRequired`) or 403 (`Forbidden`). Here, not in `corral.net.http`, so that
the engines and the credentials can raise them without importing the server."""


class AuthenticationRequired(Exception):
    """A request that must prove a principal and did not; the message says why."""


class Forbidden(Exception):
    """What a request's principal may not do; the message says what."""
