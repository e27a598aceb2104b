"""Bearer-token authentication of the online services.

The token comes from the settings (`LAKEHOUSE_API_TOKEN`); outside the local profile a
service refuses to start without one. It is compared in constant time
(`hmac.compare_digest`) and never logged or echoed.
"""

from __future__ import annotations

import hmac
import logging

from lakehouse.settings import Profile, Settings

log = logging.getLogger(__name__)


class MissingToken(RuntimeError):
    """A service outside the local profile was started without `LAKEHOUSE_API_TOKEN`."""


class BearerToken:
    """Checks `Authorization` header values against the configured token."""

    def __init__(self, settings: Settings) -> None:
        secret = settings.lakehouse_api_token
        if secret is None or not secret.get_secret_value():
            if settings.lakehouse_profile is not Profile.LOCAL:
                raise MissingToken(
                    "LAKEHOUSE_API_TOKEN is not set: the online services refuse to start "
                    f"without one in the {settings.lakehouse_profile.value} profile"
                )
            log.warning("LAKEHOUSE_API_TOKEN is not set: the API is open (local profile only)")
            self._expected: bytes | None = None
        else:
            self._expected = f"Bearer {secret.get_secret_value()}".encode()

    @property
    def required(self) -> bool:
        """Whether requests must carry the token."""
        return self._expected is not None

    def accepts(self, header: bytes | None) -> bool:
        """Whether an `Authorization` header value carries the token."""
        if self._expected is None:
            return True
        return header is not None and hmac.compare_digest(header, self._expected)
