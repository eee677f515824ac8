"""Seeded corpora for the redaction tests: fake secrets and benign text.

Every secret here is generated (``random.Random(seed)``) with the shape of the
real thing (prefixes, lengths, alphabets, and valid check digits for cards,
IBANs and SSNs) and none is a real credential.

- ``secret_cases()``: one ``Case`` per (rule, sample, placement). Each sample
  is a fake secret in its natural context (``AccountKey=...`` in a connection
  string, ``Authorization: Bearer ...``, a PEM block, ...), placed as a member
  value, deep in nested objects and arrays, or inside a longer sentence.
  ``Case.secrets`` are the strings that must not survive redaction and
  ``Case.by_rule`` the exact counts expected per rule.
- ``key_cases()``: values under sensitive member names at various depths.
- ``composite_cases()``: realistic blobs with several secrets at once.
- ``telemetry_objects()``: AI-agent telemetry whose names look sensitive but are not.
- ``benign_strings()``: > 2,000 strings that hold no secret and no PII.
- ``secret_events()``: native events (DESIGN §3) carrying the cases, for ``evidence stream``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import random
import string
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SEED = 20260501

UPPER = string.ascii_uppercase
LOWER = string.ascii_lowercase
DIGITS = string.digits
ALNUM = UPPER + LOWER + DIGITS
UPPER_ALNUM = UPPER + DIGITS
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"
B64URL = ALNUM + "_-"
BECH32 = "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"


def rand(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@dataclass(frozen=True)
class Sample:
    """A fake secret (``secrets``: the parts that must go) in its context (``text``)."""

    rule: str
    text: str
    secrets: tuple[str, ...]


@dataclass(frozen=True)
class Case:
    name: str
    value: Any
    secrets: tuple[str, ...]
    by_rule: dict[str, int] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return sum(self.by_rule.values())


# ---------------------------------------------------------------------------
# Checksummed PII


def luhn_complete(partial: str) -> str:
    """``partial`` plus the Luhn check digit."""
    total = 0
    for i, c in enumerate(reversed(partial)):
        d = int(c)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return partial + str((10 - total % 10) % 10)


CARD_BRANDS: list[tuple[str, Callable[[random.Random], str], int]] = [
    ("visa", lambda r: "4" + rand(r, DIGITS, 5), 16),
    ("visa13", lambda r: "4" + rand(r, DIGITS, 5), 13),
    ("mastercard", lambda r: f"5{r.randint(1, 5)}" + rand(r, DIGITS, 4), 16),
    ("mastercard2", lambda r: str(r.randint(2221, 2720)) + rand(r, DIGITS, 2), 16),
    ("amex", lambda r: r.choice(["34", "37"]) + rand(r, DIGITS, 4), 15),
    ("discover", lambda r: "6011" + rand(r, DIGITS, 2), 16),
    ("jcb", lambda r: "35" + str(r.randint(28, 89)) + rand(r, DIGITS, 2), 16),
    ("diners", lambda r: "30" + str(r.randint(0, 5)) + rand(r, DIGITS, 3), 14),
    ("unionpay", lambda r: "62" + rand(r, DIGITS, 4), 19),
]


def card_number(rng: random.Random) -> str:
    _, prefix, length = rng.choice(CARD_BRANDS)
    head = prefix(rng)
    number = luhn_complete(head + rand(rng, DIGITS, length - len(head) - 1))
    style = rng.randrange(3)
    if style == 0:
        return number
    sep = " " if style == 1 else "-"
    if length == 15:  # Amex groups 4-6-5
        return sep.join([number[:4], number[4:10], number[10:]])
    return sep.join(number[i : i + 4] for i in range(0, length, 4))


# Country: (length, generator of the BBAN).
IBAN_FORMATS: dict[str, tuple[int, Callable[[random.Random], str]]] = {
    "DE": (22, lambda r: rand(r, DIGITS, 18)),
    "GB": (22, lambda r: rand(r, UPPER, 4) + rand(r, DIGITS, 14)),
    "FR": (27, lambda r: rand(r, DIGITS, 10) + rand(r, UPPER_ALNUM, 11) + rand(r, DIGITS, 2)),
    "NL": (18, lambda r: rand(r, UPPER, 4) + rand(r, DIGITS, 10)),
    "ES": (24, lambda r: rand(r, DIGITS, 20)),
    "IT": (27, lambda r: rand(r, UPPER, 1) + rand(r, DIGITS, 10) + rand(r, UPPER_ALNUM, 12)),
    "CH": (21, lambda r: rand(r, DIGITS, 5) + rand(r, UPPER_ALNUM, 12)),
    "PL": (28, lambda r: rand(r, DIGITS, 24)),
    "NO": (15, lambda r: rand(r, DIGITS, 11)),
    "IE": (22, lambda r: rand(r, UPPER, 4) + rand(r, DIGITS, 14)),
}


def iban_check_digits(country: str, bban: str) -> str:
    moved = bban + country + "00"
    number = "".join(str(ord(c) - 55) if c.isalpha() else c for c in moved)
    return f"{98 - int(number) % 97:02d}"


def iban(rng: random.Random) -> str:
    country = rng.choice(sorted(IBAN_FORMATS))
    _, gen = IBAN_FORMATS[country]
    bban = gen(rng)
    value = country + iban_check_digits(country, bban) + bban
    if rng.random() < 0.5:
        return " ".join(value[i : i + 4] for i in range(0, len(value), 4))
    return value


def ssn(rng: random.Random) -> str:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


# ---------------------------------------------------------------------------
# Secret families: one generator per rule id, each returning a Sample.

FIRST = ["alice", "bob", "carol", "dmitri", "esther", "farah", "goran", "hana", "ivan", "june"]
LAST = ["smith", "okafor", "nguyen", "garcia", "muller", "tanaka", "kowalski", "silva", "haddad"]
DOMAINS = ["example.com", "acme-corp.io", "mail.example.org", "corp.example.co.uk", "163.com"]


def _pem(rng: random.Random) -> Sample:
    kind = rng.choice(["", "RSA ", "EC ", "OPENSSH ", "ENCRYPTED ", "DSA "])
    lines = [rand(rng, B64, 64) for _ in range(rng.randint(4, 12))]
    lines.append(rand(rng, B64, rng.randint(8, 60)) + "==")
    text = f"-----BEGIN {kind}PRIVATE KEY-----\n" + "\n".join(lines)
    text += f"\n-----END {kind}PRIVATE KEY-----\n"
    return Sample("private-key", text, tuple(lines))


def _pgp(rng: random.Random) -> Sample:
    lines = [rand(rng, B64, 64) for _ in range(6)]
    text = (
        "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n"
        + "\n".join(lines)
        + f"\n={rand(rng, B64, 4)}\n-----END PGP PRIVATE KEY BLOCK-----"
    )
    return Sample("private-key", text, tuple(lines))


def _gcp_key_id(rng: random.Random) -> Sample:
    kid = rand(rng, HEX, 40)
    text = json.dumps({"type": "service_account", "project_id": "acme-prod", "private_key_id": kid})
    return Sample("gcp-private-key-id", text, (kid,))


def _aws_key_id(rng: random.Random) -> Sample:
    s = rng.choice(["AKIA", "ASIA"]) + rand(rng, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
    ctx = rng.choice(["{s}", "aws_access_key_id = {s}", "--access-key {s}", "AccessKeyId: {s}"])
    return Sample("aws-access-key-id", ctx.format(s=s), (s,))


def _aws_secret(rng: random.Random) -> Sample:
    s = rand(rng, B64, 40)
    ctx = rng.choice(
        [
            "aws_secret_access_key = {s}",
            "AWS_SECRET_ACCESS_KEY={s}",
            '"SecretAccessKey": "{s}"',
            "aws secret key: {s}",
            "export AWS_SECRET_ACCESS_KEY='{s}'",
        ]
    )
    return Sample("aws-secret-access-key", ctx.format(s=s), (s,))


def _aws_session(rng: random.Random) -> Sample:
    s = "IQoJb3JpZ2luX2VjE" + rand(rng, B64, rng.randint(200, 400)) + "="
    ctx = rng.choice(["AWS_SESSION_TOKEN={s}", "aws_session_token = {s}"])
    return Sample("aws-session-token", ctx.format(s=s), (s,))


def _prefixed(rule: str, prefix: str, alphabet: str, n: int) -> Callable[[random.Random], Sample]:
    def gen(rng: random.Random) -> Sample:
        s = prefix + rand(rng, alphabet, n)
        return Sample(rule, s, (s,))

    return gen


def _github_fine(rng: random.Random) -> Sample:
    s = "github_pat_" + rand(rng, ALNUM, 22) + "_" + rand(rng, ALNUM, 59)
    return Sample("github-fine-grained-pat", s, (s,))


def _gitlab_other(rng: random.Random) -> Sample:
    prefix = rng.choice(["glptt-", "gldt-", "glrt-", "glft-", "glsoat-", "GR1348941"])
    body = rand(rng, HEX, 40) if prefix == "glptt-" else rand(rng, B64URL, 20)
    return Sample("gitlab-token", prefix + body, (prefix + body,))


def _slack(rng: random.Random) -> Sample:
    if rng.random() < 0.5:
        s = f"xoxb-{rand(rng, DIGITS, 12)}-{rand(rng, DIGITS, 13)}-{rand(rng, ALNUM, 24)}"
    else:
        s = f"xoxp-{rand(rng, DIGITS, 11)}-{rand(rng, DIGITS, 12)}-{rand(rng, DIGITS, 13)}-"
        s += rand(rng, HEX, 32)
    return Sample("slack-token", s, (s,))


def _slack_app(rng: random.Random) -> Sample:
    s = f"xapp-1-A{rand(rng, UPPER_ALNUM, 10)}-{rand(rng, DIGITS, 13)}-{rand(rng, HEX, 64)}"
    return Sample("slack-app-token", s, (s,))


def _slack_webhook(rng: random.Random) -> Sample:
    tok = rand(rng, ALNUM, 24)
    team, channel = rand(rng, UPPER_ALNUM, 8), rand(rng, UPPER_ALNUM, 10)
    url = f"https://hooks.slack.com/services/T{team}/B{channel}/{tok}"
    return Sample("slack-webhook-url", url, (tok, url))


def _discord_webhook(rng: random.Random) -> Sample:
    tok = rand(rng, B64URL, 68)
    url = f"https://discord.com/api/webhooks/{rng.randint(10**17, 10**18 - 1)}/{tok}"
    return Sample("discord-webhook-url", url, (tok,))


def _stripe(rng: random.Random) -> Sample:
    s = "sk_" + rng.choice(["live", "test"]) + "_" + rand(rng, ALNUM, rng.choice([24, 99]))
    return Sample("stripe-secret-key", s, (s,))


def _whsec(rng: random.Random) -> Sample:
    s = "whsec_" + b64(rng.randbytes(rng.choice([24, 32])))
    return Sample("webhook-signing-secret", s, (s,))


def _azure_account_key(rng: random.Random) -> Sample:
    key = b64(rng.randbytes(64))
    text = (
        f"DefaultEndpointsProtocol=https;AccountName=acme{rand(rng, LOWER + DIGITS, 6)};"
        f"AccountKey={key};EndpointSuffix=core.windows.net"
    )
    return Sample("azure-storage-account-key", text, (key,))


def _azure_shared_access_key(rng: random.Random) -> Sample:
    key = b64(rng.randbytes(32))
    text = (
        "Endpoint=sb://acme-bus.servicebus.windows.net/;"
        f"SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey={key}"
    )
    return Sample("azure-shared-access-key", text, (key,))


def _azure_sas(rng: random.Random) -> Sample:
    sig = urllib.parse.quote(b64(rng.randbytes(32)), safe="")
    url = (
        f"https://acme{rand(rng, LOWER, 5)}.blob.core.windows.net/backups/db.bak"
        f"?sv=2022-11-02&ss=b&srt=o&sp=r&se=2026-06-01T00:00:00Z&spr=https&sig={sig}"
    )
    return Sample("azure-sas-signature", url, (sig,))


def _azure_ad(rng: random.Random) -> Sample:
    s = rand(rng, ALNUM, 3) + rand(rng, DIGITS, 1) + "Q~" + rand(rng, ALNUM + "_~.-", 34)
    ctx = rng.choice(["AZURE_CLIENT_SECRET={s}", "client secret {s}", '"value": "{s}"'])
    return Sample("azure-ad-client-secret", ctx.format(s=s), (s,))


def _openai(rng: random.Random) -> Sample:
    kind = rng.randrange(3)
    if kind == 0:
        s = "sk-proj-" + rand(rng, B64URL, 74) + "T3BlbkFJ" + rand(rng, B64URL, 74)
    elif kind == 1:
        s = "sk-svcacct-" + rand(rng, B64URL, 58) + "T3BlbkFJ" + rand(rng, B64URL, 58)
    else:
        s = "sk-" + rand(rng, ALNUM, 20) + "T3BlbkFJ" + rand(rng, ALNUM, 20)
    return Sample("openai-api-key", s, (s,))


def _anthropic(rng: random.Random) -> Sample:
    s = "sk-ant-" + rng.choice(["api03", "admin01"]) + "-" + rand(rng, B64URL, 93) + "AA"
    return Sample("anthropic-api-key", s, (s,))


def _pypi(rng: random.Random) -> Sample:
    s = "pypi-AgEIcHlwaS5vcmc" + rand(rng, B64URL, rng.randint(120, 200))
    return Sample("pypi-token", s, (s,))


def _langsmith(rng: random.Random) -> Sample:
    s = f"lsv2_{rng.choice(['pt', 'sk'])}_{rand(rng, HEX, 32)}_{rand(rng, HEX, 10)}"
    return Sample("langsmith-api-key", s, (s,))


def _sendgrid(rng: random.Random) -> Sample:
    s = f"SG.{rand(rng, B64URL, 22)}.{rand(rng, B64URL, 43)}"
    return Sample("sendgrid-api-key", s, (s,))


def _digitalocean(rng: random.Random) -> Sample:
    s = rng.choice(["dop", "doo", "dor"]) + "_v1_" + rand(rng, HEX, 64)
    return Sample("digitalocean-token", s, (s,))


def _shopify(rng: random.Random) -> Sample:
    s = rng.choice(["shpat_", "shpca_", "shppa_", "shpss_"]) + rand(rng, HEX, 32)
    return Sample("shopify-token", s, (s,))


def _vault(rng: random.Random) -> Sample:
    s = rng.choice(["hvs.", "hvb."]) + "CAESI" + rand(rng, B64URL, rng.randint(60, 140))
    return Sample("vault-token", s, (s,))


def _terraform(rng: random.Random) -> Sample:
    s = rand(rng, ALNUM, 14) + ".atlasv1." + rand(rng, ALNUM + "_-", 67)
    return Sample("terraform-cloud-token", s, (s,))


def _doppler(rng: random.Random) -> Sample:
    s = "dp." + rng.choice(["pt", "st", "sa"]) + "." + rand(rng, ALNUM, 43)
    return Sample("doppler-token", s, (s,))


def _new_relic(rng: random.Random) -> Sample:
    if rng.random() < 0.5:
        s = "NRAK-" + rand(rng, UPPER_ALNUM, 27)
    else:
        s = "NRII-" + rand(rng, LOWER + DIGITS + "-", 31) + rand(rng, LOWER, 1)
    return Sample("new-relic-key", s, (s,))


def _grafana(rng: random.Random) -> Sample:
    if rng.random() < 0.5:
        s = f"glsa_{rand(rng, ALNUM, 32)}_{rand(rng, HEX, 8)}"
    else:
        s = "glc_" + b64(rng.randbytes(rng.randint(60, 120))).rstrip("=")
    return Sample("grafana-token", s, (s,))


def _postman(rng: random.Random) -> Sample:
    s = f"PMAK-{rand(rng, HEX, 24)}-{rand(rng, HEX, 34)}"
    return Sample("postman-api-key", s, (s,))


def _notion(rng: random.Random) -> Sample:
    s = "ntn_" + rand(rng, DIGITS, 11) + rand(rng, ALNUM, 35)
    return Sample("notion-token", s, (s,))


def _mapbox(rng: random.Random) -> Sample:
    head = b64url(json.dumps({"u": rng.choice(FIRST), "a": rand(rng, LOWER + DIGITS, 12)}).encode())
    s = f"sk.{head}.{rand(rng, B64URL, 22)}"
    return Sample("mapbox-secret-token", s, (s,))


def _telegram(rng: random.Random) -> Sample:
    s = f"{rng.randint(10**8, 10**10 - 1)}:AA{rand(rng, B64URL, 33)}"
    return Sample("telegram-bot-token", s, (s,))


def jwt(rng: random.Random) -> str:
    header = b64url(
        json.dumps({"alg": rng.choice(["HS256", "RS256", "ES256"]), "typ": "JWT"}).encode()
    )
    claims = {
        "sub": str(uuid.UUID(int=rng.getrandbits(128))),
        "iss": "https://login.example.com/",
        "iat": 1714521600 + rng.randrange(10**6),
        "scope": "repo read:org",
    }
    payload = b64url(json.dumps(claims).encode())
    return f"{header}.{payload}.{b64url(rng.randbytes(32))}"


def _jwt(rng: random.Random) -> Sample:
    s = jwt(rng)
    ctx = rng.choice(["{s}", "id_token={s}", "jwt: {s}", "cookie session={s}; Path=/"])
    return Sample("jwt", ctx.format(s=s), (s,))


def _url_credentials(rng: random.Random) -> Sample:
    password = rand(rng, ALNUM + "!$*_~-", rng.randint(12, 24))
    if rng.random() < 0.3:
        password += "%40" + rand(rng, ALNUM, 4)
    scheme, host = rng.choice(
        [
            ("postgres", "db.internal:5432/app"),
            ("postgresql", "10.0.3.7/orders"),
            ("mysql", "mysql.acme.local:3306/shop"),
            ("mongodb+srv", "cluster0.abcde.mongodb.net/prod?retryWrites=true"),
            ("redis", "cache:6379/0"),
            ("amqp", "rabbit.acme.local:5672/vhost"),
            ("https", "registry.acme.io/v2/"),
            ("ftp", "files.example.org/upload"),
        ]
    )
    text = f"{scheme}://{rng.choice(FIRST)}_svc:{password}@{host}"
    return Sample("url-credentials", text, (password,))


def _bearer(rng: random.Random) -> Sample:
    s = rand(rng, ALNUM + "._~+/-", rng.randint(32, 64))
    ctx = rng.choice(
        [
            "Authorization: Bearer {s}",
            "curl -H 'Authorization: Bearer {s}' https://api.example.com/v1/runs",
            "bearer {s}",
        ]
    )
    return Sample("bearer-token", ctx.format(s=s), (s,))


def _basic(rng: random.Random) -> Sample:
    user = rng.choice(FIRST) + rand(rng, DIGITS, 2)
    s = b64(f"{user}:{rand(rng, ALNUM + '!#$%', rng.randint(12, 20))}".encode())
    ctx = rng.choice(["Authorization: Basic {s}", "authorization: basic {s}", "Basic {s}"])
    return Sample("basic-auth", ctx.format(s=s), (s,))


def _email(rng: random.Random) -> Sample:
    s = f"{rng.choice(FIRST)}.{rng.choice(LAST)}{rng.randint(1, 99)}@{rng.choice(DOMAINS)}"
    ctx = rng.choice(["{s}", "contact {s} for access", "From: Ops <{s}>", "owner={s}"])
    return Sample("email", ctx.format(s=s), (s,))


def _card(rng: random.Random) -> Sample:
    s = card_number(rng)
    ctx = rng.choice(["{s}", "card {s} exp 09/29", "pan={s}", "charged card number {s} twice"])
    return Sample("payment-card", ctx.format(s=s), (s,))


def _ssn(rng: random.Random) -> Sample:
    s = ssn(rng)
    ctx = rng.choice(["{s}", "SSN {s}", "applicant ssn: {s} (verified)"])
    return Sample("us-ssn", ctx.format(s=s), (s,))


def _iban(rng: random.Random) -> Sample:
    s = iban(rng)
    ctx = rng.choice(["{s}", "IBAN: {s}", "wire to {s} by friday"])
    return Sample("iban", ctx.format(s=s), (s,))


def _cli_user(rng: random.Random) -> Sample:
    s = rand(rng, ALNUM, rng.randint(10, 18)) + rand(rng, DIGITS, 2)
    ctx = rng.choice(
        [
            "curl -fsSL -u {u}:{s} https://nexus.acme.local/repository/raw/",
            "curl --user {u}:{s} -X POST https://jenkins.acme.local/job/deploy/build",
            "wget --user={u}:{s} https://files.example.org/a.tgz",
        ]
    )
    return Sample("cli-user-password", ctx.format(u=rng.choice(FIRST), s=s), (s,))


def _cli_flag(rng: random.Random) -> Sample:
    s = rand(rng, ALNUM, rng.randint(10, 18)) + rand(rng, DIGITS, 2)
    ctx = rng.choice(
        [
            "mysql -h db -u root --password {s} shop",
            "vault login --token {s}",
            "gh auth login --secret '{s}'",
            "./deploy.sh --api-key {s} --env prod",
        ]
    )
    return Sample("cli-secret-flag", ctx.format(s=s), (s,))


def _generic(rng: random.Random) -> Sample:
    s = rand(rng, ALNUM, rng.randint(8, 14)) + rand(rng, DIGITS, 2) + rand(rng, "!#%*_~@-", 1)
    s = "".join(rng.sample(s, len(s)))
    ctx = rng.choice(
        [
            "password={s}",
            "DB_PASSWORD: {s}",
            "--secret={s}",
            '{{"api_key": "{s}"}}',
            "client_secret = '{s}'",
            "token: {s}",
            "redis passphrase={s} (rotated)",
            "X-Api-Key: {s}",
            "https://api.example.com/v1/export?access_token={s}&format=csv",
        ]
    )
    return Sample("generic-secret-assignment", ctx.format(s=s), (s,))


GENERATORS: dict[str, list[Callable[[random.Random], Sample]]] = {
    "private-key": [_pem, _pgp],
    "gcp-private-key-id": [_gcp_key_id],
    "aws-access-key-id": [_aws_key_id],
    "aws-secret-access-key": [_aws_secret],
    "aws-session-token": [_aws_session],
    "github-pat": [_prefixed("github-pat", "ghp_", ALNUM, 36)],
    "github-oauth-token": [_prefixed("github-oauth-token", "gho_", ALNUM, 36)],
    "github-app-token": [
        _prefixed("github-app-token", "ghu_", ALNUM, 36),
        _prefixed("github-app-token", "ghs_", ALNUM, 36),
    ],
    "github-refresh-token": [_prefixed("github-refresh-token", "ghr_", ALNUM, 36)],
    "github-fine-grained-pat": [_github_fine],
    "gitlab-pat": [_prefixed("gitlab-pat", "glpat-", B64URL, 20)],
    "gitlab-token": [_gitlab_other],
    "slack-token": [_slack],
    "slack-app-token": [_slack_app],
    "slack-webhook-url": [_slack_webhook],
    "discord-webhook-url": [_discord_webhook],
    "stripe-secret-key": [_stripe],
    "stripe-restricted-key": [_prefixed("stripe-restricted-key", "rk_live_", ALNUM, 24)],
    "webhook-signing-secret": [_whsec],
    "google-api-key": [_prefixed("google-api-key", "AIza", B64URL, 35)],
    "google-oauth-client-secret": [_prefixed("google-oauth-client-secret", "GOCSPX-", B64URL, 28)],
    "google-oauth-access-token": [_prefixed("google-oauth-access-token", "ya29.", B64URL, 150)],
    "azure-storage-account-key": [_azure_account_key],
    "azure-shared-access-key": [_azure_shared_access_key],
    "azure-sas-signature": [_azure_sas],
    "azure-ad-client-secret": [_azure_ad],
    "openai-api-key": [_openai],
    "anthropic-api-key": [_anthropic],
    "huggingface-token": [_prefixed("huggingface-token", "hf_", UPPER + LOWER, 34)],
    "groq-api-key": [_prefixed("groq-api-key", "gsk_", ALNUM, 52)],
    "replicate-api-token": [_prefixed("replicate-api-token", "r8_", ALNUM, 37)],
    "perplexity-api-key": [_prefixed("perplexity-api-key", "pplx-", ALNUM, 48)],
    "xai-api-key": [_prefixed("xai-api-key", "xai-", ALNUM, 80)],
    "langsmith-api-key": [_langsmith],
    "npm-token": [_prefixed("npm-token", "npm_", ALNUM, 36)],
    "pypi-token": [_pypi],
    "dockerhub-token": [_prefixed("dockerhub-token", "dckr_pat_", B64URL, 27)],
    "sendgrid-api-key": [_sendgrid],
    "twilio-api-key": [_prefixed("twilio-api-key", "SK", HEX, 32)],
    "mailgun-api-key": [_prefixed("mailgun-api-key", "key-", HEX, 32)],
    "digitalocean-token": [_digitalocean],
    "shopify-token": [_shopify],
    "databricks-token": [_prefixed("databricks-token", "dapi", HEX, 32)],
    "vault-token": [_vault],
    "terraform-cloud-token": [_terraform],
    "pulumi-token": [_prefixed("pulumi-token", "pul-", HEX, 40)],
    "doppler-token": [_doppler],
    "age-secret-key": [_prefixed("age-secret-key", "AGE-SECRET-KEY-1", BECH32, 58)],
    "new-relic-key": [_new_relic],
    "grafana-token": [_grafana],
    "sentry-token": [_prefixed("sentry-token", "sntryu_", HEX, 64)],
    "postman-api-key": [_postman],
    "linear-api-key": [_prefixed("linear-api-key", "lin_api_", ALNUM, 40)],
    "notion-token": [_notion],
    "supabase-token": [_prefixed("supabase-token", "sbp_", HEX, 40)],
    "square-token": [_prefixed("square-token", "sq0atp-", B64URL, 22)],
    "mapbox-secret-token": [_mapbox],
    "telegram-bot-token": [_telegram],
    "jwt": [_jwt],
    "url-credentials": [_url_credentials],
    "bearer-token": [_bearer],
    "basic-auth": [_basic],
    "email": [_email],
    "iban": [_iban],
    "payment-card": [_card],
    "us-ssn": [_ssn],
    "cli-user-password": [_cli_user],
    "cli-secret-flag": [_cli_flag],
    "generic-secret-assignment": [_generic],
}

# Where a sample goes. ``{t}`` is the sample text.
PROSE_BEFORE = [
    "while running the deploy step the agent printed",
    "tool output (truncated):",
    "the MCP server logged",
    "found in .env during the scan:",
]
PROSE_AFTER = ["and then continued", "before exiting with status 1", "(see run log)", ""]


def _place(kind: int, text: str, rng: random.Random) -> Any:
    if kind == 0:
        return {"message": text}
    if kind == 1:
        return {"spec": {"steps": [{"run": {"output": [{"line": text}]}}]}, "exit_code": 1}
    if kind == 2:
        return {"note": f"{rng.choice(PROSE_BEFORE)} {text} {rng.choice(PROSE_AFTER)}".strip()}
    if kind == 3:
        return {"argv": ["deploy", "--verbose", text, "--region", "eu-west-1"]}
    return text


PLACEMENTS = ("member", "nested", "sentence", "array", "bare")


def samples(per_rule: int = 6, seed: int = SEED) -> list[Sample]:
    """``per_rule`` fake samples of every rule family."""
    rng = random.Random(seed)
    out = []
    for gens in GENERATORS.values():
        out.extend(gens[i % len(gens)](rng) for i in range(per_rule))
    return out


def secret_cases(per_rule: int = 10, seed: int = SEED) -> list[Case]:
    """Every sample in each placement, cycled; one expected redaction each."""
    rng = random.Random(seed + 1)
    cases = []
    for i, s in enumerate(samples(per_rule, seed)):
        kind = i % len(PLACEMENTS)
        cases.append(
            Case(
                f"{s.rule}-{i}-{PLACEMENTS[kind]}",
                _place(kind, s.text, rng),
                s.secrets,
                {s.rule: 1},
            )
        )
    return cases


# ---------------------------------------------------------------------------
# Sensitive member names

SENSITIVE_NAMES = [
    "password", "Password", "DB_PASSWORD", "db-password", "dbPassword", "passwd", "Pass Word",
    "secret", "client_secret", "clientSecret", "webhook_secret", "token", "access_token",
    "refresh_token", "id_token", "githubToken", "x-auth-token", "api_key", "apiKey", "x-api-key",
    "X-API-KEY", "openai.api_key", "access_key", "AWS_SECRET_ACCESS_KEY", "aws_session_token",
    "secretAccessKey", "authorization", "Authorization", "Proxy-Authorization", "auth",
    "cookie", "Set-Cookie", "private_key", "privateKey", "ssh_private_key", "mfa_token",
    "session_token", "session.key", "credentials", "credential", "signing_key", "encryption_key",
    "passphrase", "connection_string", "AZURE_STORAGE_CONNECTION_STRING", "otp",
]  # fmt: skip

NEUTRAL_NAMES = ["config", "spec", "env", "settings", "data", "values", "params", "outputs"]


def _opaque(rng: random.Random) -> str:
    # Shaped so no value rule matches it: only the member name can give it away.
    return (
        "-".join(rand(rng, LOWER, rng.randint(4, 8)) for _ in range(3)) + f"-{rng.randint(10, 99)}"
    )


def key_cases(seed: int = SEED) -> list[Case]:
    """Values under sensitive names at depth 1-6, of every JSON type but null/bool."""
    rng = random.Random(seed + 2)
    cases = []
    for i, name in enumerate(SENSITIVE_NAMES):
        kind = i % 4
        if kind == 0:
            value: Any = _opaque(rng)
            secrets: tuple[str, ...] = (value,)
        elif kind == 1:
            value = {"user": "svc-deploy", "pass": _opaque(rng), "port": 5432}
            secrets = (value["pass"],)
        elif kind == 2:
            value = [_opaque(rng), _opaque(rng)]
            secrets = tuple(value)
        else:
            value = rng.randint(100000, 999999)
            secrets = ()
        obj: Any = {name: value, "status": "ok"}
        for _ in range(i % 6):
            obj = {rng.choice(NEUTRAL_NAMES): obj} if rng.random() < 0.6 else [{"item": obj}]
        cases.append(Case(f"key-{name}-{i}", obj, secrets, {"sensitive-key": 1}))
    return cases


def telemetry_objects() -> list[dict[str, Any]]:
    """Agent telemetry whose names contain 'token', 'secret', 'session'... and must stay."""
    return [
        {
            "usage": {
                "input_tokens": 1834,
                "output_tokens": 512,
                "cache_read_input_tokens": 20480,
                "cache_creation_input_tokens": 0,
                "total_tokens": 22826,
                "max_tokens": 4096,
                "token_count": 17,
                "tokens_used": 99,
                "tokens": 2346,
            },
            "model": "claude-sonnet-4-5",
            "tokenizer": "cl100k_base",
            "session_count": 3,
            "session_duration_ms": 91823,
            "session_id": "5f0c2a9e-0d3b-4c8e-9a51-2b7de1c0f3aa",
            "context": {"session": "s-411fae68cf", "tool": "prompt"},
            "env": {"PWD": "/workspace/acme/repo-5", "HOME": "/home/runner", "SHELL": "/bin/bash"},
        },
        {
            "policy": {
                "password_policy": "min-length-12",
                "has_password": True,
                "secret_name": "prod/db",
            },
            "auth_method": "oidc",
            "author": "release-bot",
            "token_budget": 200000,
            "max_completion_tokens": 8192,
            "is_secret": False,
            "secrets_scanned": 42,
            "token_type": "bearer",
            "key": "deploy.yaml",
            "keys": ["a", "b"],
        },
        {"password": None, "token": True, "api_key": False, "session": None},
    ]


# ---------------------------------------------------------------------------
# Several secrets in one blob


def composite_cases(seed: int = SEED) -> list[Case]:
    rng = random.Random(seed + 3)
    cases = []

    # A whole GCP service-account key file, carried as a string.
    pem = _pem(rng)
    kid = rand(rng, HEX, 40)
    email = f"deployer@acme-prod-{rng.randint(100, 999)}.iam.gserviceaccount.com"
    sa = json.dumps(
        {
            "type": "service_account",
            "project_id": "acme-prod",
            "private_key_id": kid,
            "private_key": pem.text.replace("RSA ", "").replace("EC ", ""),
            "client_email": email,
            "client_id": "1" + rand(rng, DIGITS, 20),
            "token_uri": "https://oauth2.googleapis.com/token",
        }
    )
    cases.append(
        Case(
            "gcp-service-account-json",
            {"file": "sa.json", "content": sa},
            (kid, email, *pem.secrets),
            {"private-key": 1, "gcp-private-key-id": 1, "email": 1},
        )
    )

    # A .env file dump.
    gh = "ghp_" + rand(rng, ALNUM, 36)
    sk = "sk_live_" + rand(rng, ALNUM, 24)
    pw = rand(rng, ALNUM, 10) + "9!"
    dsn_pw = rand(rng, ALNUM, 16)
    env = "\n".join(
        [
            "NODE_ENV=production",
            f"GITHUB_TOKEN={gh}",
            f"STRIPE_KEY={sk}",
            f"DATABASE_URL=postgres://app:{dsn_pw}@db:5432/app",
            f"ADMIN_PASSWORD={pw}",
            "LOG_LEVEL=info",
        ]
    )
    cases.append(
        Case(
            "dotenv-dump",
            {"path": "/workspace/.env", "text": env},
            (gh, sk, pw, dsn_pw),
            {
                "github-pat": 1,
                "stripe-secret-key": 1,
                "url-credentials": 1,
                "generic-secret-assignment": 1,
            },
        )
    )

    # A bearer JWT: the JWT rule comes first, the bearer match over it is dropped.
    token = jwt(rng)
    cases.append(
        Case(
            "bearer-jwt",
            {"headers": [["authorization", f"Bearer {token}"], ["accept", "application/json"]]},
            (token,),
            {"jwt": 1},
        )
    )

    # A token assigned to a secret-looking name: the specific rule wins, once.
    np = "npm_" + rand(rng, ALNUM, 36)
    cases.append(
        Case("npm-in-assignment", {"log": f"NPM_TOKEN={np} npm publish"}, (np,), {"npm-token": 1})
    )

    # PII side by side in one support ticket.
    card, social, mail = card_number(rng), ssn(rng), f"{rng.choice(FIRST)}@{rng.choice(DOMAINS)}"
    ticket = f"Customer {mail} paid with {card}; SSN on file {social}. Please refund."
    cases.append(
        Case(
            "support-ticket",
            {"ticket": {"body": ticket, "priority": "high"}},
            (card, social, mail),
            {"payment-card": 1, "us-ssn": 1, "email": 1},
        )
    )

    # A sensitive name wins over the value rules inside its value (one count).
    gh2 = "ghp_" + rand(rng, ALNUM, 36)
    cases.append(
        Case(
            "key-over-values",
            {"credentials": {"github": gh2, "note": "rotated"}},
            (gh2,),
            {"sensitive-key": 1},
        )
    )

    # Two secrets of one rule in one string.
    a, b = "glpat-" + rand(rng, B64URL, 20), "glpat-" + rand(rng, B64URL, 20)
    cases.append(Case("two-in-one", {"msg": f"old {a}, new {b}"}, (a, b), {"gitlab-pat": 2}))

    # curl command with several credentials.
    ak = rng.choice(["AKIA"]) + rand(rng, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
    bt = rand(rng, ALNUM, 40)
    up = rand(rng, ALNUM, 14)
    curl = (
        f"curl -sS -u deploy:{up} -H 'Authorization: Bearer {bt}' "
        f"'https://ci:{up}@ci.example.com/api?key={ak}'"
    )
    cases.append(
        Case(
            "curl-command",
            {"argv": ["bash", "-c", curl]},
            (bt, up, ak),
            {
                "bearer-token": 1,
                "url-credentials": 1,
                "aws-access-key-id": 1,
                "cli-user-password": 1,
            },
        )
    )
    return cases


# ---------------------------------------------------------------------------
# Benign corpus

WORDS = [
    "agent", "server", "tool", "scan", "policy", "finding", "package", "exposure", "path",
    "runtime", "deploy", "decision", "skill", "verdict", "audit", "integrity", "network",
    "filesystem", "process", "container", "image", "registry", "workspace", "repository",
    "commit", "branch", "pipeline", "runner", "job", "step", "artifact", "manifest",
    "dependency", "version", "upgrade", "rollback", "request", "response", "header", "payload",
    "event", "stream", "checkpoint", "record", "chain", "signature", "review", "approval",
    "owner", "team", "service", "endpoint", "route", "handler", "queue", "worker", "retry",
]  # fmt: skip

SECURITY_SENTENCES = [
    "Rotate the API key every 90 days and store the secret in a vault, never in the repository.",
    "The password must be at least 12 characters long and must not be reused.",
    "Use a bearer token issued by the identity provider instead of a static secret.",
    "Bearer tokens expire after one hour; refresh tokens last 30 days.",
    "The Authorization header carries a Bearer token or Basic credentials.",
    "Basic authentication sends the username and password base64-encoded, not encrypted.",
    "Never paste a private key into a chat window or a ticket.",
    "The tool read the secret from the environment variable and did not log it.",
    "Token usage was 1834 input tokens and 512 output tokens for this turn.",
    "Set max_tokens to 4096 to bound the length of the completion.",
    "The session expired, please sign in again to obtain a new session token.",
    "A leaked AWS access key id starts with AKIA and is 20 characters long.",
    "GitHub personal access tokens start with ghp_ and fine-grained ones with github_pat_.",
    "OpenAI keys start with sk- and Anthropic keys with sk-ant-.",
    "Slack tokens begin with xoxb- or xoxp- depending on their type.",
    "Azure connection strings contain an AccountKey= part that must be kept secret.",
    "A SAS URL is signed by its sig= query parameter.",
    "The credential was revoked at 2026-05-01T12:00:00Z by the security team.",
    "Passwords are hashed with argon2id; the salt is stored next to the hash.",
    "Secrets scanning found 0 new secrets in 1,204 files.",
    "The MCP server requests broad filesystem access and an unpinned token scope.",
    "Do not commit .env files; they usually contain passwords and API keys.",
    "Card numbers are tokenized by the payment provider before they reach our systems.",
    "Prompt injection can exfiltrate credentials through tool calls to untrusted hosts.",
    "Token: not provided. Password: not set. Secret: see vault path kv/prod/db.",
    "The password reset link is valid for 15 minutes.",
    "Client secrets for OAuth apps are shown only once when they are created.",
    "Set the webhook secret in the dashboard and verify every signature.",
    "PEM files that hold a private key begin with a BEGIN PRIVATE KEY line.",
    "Use JWTs with short lifetimes and validate the issuer and audience.",
]

CODE_LINES = [
    'password = os.environ["DB_PASSWORD"]',
    "token = get_token(scope='repo')",
    "secret = hashlib.sha256(data).hexdigest()",
    "api_key: str | None = None",
    "if password != confirm_password:",
    "    raise ValueError('password mismatch')",
    "max_tokens = 4096",
    "tokens = tokenizer.encode(text)",
    "secret_key = settings.SECRET_KEY",
    "client = OpenAI(api_key=os.getenv('OPENAI_API_KEY'))",
    "const apiKey = process.env.API_KEY;",
    "const token = await getAccessToken();",
    "headers.Authorization = `Bearer ${token}`;",
    'let secret = env::var("APP_SECRET")?;',
    "let token = Token::new(42);",
    "fn verify(password: &str, hash: &str) -> bool {",
    "password: ${{ secrets.DB_PASSWORD }}",
    "token: ${GITHUB_TOKEN}",
    "api_key = config['api_key']",
    "for token in tokens: print(token)",
    "def refresh_token(self) -> str:",
    "session = requests.Session()",
    "assert len(secret) == 32",
    "import { createSecretKey } from 'node:crypto';",
    "pub struct Credentials { user: String, password: Secret<String> }",
    "SELECT id, email_verified FROM users WHERE id = $1",
    "kubectl create secret generic db-creds --from-file=./password.txt",
    "docker run --env-file .env -p 8080:8080 app:latest",
    "git clone https://github.com/acme/agent-bom.git",
    "npm install --save-dev typescript@5.4.5",
    "pip install 'requests>=2.31,<3'",
    "cargo add serde --features derive",
    "echo $HOME && cd /tmp",
    "x = [i * 2 for i in range(10)]",
    "return {'status': 'ok', 'count': len(items)}",
    "logger.info('rotated %d secrets', n)",
    "print(f'token count: {count}')",
    "match event.kind { Kind::Exec => handle(event), _ => {} }",
    "useEffect(() => { setToken(null); }, []);",
    "if (!secret) throw new Error('missing secret');",
]

TLDS = ["com", "io", "org", "net", "dev", "co.uk"]

SECRET_NOUNS = [
    "API key", "secret", "password", "token", "private key", "credential", "session cookie",
    "access token", "client secret", "passphrase", "bearer token", "service account key",
]  # fmt: skip
VERBS = ["rotated", "revoked", "read", "requested", "masked", "stored", "leaked", "validated"]
QUALIFIERS = [
    "after the incident", "before the deploy", "from the vault", "in the CI job",
    "for the MCP server", "without logging it", "on every run", "at startup",
]  # fmt: skip


def _security_prose(rng: random.Random) -> str:
    who = rng.choice(["The agent", "The operator", "A tool call", "The runner", "Our collector"])
    noun = rng.choice(SECRET_NOUNS)
    n = rng.randint(1, 90)
    return rng.choice(
        [
            f"{who} {rng.choice(VERBS)} the {noun} {rng.choice(QUALIFIERS)}.",
            f"{who} {rng.choice(VERBS)} {n} {noun}s {rng.choice(QUALIFIERS)}.",
            f"Policy: a {noun} must be {rng.choice(VERBS)} every {n} days.",
            f"Warning: {noun} {rng.choice(VERBS)} {rng.choice(QUALIFIERS)} (rule ABOM-{n:03d}).",
            f"{noun.capitalize()}: {rng.choice(['missing', 'expired', 'not set', 'ok'])}",
        ]
    )


def _sentence(rng: random.Random) -> str:
    words = rng.sample(WORDS, rng.randint(6, 14))
    return " ".join(words).capitalize() + rng.choice([".", ".", "!", "?"])


def benign_strings(seed: int = SEED) -> list[str]:
    """At least 2,000 strings a collector sees every day that hold no secret or PII."""
    rng = random.Random(seed + 4)
    out: list[str] = []
    out += [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(150)]
    out += [str(uuid.UUID(int=rng.getrandbits(128), version=4)).upper() for _ in range(30)]
    out += [hashlib.sha1(rng.randbytes(16)).hexdigest() for _ in range(120)]
    out += [hashlib.sha256(rng.randbytes(16)).hexdigest() for _ in range(120)]
    out += ["sha256:" + hashlib.sha256(rng.randbytes(8)).hexdigest() for _ in range(40)]
    out += [hashlib.sha1(rng.randbytes(8)).hexdigest()[: rng.randint(7, 12)] for _ in range(60)]
    out += [
        f"{rng.choice(['fix', 'feat', 'chore'])}: {_sentence(rng)} ({rand(rng, HEX, 8)})"
        for _ in range(40)
    ]
    # base64 of English text and of small JSON objects
    out += [b64(_sentence(rng).encode()) for _ in range(120)]
    out += [
        b64(json.dumps({"kind": rng.choice(WORDS), "n": rng.randint(0, 999), "ok": True}).encode())
        for _ in range(80)
    ]
    out += [
        b64url(json.dumps({"page": rng.randint(1, 50), "after": rng.choice(WORDS)}).encode())
        for _ in range(40)
    ]
    out += ["sha512-" + b64(hashlib.sha512(rng.randbytes(8)).digest()) for _ in range(40)]
    # times and numbers
    for _ in range(100):
        t = 1_700_000_000 + rng.randrange(100_000_000)
        frac = f".{rng.randint(0, 999):03d}" if rng.random() < 0.5 else ""
        d = dt.datetime.fromtimestamp(t, dt.UTC)
        out.append(d.strftime("%Y-%m-%dT%H:%M:%S") + frac + rng.choice(["Z", "+00:00", "-07:00"]))
    out += [str(1_700_000_000 + rng.randrange(100_000_000)) for _ in range(50)]
    out += [str(1_700_000_000_000 + rng.randrange(100_000_000_000)) for _ in range(50)]
    out += [str(1_700_000_000_000_000_000 + rng.randrange(10**17)) for _ in range(20)]
    out += [f"{rng.randint(1, 999)}ms" for _ in range(20)]
    # versions
    out += [
        f"{rng.randint(0, 30)}.{rng.randint(0, 40)}.{rng.randint(0, 200)}"
        + rng.choice(["", "", "-rc.1", "-beta.2", "+build.7", "-alpha"])
        for _ in range(100)
    ]
    out += [
        rng.choice([">=", "^", "~", "~=", "==", "<", "!="])
        + f"{rng.randint(0, 9)}.{rng.randint(0, 20)}"
        + rng.choice(["", f".{rng.randint(0, 9)}", f",<{rng.randint(10, 12)}"])
        for _ in range(80)
    ]
    # paths
    for _ in range(150):
        parts = rng.sample(WORDS, rng.randint(2, 5))
        out.append(
            rng.choice(["/workspace/acme/", "/home/runner/work/", "/var/lib/", "./", "~/.config/"])
            + "/".join(parts)
            + rng.choice([".py", ".ts", ".yaml", ".json", ".rs", "", "/", ".lock", "@2x.png"])
        )
    for _ in range(100):
        parts = rng.sample(WORDS, rng.randint(2, 4))
        out.append(
            rng.choice(["C:\\Users\\runner\\", "D:\\a\\repo\\", "C:\\Program Files\\"])
            + "\\".join(parts)
            + rng.choice([".exe", ".dll", ".ps1", ""])
        )
    # URLs without credentials
    for _ in range(150):
        host = (
            rng.choice(["api", "www", "registry", "docs", "cdn"])
            + "."
            + rng.choice(["example", "acme", "agent-bom"])
            + "."
            + rng.choice(TLDS)
        )
        port = rng.choice(["", "", f":{rng.choice([443, 8080, 3000, 5432])}"])
        path = "/".join(rng.sample(WORDS, rng.randint(1, 4)))
        query = rng.choice(
            [
                "",
                f"?page={rng.randint(1, 9)}&sort=asc",
                "?token_type=bearer&expires_in=3600",
                "#section-2",
            ]
        )
        out.append(f"{rng.choice(['https', 'http', 'wss'])}://{host}{port}/{path}{query}")
    out += [
        "git@github.com:acme/agent-bom.git",
        "ssh://git@github.com/acme/agent-bom.git",
        "http://localhost:8080/healthz",
        "http://127.0.0.1:5000/api/v1/events?since=1714521600",
    ]
    # prose and code
    out += SECURITY_SENTENCES
    out += [_security_prose(rng) for _ in range(300)]
    out += [_sentence(rng) for _ in range(200)]
    out += CODE_LINES
    # package URLs, advisories, identifiers
    eco = [
        ("npm", ["left-pad", "%40angular/core", "express", "lodash", "@types/node"]),
        ("pypi", ["requests", "django", "pydantic", "urllib3"]),
        ("cargo", ["serde", "tokio", "regex"]),
        ("maven", ["org.apache.logging.log4j/log4j-core", "com.google.guava/guava"]),
        ("golang", ["github.com/gin-gonic/gin", "golang.org/x/net"]),
    ]
    for _ in range(120):
        kind, names = rng.choice(eco)
        ver = f"{rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 20)}"
        out.append(f"pkg:{kind}/{rng.choice(names)}@{'v' if kind == 'golang' else ''}{ver}")
    out += [f"CVE-{rng.randint(1999, 2026)}-{rng.randint(1000, 99999)}" for _ in range(80)]
    out += [f"CWE-{rng.randint(20, 1400)}" for _ in range(20)]
    out += [
        "GHSA-" + "-".join(rand(rng, "23456789cfghjmpqrvwx", 4) for _ in range(3))
        for _ in range(30)
    ]
    out += [".".join(str(rng.randint(0, 255)) for _ in range(4)) for _ in range(60)]
    out += [":".join(f"{rng.randint(0, 65535):x}" for _ in range(8)) for _ in range(20)]
    out += [f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.0/24" for _ in range(20)]
    out += [
        f"arn:aws:iam::{rand(rng, DIGITS, 12)}:role/{rng.choice(WORDS)}-deployer" for _ in range(30)
    ]
    out += [
        f"00-{rand(rng, HEX, 32)}-{rand(rng, HEX, 16)}-01" for _ in range(30)
    ]  # W3C traceparent
    out += [
        f"ghcr.io/acme/{rng.choice(WORDS)}@sha256:{hashlib.sha256(rng.randbytes(4)).hexdigest()}"
        for _ in range(30)
    ]
    out += [
        f"{rng.choice(['GET', 'POST', 'PUT'])} /api/v1/{rng.choice(WORDS)}s/{rng.randint(1, 9999)} "
        f"{rng.choice([200, 201, 204, 401, 403, 404, 500])} {rng.randint(1, 900)}ms"
        for _ in range(60)
    ]
    out += [
        rng.choice(
            ["claude-sonnet-4-5", "gpt-4o-2024-08-06", "o3-mini", "gemini-2.5-pro", "llama-3.1-70b"]
        )
        for _ in range(20)
    ]
    out += [f"{rng.choice(['SEC', 'OPS', 'PLAT'])}-{rng.randint(1, 9999)}" for _ in range(30)]
    out += [f"+1-202-555-{rng.randint(0, 9999):04d}" for _ in range(20)]
    out += [f"${rng.randint(1, 99999):,}.{rng.randint(0, 99):02d}" for _ in range(20)]
    out += [f"#{rand(rng, HEX, 6)}" for _ in range(20)]
    out += [f"{rng.randint(0, 59)} {rng.randint(0, 23)} * * {rng.randint(0, 6)}" for _ in range(20)]
    out += [f"run-{rand(rng, HEX, 8)}" for _ in range(40)]
    out += [f"F-{rng.randint(0, 99999999):08d}" for _ in range(30)]
    return out


# ---------------------------------------------------------------------------
# Native events for `evidence stream`


def secret_events(cases: list[Case], seed: int = SEED) -> list[dict[str, Any]]:
    """One native event per case, the case's value in its payload."""
    rng = random.Random(seed + 5)
    events = []
    for i, c in enumerate(cases):
        events.append(
            {
                "tenant_id": rng.choice(["acme", "umbrella"]),
                "event_type": rng.choice(["runtime.exec", "finding.created", "audit.integrity"]),
                "created_at": f"2026-05-01T00:{i // 60 % 60:02d}:{i % 60:02d}Z",
                "source": "urn:agent-bom:collector:test",
                "payload": {"case": c.name, "evidence": c.value},
            }
        )
    return events
