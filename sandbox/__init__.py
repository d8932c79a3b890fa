"""A strict local fake of UlazAI's Kling API (see :mod:`sandbox.server`): the yardstick the provider
client is measured with, and a way for admins to try the bot without spending credits.

Kept apart from the product on purpose: it imports nothing of it (no ``ulazai``, no ``storage``) and is
left out of the bot's Docker image. Run it with ``python -m sandbox`` (``make sandbox``).
"""

from sandbox.server import (
    MAX_UPLOAD_BYTES,
    SAMPLE_PATH,
    Fault,
    RecordedRequest,
    Sandbox,
    SandboxTask,
    main,
)

__all__ = ["MAX_UPLOAD_BYTES", "SAMPLE_PATH", "Fault", "RecordedRequest", "Sandbox", "SandboxTask", "main"]
