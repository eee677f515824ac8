"""One exception hierarchy. Every message names the field or input, the problem and the fix."""

from __future__ import annotations


class AgentBomError(Exception):
    """Base class of every error agent-bom raises on purpose."""

    exit_code = 2


class ConfigError(AgentBomError):
    """A setting, option, key or path is unusable."""


class InvalidEvent(AgentBomError):
    """An event does not satisfy the envelope contract."""


class IntegrityError(AgentBomError):
    """Evidence failed verification: something was altered, removed or reordered."""

    exit_code = 1


class DeliveryError(AgentBomError):
    """An event could not be delivered to a destination."""


class LimitExceeded(AgentBomError):
    """Input went past a size, depth or count limit."""


class SignatureInvalid(IntegrityError):
    """A signature (webhook, checkpoint) does not verify."""


class Replayed(SignatureInvalid):
    """A correctly signed webhook whose id was already accepted: acknowledge it as a
    duplicate (2xx) rather than rejecting it, since the sender may have lost the response."""
