"""The `academia` command: serve, migrate, account scripting, and the edge's nginx.conf."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys
from pathlib import Path

from config.loading import SettingsError, load_settings
from config.settings import ROLES, Settings
from control.accounts.passwords import Passwords
from control.accounts.user_accounts import create_user
from control.db.database import Database
from control.db.migrate import upgrade
from control.errors import ApiError
from control.models import Role


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config)
    server = settings.server
    if getattr(args, "host", None):
        server = dataclasses.replace(server, host=args.host)
    if getattr(args, "port", None):
        server = dataclasses.replace(server, http_port=args.port)
    cluster = settings.cluster
    if getattr(args, "role", None):
        cluster = dataclasses.replace(cluster, role=args.role)
    return dataclasses.replace(settings, server=server, cluster=cluster)


async def _migrate(settings: Settings) -> None:
    settings.server.data_dir.mkdir(parents=True, exist_ok=True)
    database = Database(settings.database_url)
    try:
        await upgrade(database)
    finally:
        await database.close()


async def _create_user(settings: Settings, username: str, password: str, role: Role) -> int:
    database = Database(settings.database_url)
    try:
        async with database.transaction(write=True) as db:
            user = await create_user(
                db, Passwords(settings.auth), username=username, password=password, role=role
            )
            return user.id
    finally:
        await database.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="academia", description=__doc__)
    parser.add_argument("--config", type=Path, help="a TOML file overriding config/default.toml")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--role", choices=ROLES,
                       help="all: everything in one process (the default); control: the API,"
                            " pages, chat and jobs of a cluster; media: ingest and live"
                            " origin of a cluster (see docs/deploy.md)")
    serve.add_argument("--config", type=Path, default=argparse.SUPPRESS)

    migrate = commands.add_parser("migrate", help="apply database migrations")
    migrate.add_argument("--config", type=Path, default=argparse.SUPPRESS)

    user = commands.add_parser("user", help="manage accounts").add_subparsers(
        dest="user_command", required=True
    )
    create = user.add_parser("create", help="create an account")
    create.add_argument("--username", required=True)
    create.add_argument("--password", required=True)
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--config", type=Path, default=argparse.SUPPRESS)

    edge = commands.add_parser(
        "edge-config", help="print the nginx edge's configuration (it holds the node secret)")
    edge.add_argument("--prefix", type=Path, default=Path("/var/lib/academia-edge"),
                      help="the folder nginx keeps its pid, logs and caches in (nginx -p)")
    edge.add_argument("--config", type=Path, default=argparse.SUPPRESS)

    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = _settings(args)
    except SettingsError as exc:
        print(f"academia: {exc}", file=sys.stderr)
        return 2

    if args.command == "serve":
        from mediaserver.process import serve_forever

        try:
            asyncio.run(serve_forever(settings))
        except SettingsError as exc:  # a setting only serving can judge (an address)
            print(f"academia: {exc}", file=sys.stderr)
            return 2
        return 0
    if args.command == "edge-config":
        from mediaserver.edge.nginx_config import edge_config

        try:
            print(edge_config(settings, args.prefix.absolute()), end="")
        except SettingsError as exc:
            print(f"academia: {exc}", file=sys.stderr)
            return 2
        return 0
    if args.command == "migrate":
        asyncio.run(_migrate(settings))
        print("database is up to date")
        return 0
    if len(args.password) < 8:
        print("academia: the password needs at least 8 characters", file=sys.stderr)
        return 2
    try:
        user_id = asyncio.run(
            _create_user(settings, args.username, args.password, Role(args.role))
        )
    except ApiError as exc:
        print(f"academia: {exc.message}", file=sys.stderr)
        return 1
    print(f"created {args.role} {args.username!r} (id {user_id})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
