"""Seeded generator of realistic ~1 KiB native posture events (NDJSON).

python benches/gen_events.py COUNT [--seed N] > events.ndjson
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Iterator
from typing import Any

import orjson

TENANTS = ["acme", "globex", "initech", "umbrella"]
PACKAGES = [
    "pkg:npm/left-pad@1.3.0",
    "pkg:pypi/requests@2.31.0",
    "pkg:cargo/serde@1.0.200",
    "pkg:npm/lodash@4.17.20",
    "pkg:pypi/pyyaml@5.3.1",
    "pkg:golang/golang.org/x/net@0.17.0",
]
AGENTS = ["claude-code", "cursor", "copilot-agent", "devin", "aider"]
SEVERITIES = ["info", "low", "medium", "high", "critical"]
WORDS = [
    "prompt",
    "injection",
    "via",
    "tool",
    "description",
    "allows",
    "exfiltration",
    "of",
    "workspace",
    "secrets",
    "through",
    "an",
    "unpinned",
    "MCP",
    "server",
    "that",
    "requests",
    "broad",
    "filesystem",
    "scope",
    "and",
    "network",
    "egress",
    "to",
    "an",
    "unverified",
    "host",
    "while",
    "the",
    "agent",
    "runs",
    "with",
    "elevated",
    "CI",
    "credentials",
]


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _event(rng: random.Random, i: int) -> dict[str, Any]:
    kind = rng.random()
    tenant = rng.choice(TENANTS)
    clock = f"{(i // 60) % 24:02d}:{i % 60:02d}:{rng.randrange(60):02d}.{rng.randrange(1000):03d}"
    ts = f"2026-05-{1 + i % 28:02d}T{clock}Z"
    base: dict[str, Any] = {
        "tenant_id": tenant,
        "created_at": ts,
        "source": f"urn:agent-bom:collector:{rng.choice(AGENTS)}",
        "correlation_id": f"run-{rng.randrange(1 << 32):08x}",
    }
    if kind < 0.45:
        pkg = rng.choice(PACKAGES)
        cve = f"CVE-2026-{rng.randrange(10000, 99999)}"
        base.update(
            event_type="finding.created",
            severity=rng.choice(SEVERITIES),
            risk_score=round(rng.uniform(0, 100), 1),
            entity_refs=[
                {"kind": "package", "id": pkg},
                {"kind": "repo", "id": f"github.com/{tenant}/svc-{rng.randrange(40)}"},
            ],
            payload={
                "finding_id": f"F-{i:08d}",
                "title": _sentence(rng, 8),
                "rule_id": f"ABOM-{rng.randrange(100, 999)}",
                "cve": cve,
                "cwe": f"CWE-{rng.choice([77, 78, 94, 200, 287, 522, 798, 918])}",
                "package": pkg,
                "status": "open",
                "description": _sentence(rng, 57),
                "remediation": "Pin the server version, restrict filesystem scope "
                "and rotate the exposed credential.",
                "evidence": {
                    "file": f"src/agents/{rng.randrange(100)}/config.yaml",
                    "line": rng.randrange(1, 400),
                },
            },
        )
    elif kind < 0.7:
        base.update(
            event_type="runtime.exec",
            severity=rng.choice(SEVERITIES[:3]),
            entity_refs=[{"kind": "agent", "id": rng.choice(AGENTS)}],
            payload={
                "pid": rng.randrange(1000, 65000),
                "ppid": rng.randrange(1, 1000),
                "exe": rng.choice(["/usr/bin/curl", "/usr/bin/git", "/bin/sh", "/usr/bin/python3"]),
                "argv": [
                    rng.choice(["-fsSL", "clone", "-c", "run"]),
                    f"https://example.com/{_sentence(rng, 2).replace(' ', '/')}",
                ],
                "cwd": f"/workspace/{tenant}/repo-{rng.randrange(50)}",
                "user": "runner",
                "container_id": f"{rng.randrange(1 << 48):012x}",
                "policy": {
                    "decision": rng.choice(["allow", "warn", "block"]),
                    "reasons": [_sentence(rng, 6)],
                },
                "notes": _sentence(rng, 62),
            },
        )
    elif kind < 0.9:
        base.update(
            event_type="runtime.policy_decision",
            severity=rng.choice(SEVERITIES),
            entity_refs=[
                {
                    "kind": "mcp",
                    "id": f"mcp://{rng.choice(['github', 'filesystem', 'slack', 'jira'])}",
                }
            ],
            payload={
                "policy_id": f"pol-{rng.randrange(100)}",
                "action": rng.choice(["tools/call", "resources/read", "prompts/get"]),
                "decision": rng.choice(["allow", "warn", "block"]),
                "actor": rng.choice(AGENTS),
                "resource": f"/repos/{tenant}/{_sentence(rng, 1)}",
                "reasons": [_sentence(rng, 10), _sentence(rng, 12)],
                "context": {
                    "session": f"s-{rng.randrange(1 << 40):010x}",
                    "tool": _sentence(rng, 1),
                    "args_digest": f"{rng.randrange(1 << 128):032x}",
                },
                "explanation": _sentence(rng, 56),
            },
        )
    else:
        base.update(
            event_type="com.example.scanner.result",
            payload={
                "scanner": "trivy",
                "target": f"registry.example.com/{tenant}/api:{rng.randrange(100)}",
                "summary": _sentence(rng, 76),
                "counts": {s: rng.randrange(20) for s in SEVERITIES},
            },
        )
    return base


def generate(count: int, seed: int = 1) -> Iterator[bytes]:
    rng = random.Random(seed)
    for i in range(count):
        yield orjson.dumps(_event(rng, i))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("count", type=int)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    out = sys.stdout.buffer
    for line in generate(a.count, a.seed):
        out.write(line + b"\n")


if __name__ == "__main__":
    main()
