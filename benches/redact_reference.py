"""Pure-Python reference redactor (DESIGN §5), written from the rule-file contract.

It reads the same ``redaction-rules.json`` as the Rust core and applies the same
semantics, so it serves twice: the benchmark baseline for ``agent_bom.redact``
and a second implementation for the differential tests.

Semantics, in order, for every JSON value:

- object members whose *normalized* name (lowercase, without ``_ - . `` and
  spaces) is in ``sensitive_keys.exact`` or ends with one of
  ``sensitive_keys.suffix`` have their value (anything but null and booleans)
  replaced whole by the ``sensitive-key`` marker: one redaction. A value that
  already is exactly a marker string is left alone and not counted.
- every other string value (never a member name) is scanned by the value
  rules. A rule is tried only if the lowercased string contains one of its
  keywords (or, for a rule without keywords, at least ``min_digits`` ASCII
  digits). The core also skips a keyword occurrence not followed by a match of
  the rule's ``keyword_followed_by``; that field only says where the rule's
  regex cannot match, so the reference ignores it and the differential tests
  check that it never hides a secret. For each candidate rule, in file order,
  all non-overlapping leftmost-first matches in the original string are
  found; the redacted part is the ``secret`` group (else the whole match); a
  part failing the rule's ``entropy`` or ``checksum`` is discarded; a part
  overlapping a part already accepted from an earlier rule is dropped.
  Accepted parts are replaced right to left. A string that already is exactly
  a marker is left alone, and markers inside a longer string are off limits
  (no part may overlap one).
- markers: ``[REDACTED:<rule>]`` (mask) or ``[REDACTED:<rule>:<hex16>]``
  (hash), hex16 = first 16 hex chars of HMAC-SHA256(key, secret UTF-8); for
  sensitive keys the HMAC covers the RFC 8785 canonical JSON of the value.

Speed: the candidate rules of a string are joined into one alternation
(cached per candidate set) and searched once; the per-rule pass that decides
the exact spans runs only on strings where that single search found something.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rfc8785

SHIPPED_RULES = (
    Path(__file__).resolve().parent.parent
    / "python"
    / "agent_bom"
    / "data"
    / "redaction-rules.json"
)
SENSITIVE_KEY_RULE = "sensitive-key"
MARKER = re.compile(r"\[REDACTED:[a-z0-9][a-z0-9-]*(?::[0-9a-f]{16})?\]")
_KEY_SEPARATORS = str.maketrans("", "", "_-. ")
_DIGITS = "0123456789"


def is_marker(s: str) -> bool:
    return MARKER.fullmatch(s) is not None


def normalize_key(name: str) -> str:
    return name.lower().translate(_KEY_SEPARATORS)


def shannon_entropy(s: str) -> float:
    """Bits per character of ``s`` (log2, over its characters)."""
    if not s:
        return 0.0
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values())


def luhn_ok(s: str) -> bool:
    """13-19 digits (spaces and '-' ignored, anything else fails) with a valid Luhn digit."""
    digits = s.replace(" ", "").replace("-", "")
    if not (13 <= len(digits) <= 19) or not all(c in _DIGITS for c in digits):
        return False
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = ord(c) - 48
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(s: str) -> bool:
    """ISO 13616: 2 uppercase country letters, 2 check digits, 15-34 alphanumerics
    (spaces ignored), mod-97 == 1."""
    v = s.replace(" ", "")
    if not (15 <= len(v) <= 34):
        return False
    if not all("A" <= c <= "Z" for c in v[:2]) or not all(c in _DIGITS for c in v[2:4]):
        return False
    if not (v.isascii() and v.isalnum()):
        return False
    moved = (v[4:] + v[:4]).upper()
    number = "".join(str(ord(c) - 55) if "A" <= c <= "Z" else c for c in moved)
    return int(number) % 97 == 1


def ssn_ok(s: str) -> bool:
    """US SSN: exactly 9 digits (other characters ignored); area not 000/666/9xx,
    group not 00, serial not 0000."""
    d = "".join(c for c in s if c in _DIGITS)
    if len(d) != 9:
        return False
    area, group, serial = d[:3], d[3:5], d[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


CHECKSUMS = {"luhn": luhn_ok, "iban": iban_ok, "ssn": ssn_ok}


@dataclass(frozen=True)
class Rule:
    id: str
    regex: re.Pattern[str]
    keywords: tuple[str, ...]
    min_digits: int | None
    entropy: float | None
    checksum: str | None

    @property
    def secret_group(self) -> int:
        return self.regex.groupindex.get("secret", 0)

    def accepts(self, part: str) -> bool:
        if self.entropy is not None and shannon_entropy(part) < self.entropy:
            return False
        return self.checksum is None or CHECKSUMS[self.checksum](part)


def _inline(rule_index: int, pattern: str) -> str:
    """``pattern`` as one branch of the combined alternation: global ``(?i)`` made
    local, the ``secret`` group renamed so names stay unique."""
    body = pattern
    if body.startswith("(?i)"):
        body = "(?i:" + body[4:] + ")"
    body = body.replace("(?P<secret>", f"(?P<s{rule_index}>")
    return f"(?P<r{rule_index}>{body})"


@dataclass
class ReferenceResult:
    value: Any
    count: int
    by_rule: dict[str, int] = field(default_factory=dict)


class ReferenceRedactor:
    """Redacts JSON-like values exactly as the Rust core does, in plain Python."""

    def __init__(self, rules: str | Path | None = None) -> None:
        docs = [json.loads(SHIPPED_RULES.read_text(encoding="utf-8"))]
        if rules is not None:
            docs.append(json.loads(Path(rules).read_text(encoding="utf-8")))
        # Later files add rules and sensitive names to the shipped ones.
        exact: set[str] = set()
        suffix: list[str] = []
        raw: list[dict[str, Any]] = []
        for doc in docs:
            keys = doc.get("sensitive_keys", {})
            exact.update(normalize_key(k) for k in keys.get("exact", ()))
            suffix += [normalize_key(k) for k in keys.get("suffix", ())]
            raw += doc["rules"]
        self.exact_keys = frozenset(exact)
        self.suffix_keys = tuple(dict.fromkeys(suffix))
        self.rules = tuple(
            Rule(
                id=r["id"],
                regex=re.compile(r["regex"]),
                keywords=tuple(r.get("keywords", ())),
                min_digits=r.get("min_digits"),
                entropy=r.get("entropy"),
                checksum=r.get("checksum"),
            )
            for r in raw
        )
        for r in self.rules:
            if not r.keywords and r.min_digits is None:
                raise ValueError(f"rule {r.id!r} has no keywords and no min_digits")
            if r.checksum is not None and r.checksum not in CHECKSUMS:
                raise ValueError(f"rule {r.id!r}: unknown checksum {r.checksum!r}")
        self._keyword_rules: dict[str, list[int]] = {}
        for i, r in enumerate(self.rules):
            for k in r.keywords:
                self._keyword_rules.setdefault(k, []).append(i)
        self._digit_rules = [(i, r.min_digits) for i, r in enumerate(self.rules) if not r.keywords]
        self._combined = functools.lru_cache(maxsize=512)(self._compile_combined)

    # -- keys ---------------------------------------------------------------

    def is_sensitive_key(self, name: str) -> bool:
        n = normalize_key(name)
        return n in self.exact_keys or n.endswith(self.suffix_keys)

    # -- strings ------------------------------------------------------------

    def _compile_combined(self, candidates: tuple[int, ...]) -> re.Pattern[str]:
        return re.compile("|".join(_inline(i, self.rules[i].regex.pattern) for i in candidates))

    def candidates(self, s: str) -> tuple[int, ...]:
        lower = s.lower()
        found = {i for k, idx in self._keyword_rules.items() if k in lower for i in idx}
        if self._digit_rules:
            digits = sum(map(s.count, _DIGITS))
            found.update(i for i, need in self._digit_rules if digits >= need)
        return tuple(sorted(found))

    def spans(self, s: str) -> list[tuple[int, int, Rule]]:
        """Accepted (start, end, rule) parts of ``s``, sorted by start."""
        cands = self.candidates(s)
        if not cands or self._combined(cands).search(s) is None:
            return []
        # Markers already in the text are off limits: redaction stays idempotent.
        taken = [m.span() for m in MARKER.finditer(s)] if "[REDACTED:" in s else []
        accepted: list[tuple[int, int, Rule]] = []
        for i in cands:
            rule = self.rules[i]
            g = rule.secret_group
            for m in rule.regex.finditer(s):
                a, b = m.span(g)
                if a >= b or not rule.accepts(s[a:b]):
                    continue
                if any(a < e and st < b for st, e, _ in accepted):
                    continue
                if any(a < e and st < b for st, e in taken):
                    continue
                accepted.append((a, b, rule))
        accepted.sort(key=lambda t: t[0])
        return accepted

    def redact_string(self, s: str, marker: Any, counts: Counter[str]) -> str:
        if is_marker(s):
            return s
        found = self.spans(s)
        for a, b, rule in reversed(found):
            s = s[:a] + marker(rule.id, s[a:b].encode("utf-8")) + s[b:]
            counts[rule.id] += 1
        return s

    # -- values -------------------------------------------------------------

    def redact(self, obj: Any, *, mode: str = "mask", key: bytes | None = None) -> ReferenceResult:
        if mode not in ("mask", "hash"):
            raise ValueError(f"mode {mode!r}: use 'mask' or 'hash'")
        if mode == "hash":
            if not key:
                raise ValueError("hash mode needs a non-empty key")

            def marker(rule_id: str, data: bytes) -> str:
                digest = hmac.new(key, data, hashlib.sha256).hexdigest()[:16]
                return f"[REDACTED:{rule_id}:{digest}]"
        else:

            def marker(rule_id: str, data: bytes) -> str:
                return f"[REDACTED:{rule_id}]"

        counts: Counter[str] = Counter()

        def walk(v: Any) -> Any:
            if isinstance(v, str):
                return self.redact_string(v, marker, counts)
            if isinstance(v, dict):
                out = {}
                for k, item in v.items():
                    if (
                        item is None
                        or isinstance(item, bool)
                        or not self.is_sensitive_key(k)
                        or (isinstance(item, str) and is_marker(item))
                    ):
                        out[k] = walk(item)
                    else:
                        out[k] = marker(SENSITIVE_KEY_RULE, rfc8785.dumps(item))
                        counts[SENSITIVE_KEY_RULE] += 1
                return out
            if isinstance(v, list | tuple):
                return [walk(item) for item in v]
            return v

        value = walk(obj)
        return ReferenceResult(value, sum(counts.values()), dict(counts))

    def redact_many(
        self, objs: Iterable[Any], *, mode: str = "mask", key: bytes | None = None
    ) -> list[ReferenceResult]:
        return [self.redact(o, mode=mode, key=key) for o in objs]


@functools.lru_cache(maxsize=8)
def _redactor(rules: str | None) -> ReferenceRedactor:
    return ReferenceRedactor(rules)


def reference_redact(
    obj: Any, *, mode: str = "mask", key: bytes | None = None, rules: str | Path | None = None
) -> ReferenceResult:
    """Same signature and result attributes as ``agent_bom.redact``."""
    return _redactor(None if rules is None else str(rules)).redact(obj, mode=mode, key=key)


def reference_redact_many(
    objs: Sequence[Any],
    *,
    mode: str = "mask",
    key: bytes | None = None,
    rules: str | Path | None = None,
) -> list[ReferenceResult]:
    return _redactor(None if rules is None else str(rules)).redact_many(objs, mode=mode, key=key)


def main() -> None:
    """Time the reference against ``agent_bom.redact_many`` and print the ratio."""
    import sys
    import time

    import agent_bom
    from gen_events import generate

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    import redaction_corpus as corpus

    events = [json.loads(line) for line in generate(20_000, seed=1)]
    dense = [c.value for c in corpus.secret_cases() + corpus.composite_cases()] * 10
    ref = ReferenceRedactor()
    for name, objs in (("generated events", events), ("secret-dense values", dense)):
        t = time.perf_counter()
        expected = ref.redact_many(objs)
        t_ref = time.perf_counter() - t
        t = time.perf_counter()
        got = agent_bom.redact_many(objs)
        t_core = time.perf_counter() - t
        assert [(g.value, g.count) for g in got] == [(e.value, e.count) for e in expected]
        print(
            f"{name}: {len(objs):,} values, {sum(e.count for e in expected):,} redactions; "
            f"reference {len(objs) / t_ref:,.0f}/s, core {len(objs) / t_core:,.0f}/s, "
            f"core is {t_ref / t_core:.1f}x faster"
        )


if __name__ == "__main__":
    main()
