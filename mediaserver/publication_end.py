"""What happens when a publisher is gone, whichever protocol it came by (RTMP, WHIP)."""

from __future__ import annotations

import logging
import time

from mediaserver.control_port import ControlPort
from mediaserver.live_registry import LiveRegistry, Publication

__all__ = ["end_publication"]

log = logging.getLogger(__name__)


async def end_publication(
    control: ControlPort, registry: LiveRegistry, publication: Publication, *, protocol: str
) -> None:
    """Tell the control plane the stream ended, then free the course's slot for a reconnect.

    Whether the class ends now or after the reconnect grace period is the control port's
    decision (see mediaserver/live_streams.py). A failure to record the end leaves the
    session live in the database; ending it from the web app fixes that.
    """
    try:
        await control.stream_ended(publication.course_id)
    except Exception:
        log.exception("%s: could not record the end of course %d's stream", protocol,
                      publication.course_id)
    finally:
        registry.release(publication)
    log.info("%s: course %d stream ended (session %s, %.1f s)", protocol,
             publication.course_id, publication.session_id,
             time.monotonic() - publication.since)
