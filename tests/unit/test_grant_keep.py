"""How long the edge may keep a playback grant (control/node_api/edge_check.keep_seconds):
within the grant, spread by token so students who joined together are not all asked
again in the same second."""

from __future__ import annotations

import secrets
from datetime import timedelta

from control.models.base import utcnow
from control.node_api.edge_check import KEEP_SPREAD_SECONDS, keep_seconds
from control.streaming.edge_questions import PLAYBACK_GRANT_SECONDS

WINDOW = round(PLAYBACK_GRANT_SECONDS)


def test_a_class_of_grants_is_kept_for_spread_lengths_within_the_window() -> None:
    until = utcnow() + timedelta(seconds=PLAYBACK_GRANT_SECONDS)
    kept = {keep_seconds(secrets.token_urlsafe(57), until) for _ in range(200)}
    assert kept == set(range(WINDOW - KEEP_SPREAD_SECONDS, WINDOW + 1))


def test_a_token_about_to_expire_is_kept_no_longer_than_it_lives() -> None:
    token = secrets.token_urlsafe(57)
    assert keep_seconds(token, utcnow() + timedelta(seconds=1.2)) == 1
    assert keep_seconds(token, utcnow() - timedelta(seconds=3)) == 1  # at least a second
    assert keep_seconds(token, utcnow() + timedelta(seconds=2)) <= 2
    # The same token always gets the same spread.
    until = utcnow() + timedelta(seconds=PLAYBACK_GRANT_SECONDS)
    assert len({keep_seconds(token, until) for _ in range(10)}) == 1
