"""The HTTP server's log, where a client's malformed request is the client's fault, not ours.

aiohttp logs a request it cannot parse (a line over its limit, a NUL in a header, a broken
chunked body) at ERROR with a full traceback. Anyone on the internet can send those, as
fast as they like: they would bury the server's real errors and fill the disk. Such a
record is kept, as one INFO line naming what was wrong, without the traceback.
"""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError

__all__ = ["quiet_client_protocol_errors"]

_SERVER_LOGGER = "aiohttp.server"


class _ClientProtocolErrorsAtInfo(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and record.levelno > logging.INFO:
            record.levelno, record.levelname = logging.INFO, "INFO"
            # One line: aiohttp's message may quote the offending bytes over several.
            record.msg = f"{record.getMessage()}: {exc.code} {exc.message}".replace("\n", " ")
            record.args = None
            record.exc_info = record.exc_text = None
        return True


def quiet_client_protocol_errors() -> None:
    """Install the filter on aiohttp's server logger (once per process)."""
    logger = logging.getLogger(_SERVER_LOGGER)
    if not any(isinstance(f, _ClientProtocolErrorsAtInfo) for f in logger.filters):
        logger.addFilter(_ClientProtocolErrorsAtInfo())
