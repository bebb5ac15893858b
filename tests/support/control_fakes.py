"""What test doubles of the ControlPort share: the playback questions that tests of
ingest alone never ask."""

from __future__ import annotations

from mediaserver.control_port import PlaybackDecision, PlaybackRefused


class IngestOnlyControl:
    """Refuses playback and ignores recordings; subclasses answer the publish questions."""

    async def authorize_playback(self, session_id: int, token: str) -> PlaybackDecision:
        return PlaybackRefused("not_available")  # nothing plays in these tests

    async def recording_ready(self, session_id: int) -> None:
        return None
