"""The signing secret never lands in the database, a dump, the output or an error message."""

from __future__ import annotations

import base64
import glob
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from outbox_support import TENANT, Receiver, Response, cloudevents

from agent_bom.signing import new_secret


def pg_dump(url: str) -> bytes:
    exe = shutil.which("pg_dump") or sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_dump"))[-1]
    return subprocess.run([exe, "--dbname", url], check=True, capture_output=True).stdout


def test_signing_secret_never_appears_in_database_dump_output_or_errors(
    cli: Callable[..., Any], store_url: str, receiver: Receiver, tmp_path: Path
) -> None:
    good, broken = new_secret(), "whsec_" + base64.b64encode(b"too-short-secret").decode()
    good_file, broken_file = tmp_path / "good.secret", tmp_path / "broken.secret"
    good_file.write_text(good + "\n")
    broken_file.write_text(broken + "\n")
    db = ["--database", store_url]
    outputs: list[bytes] = []

    def run(*args: object, stdin: bytes | None = None) -> Any:
        r = cli(*args, *db, stdin=stdin)
        outputs.extend([r.stdout, r.stderr.encode()])
        return r

    for path, ref in (("/good", good_file), ("/broken", broken_file)):
        r = run(
            "destinations", "add", "--tenant", TENANT, "--url", receiver.url + path,
            "--secret-ref", f"file:{ref}", "--allow-http", "--allow-private-network",
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
    lines = cloudevents(6)
    ids = [orjson.loads(line)["id"] for line in lines]
    receiver.respond(ids[0], Response(500, body=b"try later"))
    receiver.respond(ids[1], Response(401, body=b"bad signature"))
    assert run("outbox", "enqueue", "-", stdin=b"\n".join(lines) + b"\n").returncode == 0
    assert run("outbox", "run", "--once", "--allow-private-networks").returncode == 0
    for args in (
        ["outbox", "status", "--json"],
        ["outbox", "list", "--json", "--limit", "100"],
        ["destinations", "list", "--json"],
        *(["outbox", "attempts", str(i), "--json"] for i in range(1, 13)),
    ):
        assert run(*args).returncode == 0
    pending = orjson.loads(run("outbox", "list", "--json", "--status", "pending").stdout)
    errors = [r["last_error"] for r in pending]
    assert sum("24" in (e or "") for e in errors) >= 5, errors  # the short secret was tried

    if store_url.startswith("postgresql://"):
        stored = pg_dump(store_url)
    else:
        stored = b"".join(p.read_bytes() for p in tmp_path.glob("outbox.db*"))
    assert len(stored) > 10_000
    haystacks = {"database": stored, "cli output": b"\n".join(outputs)}
    for secret in (good, broken):
        raw = base64.b64decode(secret.removeprefix("whsec_"))
        needles = [secret.encode(), secret.removeprefix("whsec_").encode(), raw]
        for where, hay in haystacks.items():
            for needle in needles:
                assert needle not in hay, f"{secret[:9]}… found in the {where}"
    assert len(receiver.deliveries) >= 5
