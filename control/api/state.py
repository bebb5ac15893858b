"""What every request handler can reach: settings, the database, password hashing and
the playback token signer."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from config.settings import Settings
from control.database import Database
from control.live_observer import LiveObserver
from control.passwords import Passwords
from control.playback_tokens import PlaybackSigner


@dataclass
class AppState:
    settings: Settings
    database: Database
    passwords: Passwords
    # Verified against when a username is unknown, so timing does not reveal accounts.
    dummy_password_hash: str
    playback_signer: PlaybackSigner
    # The media edge in this process, when there is one (see control/live_observer.py).
    live_observer: LiveObserver | None = None


STATE = web.AppKey("academia_state", AppState)
