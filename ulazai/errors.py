"""Typed errors of the UlazAI client.

Two families, because the bot treats them differently:

* :class:`InvalidRequestError` is raised *before anything is sent*, when a member's request breaks one
  of the provider's documented rules (or an image is not an image). Its message is written for the
  member and says what to change; nothing was charged.
* :class:`ProviderError` and its subclasses are the provider's own answers (or the lack of one). They
  carry the HTTP status (``None`` when no answer arrived) and the provider's message, so the bot can
  tell the member plainly and log the details for the operator.

No error ever carries the API key: the client never puts request headers in an error.
"""

from __future__ import annotations


class UlazAIError(Exception):
    """Base class of everything the provider client raises."""


class InvalidRequestError(UlazAIError):
    """A request that breaks a documented rule; ``message`` says what is wrong with the value.

    ``field`` names the request field to change; ``instead`` the kind of request that would take it
    (``"text_to_video"``, ``"image_to_video"`` or ``"either"``), so whoever shows the sentence can name its
    own command for it (the provider client knows nothing of slash commands).
    """

    def __init__(self, message: str, *, field: str | None = None, instead: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.instead = instead


class ProviderError(UlazAIError):
    """The provider answered with an error, or with nothing usable.

    ``status`` is the HTTP status, or ``None`` when the request never got an answer (timeout,
    connection failure). ``message`` is the provider's own message when it sent one.
    ``body`` is the raw body (truncated), for the logs only.
    """

    def __init__(self, message: str, *, status: int | None = None, body: str | None = None) -> None:
        super().__init__(f"{message} (HTTP {status})" if status is not None else message)
        self.message = message
        self.status = status
        self.body = body

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, message={self.message!r})"


class BadRequestError(ProviderError):
    """400: the provider refused the payload (our validation should make this rare)."""


class AuthenticationError(ProviderError):
    """401: the API key is wrong or revoked; the bot is misconfigured."""


class InsufficientCreditsError(ProviderError):
    """402: the operator's UlazAI account cannot pay for this video."""


class RateLimitedError(ProviderError):
    """429 after the bounded retries; ``retry_after`` is the provider's hint in seconds, if any."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = 429,
        body: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, body=body)
        self.retry_after = retry_after


class UpstreamError(ProviderError):
    """5xx: the provider or its upstream failed."""


class ProviderTimeoutError(ProviderError):
    """No answer in time, or the connection failed: whether the provider acted is unknown."""


class MalformedResponseError(ProviderError):
    """The provider answered 2xx with a body that does not match its documentation."""


def error_for_status(status: int, message: str, body: str | None = None) -> ProviderError:
    """The typed error for an HTTP error status."""
    if status == 400:
        return BadRequestError(message, status=status, body=body)
    if status == 401:
        return AuthenticationError(message, status=status, body=body)
    if status == 402:
        return InsufficientCreditsError(message, status=status, body=body)
    if status == 429:
        return RateLimitedError(message, status=status, body=body)
    if status >= 500:
        return UpstreamError(message, status=status, body=body)
    return ProviderError(message, status=status, body=body)
