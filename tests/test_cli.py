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
