"""Administration from the command line: the service database's users and keys, the registry's
champion alias (promote, rollback) and the configuration (show, export)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from fluxora.cli import EXIT_ERROR, configured


def _service_sessions(overrides: list[str]) -> Any:
    """Sessions on the service database the service itself would use (migrated to the latest schema)."""
    from fluxora import servicedb
    from fluxora.api.settings import ServiceSettings

    cfg, home = configured(overrides)
    engine = servicedb.make_engine(ServiceSettings.from_config(cfg, home).sqlalchemy_url)
    servicedb.migrate(engine)
    return servicedb.sessions(engine)


def users(args: argparse.Namespace) -> int:
    import getpass

    from fluxora.servicedb.accounts import create_user

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("error: passwords differ", file=sys.stderr)
            return EXIT_ERROR
    with _service_sessions(args.overrides)() as session:
        try:
            user = create_user(session, args.username, password, args.role)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_ERROR
        print(f"created user {user.username!r} with role {user.role}")
    return 0


def keys(args: argparse.Namespace) -> int:
    from fluxora.servicedb import accounts

    with _service_sessions(args.overrides)() as session:
        if args.keys_command == "create":
            series = [s.strip() for item in args.series for s in item.split(",") if s.strip()] if args.series else None
            try:
                row, key = accounts.create_key(session, args.name, args.role, series)
            except ValueError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return EXIT_ERROR
            scope = ", ".join(row.series) if row.series else "all series"
            print(f"created key id {row.id} ({row.name}, role {row.role}, {scope}); it is shown only now:")
            print(key)
        elif args.keys_command == "list":
            for r in accounts.list_keys(session):
                state = f"revoked {r.revoked_at:%Y-%m-%d %H:%M}" if r.revoked_at else "active"
                print(f"{r.id:>4}  flx_{r.prefix}_…  {r.role:<6}  {r.name}  {r.series or 'all series'}  {state}")
        else:
            if accounts.revoke_key(session, args.id) is None:
                print(f"error: no active key with id {args.id}", file=sys.stderr)
                return EXIT_ERROR
            print(f"revoked key {args.id}")
    return 0


def promote(args: argparse.Namespace) -> int:
    from fluxora import registry

    cfg, home = configured(args.overrides)
    record = registry.promote(home, cfg.train.registered_model_name, args.version, args.reason)
    print(f"champion: v{record['from'] or '-'} -> v{record['to']} ({record['why']}, by {record['who']})")
    return 0


def rollback(args: argparse.Namespace) -> int:
    from fluxora import registry

    cfg, home = configured(args.overrides)
    record = registry.rollback(home, cfg.train.registered_model_name, args.reason)
    print(f"champion: v{record['from']} -> v{record['to']} ({record['why']}, by {record['who']})")
    return 0


def config(args: argparse.Namespace) -> int:
    from fluxora.config import compose, redact, to_view_yaml, to_yaml
    from fluxora.paths import project_root

    if args.config_command == "show":  # passwords in URLs (infra=production reads them from the environment) as ***
        print(to_view_yaml(redact(compose(args.overrides))), end="")
        return 0
    text = to_yaml(compose([]))
    target = args.output or project_root() / "params.yaml"
    if args.check:
        current = target.read_text() if target.is_file() else ""
        if current != text:
            print(f"{target} is out of date with conf/; run `fluxora config export`", file=sys.stderr)
            return EXIT_ERROR
        print(f"{target} is up to date")
        return 0
    from fluxora.data.io import atomic_write_text

    atomic_write_text(target, text)
    print(f"wrote {target}")
    return 0
