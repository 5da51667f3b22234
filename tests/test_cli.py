"""The `contactd` command as an operator runs it: real processes, real database files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from contactd.crm.accounts import AccountService, verify_password
from contactd.store.db import Database
from contactd.store.models import User


def contactd(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "CONTACTD_DB__URL": f"sqlite:///{tmp_path}/cli.sqlite3", **(env or {})}
    return subprocess.run([sys.executable, "-m", "contactd.cli", *args], cwd=tmp_path, env=full_env,
                          capture_output=True, text=True, timeout=60)


def test_migrate_then_create_user(tmp_path: Path) -> None:
    assert contactd(tmp_path, "migrate").returncode == 0
    done = contactd(tmp_path, "create-user", "--username", "kim", "--password", "correct-horse",
                    "--role", "agent", "--extension", "1001")
    assert done.returncode == 0, done.stderr
    assert "kim" in done.stdout and "correct-horse" not in done.stdout + done.stderr
    again = contactd(tmp_path, "create-user", "--username", "kim", "--password", "correct-horse", "--role", "agent")
    assert again.returncode == 2 and "already exists" in again.stderr


def test_bad_extension_and_bad_config_are_one_line_errors(tmp_path: Path) -> None:
    bad_ext = contactd(tmp_path, "create-user", "--username", "lee", "--password", "long-enough",
                       "--role", "agent", "--extension", "12345")
    assert bad_ext.returncode == 2 and "extension" in bad_ext.stderr and "Traceback" not in bad_ext.stderr
    bad_cfg = contactd(tmp_path, "migrate", env={"CONTACTD_AMI__PORT": "five"})
    assert bad_cfg.returncode == 2
    assert "ami.port" in bad_cfg.stderr and "Traceback" not in bad_cfg.stderr


@pytest.mark.parametrize("role", ["admin", "supervisor", "agent"])
async def test_account_service_hashes_with_scrypt(db: Database, role: str) -> None:
    accounts = AccountService(db)
    await accounts.create_user("user1", "pass-word-1", role, extension="1002")
    async with db.session() as session:
        user = await session.scalar(select(User))
    assert user.password_hash.startswith("scrypt$") and "pass-word-1" not in user.password_hash
    assert verify_password("pass-word-1", user.password_hash)
    assert await accounts.authenticate("user1", "pass-word-1") is not None
    assert await accounts.authenticate("user1", "wrong") is None
    assert await accounts.authenticate("nobody", "pass-word-1") is None


def test_run_starts_on_embedded_defaults_and_stops_cleanly(tmp_path: Path) -> None:
    """What `make run` does for a newcomer: no config file, the simulator, a demo call every few seconds."""
    import json
    import signal
    import socket
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "CONTACTD_DB__URL": f"sqlite:///{tmp_path}/run.sqlite3", "CONTACTD_WEB__PORT": str(port),
           "CONTACTD_AGI__PORT": "0", "CONTACTD_SIMULATOR__CALL_INTERVAL": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "contactd.cli", "run"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        health = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and health is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                    health = json.load(response)
            except OSError:
                time.sleep(0.2)
        assert health is not None and health["ami"]["connected"], "contactd run did not come up"
        time.sleep(3)  # long enough for demo calls to be placed
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert "simulator" in output and "Traceback" not in output
    assert "secret" not in output.lower().replace("secret)", "")
