"""What every request handler can reach: settings, the database, password hashing, the
sign-in rate limits and the playback token signer."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from config.settings import Settings
from control.accounts.passwords import Passwords
from control.accounts.sign_in_limits import SignInLimits
from control.db.database import Database
from control.http.client_address import Network
from control.resources.resource_store import ResourceStore
from control.resources.upload_slots import UploadSlots
from control.sessions.live_observer import LiveObserver
from control.storage_policy.media_store import MediaStore
from control.streaming.playback_tokens import PlaybackSigner


@dataclass
class AppState:
    settings: Settings
    database: Database
    passwords: Passwords
    # Verified against when a username is unknown, so timing does not reveal accounts.
    dummy_password_hash: str
    playback_signer: PlaybackSigner
    sign_in_limits: SignInLimits
    # Reverse proxies whose X-Forwarded-For is believed (control/http/client_address.py).
    trusted_proxies: tuple[Network, ...]
    # The media edge in this process, when there is one (see control/sessions/live_observer.py).
    live_observer: LiveObserver | None = None
    # The media storage, measured and pruned through this port (None: no storage here).
    media_store: MediaStore | None = None
    # Course resources' files, through this port (None: no storage here).
    resource_store: ResourceStore | None = None
    # Each person's course-file uploads in progress (each may hold a spool file).
    upload_slots: UploadSlots = field(default_factory=UploadSlots)


STATE = web.AppKey("academia_state", AppState)
