"""What every request handler can reach: settings, the database, password hashing."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from config.settings import Settings
from control.database import Database
from control.passwords import Passwords


@dataclass
class AppState:
    settings: Settings
    database: Database
    passwords: Passwords
    # Verified against when a username is unknown, so timing does not reveal accounts.
    dummy_password_hash: str


STATE = web.AppKey("academia_state", AppState)
