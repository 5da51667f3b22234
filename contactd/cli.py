"""The `contactd` command: run the daemon, migrate the database, manage users, prompts and recordings."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from .config import Config, ConfigError, load_config

log = logging.getLogger("contactd")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _load(args: argparse.Namespace) -> Config:
    path = args.config
    if path is None and Path("contactd.toml").exists():
        path = "contactd.toml"
    return load_config(path)


async def _run(config: Config) -> None:
    from .app import Daemon

    daemon = Daemon(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await daemon.start()
    except BaseException:
        await daemon.stop()  # release sockets and the database even when start-up fails half-way
        raise
    log.info("contactd is running: panel http://%s:%d/  FastAGI %s:%d  %s", config.web.host, daemon.web_port,
             config.agi.host, daemon.agi_port,
             "PBX: built-in simulator (no [ami] host configured)" if config.uses_simulator
             else f"PBX: Asterisk AMI at {config.ami.host}:{config.ami.port}")
    try:
        await stop.wait()
    finally:
        log.info("contactd is stopping")
        await daemon.stop()


async def _migrate(config: Config) -> None:
    from .store.db import Database

    db = Database(config.db.url)
    try:
        await db.migrate()
        print(f"database migrated: {db.safe_url()}")
    finally:
        await db.close()


async def _create_user(config: Config, args: argparse.Namespace) -> None:
    from .crm.accounts import AccountService
    from .store.db import Database

    db = Database(config.db.url)
    try:
        await db.migrate()
        user = await AccountService(db).create_user(
            args.username, args.password, args.role, extension=args.extension,
            display_name=args.name or args.username,
        )
        print(f"user created: {user.username} ({user.role}"
              + (f", extension {user.extension})" if user.extension else ")"))
    finally:
        await db.close()


def _prompts(config: Config, args: argparse.Namespace) -> None:
    from .ivr import prompts

    if args.prompts_command == "build":
        out = Path(args.out) if args.out else prompts.BUILD_DIR
        built = prompts.build_prompts(prompts.load_manifest(), out, custom_dir=prompts.CUSTOM_DIR)
        for path in built:
            print(path)
        print(f"{len(built)} prompts built into {out}")
    else:
        src = Path(args.src) if args.src else prompts.BUILD_DIR
        installed = prompts.install_prompts(src, Path(args.dir))
        print(f"{len(installed)} files installed under {Path(args.dir)} (contactd/<id>.wav and ko/digits/<n>.wav)")


async def _recordings(config: Config, args: argparse.Namespace) -> int:
    from .bus import Bus
    from .crm.recordings import RecordingService
    from .services import Services
    from .store.db import Database

    db = Database(config.db.url)
    try:
        service = RecordingService(Services(config=config, db=db, bus=Bus()))
        if args.recordings_command == "check":
            report = await service.check()
            print(report.format())
            return 0 if report.ok else 1
        from .store.models import utcnow

        result = await service.apply_retention(utcnow())
        print(result)
        return 0
    finally:
        await db.close()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="contactd", description=__doc__)
    parser.add_argument("--config", "-c", help="TOML configuration file (default: ./contactd.toml if present)")
    parser.add_argument("--verbose", "-v", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the daemon (AMI, FastAGI, panel)")
    run.add_argument("--config", "-c", dest="config_sub")
    mig = sub.add_parser("migrate", help="create or upgrade the database")
    mig.add_argument("--config", "-c", dest="config_sub")

    user = sub.add_parser("create-user", help="create a panel account")
    user.add_argument("--config", "-c", dest="config_sub")
    user.add_argument("--username", required=True)
    user.add_argument("--password", required=True)
    user.add_argument("--role", required=True, choices=["admin", "supervisor", "agent"])
    user.add_argument("--extension")
    user.add_argument("--name")

    prompts_parser = sub.add_parser("prompts", help="build or install the voice prompts")
    prompts_sub = prompts_parser.add_subparsers(dest="prompts_command", required=True)
    build = prompts_sub.add_parser("build", help="render prompts/manifest.toml to 8 kHz WAV files")
    build.add_argument("--out")
    install = prompts_sub.add_parser("install", help="copy built prompts to Asterisk's sounds directory")
    install.add_argument("dir")
    install.add_argument("--src")

    rec = sub.add_parser("recordings", help="recording housekeeping")
    rec_sub = rec.add_subparsers(dest="recordings_command", required=True)
    rec_sub.add_parser("check", help="report orphan files and rows whose file is gone")
    rec_sub.add_parser("retention", help="delete recordings older than [recordings] retention_days")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "config_sub", None):
        args.config = args.config_sub
    _setup_logging(args.verbose)
    try:
        config = _load(args)
    except ConfigError as exc:
        print(f"contactd: configuration error: {exc}", file=sys.stderr)
        return 2

    runners: dict[str, Callable[[], Awaitable[object] | object]] = {
        "run": lambda: _run(config),
        "migrate": lambda: _migrate(config),
        "create-user": lambda: _create_user(config, args),
        "prompts": lambda: _prompts(config, args),
        "recordings": lambda: _recordings(config, args),
    }
    try:
        outcome = runners[args.command]()
        if asyncio.iscoroutine(outcome):
            outcome = asyncio.run(outcome)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a clear one-line error for the operator; the traceback only with -v
        from .crm.accounts import AccountError

        if isinstance(exc, AccountError | ConfigError):
            print(f"contactd: {exc}", file=sys.stderr)
            return 2
        if args.verbose:
            raise
        print(f"contactd: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return outcome if isinstance(outcome, int) else 0


if __name__ == "__main__":
    sys.exit(main())
