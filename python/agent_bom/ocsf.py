"""OCSF projections of posture events, targeting OCSF 1.7.0.

``project(event)`` returns the OCSF event (a dict) for every registry type with a
clean mapping, and None otherwise; ``why_not(event_type)`` says why a type has
none. Projections are deterministic: ``time`` comes from ``created_at`` (never
the clock), ``metadata.uid`` is the ``event_id``, ``metadata.product`` names
agent-bom and its version::

    from agent_bom.ocsf import project
    project({"event_id": "e-1", "tenant_id": "acme", "event_type": "runtime.exec",
             "created_at": "2026-05-01T12:00:00Z", "source": "urn:ebpf",
             "payload": {"pid": 4242, "exe": "/usr/bin/curl", "host": "ci-7"}})["class_uid"]
    # 1007 (Process Activity)

``project_lines`` adds the projection to native NDJSON lines, in batches, for
``agent-bom evidence stream --ocsf``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from agent_bom import __version__
from agent_bom.envelope import PostureEvent, epoch_millis, is_custom_type

__all__ = ["CLASSES", "MAPPING", "OCSF_VERSION", "project", "project_lines", "why_not"]

OCSF_VERSION = "1.7.0"
PRODUCT = {"name": "agent-bom", "vendor_name": "agent-bom", "version": __version__}

# class_uid: (class name, category_uid, category name)
CLASSES: Mapping[int, tuple[str, int, str]] = {
    1001: ("File System Activity", 1, "System Activity"),
    1003: ("Kernel Activity", 1, "System Activity"),
    1007: ("Process Activity", 1, "System Activity"),
    2002: ("Vulnerability Finding", 2, "Findings"),
    2003: ("Compliance Finding", 2, "Findings"),
    2004: ("Detection Finding", 2, "Findings"),
    4001: ("Network Activity", 4, "Network Activity"),
    6003: ("API Activity", 6, "Application Activity"),
}

MAPPING: Mapping[str, str] = {
    "finding.created": (
        "Vulnerability Finding (2002) when the payload has a cve; Compliance Finding (2003) "
        "when it has compliance; otherwise Detection Finding (2004). Activity Create."
    ),
    "finding.updated": (
        "As finding.created; activity Update, or Close when status is resolved or closed."
    ),
    "exposure_path.created": (
        "Detection Finding (2004), the path as finding_info.attack_graph, its nodes as resources."
    ),
    "skill.verdict": (
        "Detection Finding (2004) with the security_control profile: allow → Allowed, "
        "warn → Allowed / disposition Alert, block → Denied / Blocked."
    ),
    "deploy.decision": (
        "Detection Finding (2004) with the security_control profile, as skill.verdict."
    ),
    "security.alert.created": (
        "Detection Finding (2004), is_alert true, ATT&CK techniques as attacks."
    ),
    "runtime.policy_decision": (
        "API Activity (6003): the agent as actor (app_name, with the decision in "
        "actor.authorizations), the action as api.operation, the resource in resources; "
        "security_control profile for action/disposition/policy; block → status Failure."
    ),
    "runtime.exec": "Process Activity (1007), activity Launch; needs payload.host (the device).",
    "runtime.fs": (
        "File System Activity (1001), activity from the operation; needs payload.host (the device)."
    ),
    "runtime.net": (
        "Network Activity (4001), activity from the operation; host profile for the process."
    ),
    "runtime.syscall": (
        "Kernel Activity (1003), activity Invoke, kernel object of type System Call; needs "
        "payload.host (the device)."
    ),
}

_WHY_NOT: Mapping[str, str] = {
    "audit.integrity": (
        "an audit-chain integrity check reports on agent-bom's own evidence, not on activity "
        "or a finding on a monitored system, and OCSF 1.7 has no class for it; raise a failed "
        "check that needs attention as security.alert.created as well"
    ),
    "evidence.checkpoint": (
        "a checkpoint seals the evidence stream itself (chain head and Merkle root); it is "
        "not a security event, and SIEMs receive it in the CloudEvent stream"
    ),
    "delivery.dead_lettered": (
        "delivery state of agent-bom's outbox is pipeline telemetry, not security activity; "
        "OCSF 1.7 has no class for message delivery"
    ),
    "delivery.recovered": (
        "delivery state of agent-bom's outbox is pipeline telemetry, not security activity; "
        "OCSF 1.7 has no class for message delivery"
    ),
}

_SEVERITY = {"info": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}
_SEVERITY_NAME = {0: "Unknown", 1: "Informational", 2: "Low", 3: "Medium", 4: "High", 5: "Critical"}
# resolved/closed are not given a status_id: pydantic-ocsf 3.0.0 resolves the finding
# status_id enum by name across classes, so Compliance Finding (and, depending on the order
# models are built, every finding class) only accepts 0-3 and 99 and rejects 4 "Resolved".
# Closure shows as activity Close (finding.updated) and in status_code.
_FINDING_STATUS = {
    "open": (1, "New"),
    "in_progress": (2, "In Progress"),
    "suppressed": (3, "Suppressed"),
}
_FINDING_ACTIVITY = {1: "Create", 2: "Update", 3: "Close"}
_COMPLIANCE_STATUS = {"pass": (1, "Pass"), "warning": (2, "Warning"), "fail": (3, "Fail")}
_FS_ACTIVITY = {
    "create": (1, "Create"),
    "read": (2, "Read"),
    "update": (3, "Update"),
    "delete": (4, "Delete"),
    "rename": (5, "Rename"),
    "set_attributes": (6, "Set Attributes"),
    "set_security": (7, "Set Security"),
    "get_attributes": (8, "Get Attributes"),
    "get_security": (9, "Get Security"),
    "open": (14, "Open"),
}
_NET_ACTIVITY = {
    "open": (1, "Open"),
    "close": (2, "Close"),
    "reset": (3, "Reset"),
    "fail": (4, "Fail"),
    "refuse": (5, "Refuse"),
    "traffic": (6, "Traffic"),
    "listen": (7, "Listen"),
}
_DIRECTION = {"inbound": 1, "outbound": 2, "lateral": 3, "local": 4}
# allow|warn|block → (action_id, action, disposition_id, disposition)
_CONTROL = {
    "allow": (1, "Allowed", 1, "Allowed"),
    "warn": (1, "Allowed", 19, "Alert"),
    "block": (2, "Denied", 2, "Blocked"),
}
# Members of a native event that are not payload (the rest moves into payload, as in the core).
_ENVELOPE_MEMBERS = frozenset(PostureEvent.model_fields) | {"traceparent", "tracestate"}
_MAX_INT = 2**53 - 1


# --- reading loosely typed input (native events are not validated here) --------------------


def _str(m: Mapping[str, Any], key: str) -> str | None:
    v = m.get(key)
    return v if v.__class__ is str and v and not v.isspace() else None


def _int(m: Mapping[str, Any], key: str) -> int | None:
    v = m.get(key)
    return (
        v if isinstance(v, int) and not isinstance(v, bool) and -_MAX_INT <= v <= _MAX_INT else None
    )


def _count(m: Mapping[str, Any], key: str) -> int | None:
    v = _int(m, key)
    return v if v is not None and v >= 0 else None


def _strs(m: Mapping[str, Any], key: str) -> list[str]:
    v = m.get(key)
    return [s for s in v if isinstance(s, str) and s.strip()] if isinstance(v, list) else []


def _objs(m: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    v = m.get(key)
    return [o for o in v if isinstance(o, Mapping)] if isinstance(v, list) else []


def _put(d: dict[str, Any], key: str, value: Any) -> None:
    if value is not None and value != [] and value != {}:
        d[key] = value


def _basename(path: str) -> str:
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return name if name.strip() else path


def _score(v: Any) -> int | None:
    if isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 100:
        return int(v + 0.5)  # half up, deterministic
    return None


def _refs(ev: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for r in _objs(ev, "entity_refs"):
        uid, kind = _str(r, "id"), _str(r, "kind")
        if uid is not None:
            res: dict[str, Any] = {"uid": uid}
            _put(res, "type", kind)
            out.append(res)
    return out


def _purl_package(purl: str) -> dict[str, Any] | None:
    """name and version of a purl (pkg:type/namespace/name@version), as affected_package."""
    if not purl.startswith("pkg:"):
        return None
    body = purl[4:].split("#", 1)[0].split("?", 1)[0]
    if "@" not in body:
        return None
    path, version = body.rsplit("@", 1)
    parts = path.split("/")
    name = "/".join(parts[1:]) if len(parts) > 1 else ""
    if not name.strip() or not version.strip():
        return None
    return {"name": name, "version": version, "purl": purl, "package_manager": parts[0]}


def _status(out: dict[str, Any], status: Any) -> None:
    if isinstance(status, str) and status.strip():
        out["status_code"] = status
        if status in _FINDING_STATUS:
            out["status_id"], out["status"] = _FINDING_STATUS[status]


# --- per-type projections: (class_uid, activity_id, activity_name, members, profiles) ------

_Projection = tuple[int, int, str, dict[str, Any], list[str]]


def _finding(ev: Mapping[str, Any], p: Mapping[str, Any]) -> _Projection | None:
    fid, title = _str(p, "finding_id"), _str(p, "title")
    if fid is None or title is None:
        return None
    status = _str(p, "status")
    activity = 1
    if ev.get("event_type") == "finding.updated":
        activity = 3 if status in ("resolved", "closed") else 2
    info: dict[str, Any] = {"uid": fid, "title": title}
    _put(info, "desc", _str(p, "description"))
    rule = _str(p, "rule_id")
    if rule is not None:
        info["analytic"] = {"uid": rule, "type_id": 1, "type": "Rule"}
    out: dict[str, Any] = {"finding_info": info, "message": title}
    _status(out, status)
    remediation = _str(p, "remediation")
    resources = _refs(ev)
    cve, cwe, package = _str(p, "cve"), _str(p, "cwe"), _str(p, "package")
    pkg = _purl_package(package) if package else None
    if package is not None and pkg is None:
        resources.append({"uid": package, "type": "package"})
    _put(out, "resources", resources)
    compliance = p.get("compliance")
    if cve is not None:
        cve_obj: dict[str, Any] = {"uid": cve}
        if cwe is not None:
            cve_obj["cwe"] = {"uid": cwe}
        # Title and description live in finding_info; the vulnerability carries its specifics.
        vuln: dict[str, Any] = {"cve": cve_obj}
        _put(vuln, "affected_packages", [pkg] if pkg else None)
        _put(vuln, "references", _strs(p, "references"))
        if remediation is not None:
            vuln["remediation"] = {"desc": remediation}
        out["vulnerabilities"] = [vuln]
        return 2002, activity, _FINDING_ACTIVITY[activity], out, []
    if isinstance(compliance, Mapping) and _str(compliance, "control") is not None:
        comp: dict[str, Any] = {"control": _str(compliance, "control")}
        _put(comp, "standards", _strs(compliance, "standards"))
        cstatus = _str(compliance, "status")
        if cstatus in _COMPLIANCE_STATUS:
            comp["status_id"], comp["status"] = _COMPLIANCE_STATUS[cstatus]
        out["compliance"] = comp
        if remediation is not None:
            out["remediation"] = {"desc": remediation}
        return 2003, activity, _FINDING_ACTIVITY[activity], out, []
    # Detection Finding: the only finding class here with remediation and risk_score.
    if remediation is not None:
        out["remediation"] = {"desc": remediation}
    _put(out, "risk_score", _score(ev.get("risk_score")))
    if cwe is not None:
        weakness: dict[str, Any] = {"cwe": {"uid": cwe}}
        _put(weakness, "affected_packages", [pkg] if pkg else None)
        out["vulnerabilities"] = [weakness]
    elif pkg is not None:
        out.setdefault("resources", []).append({"uid": package, "type": "package"})
    return 2004, activity, _FINDING_ACTIVITY[activity], out, []


def _exposure_path(ev: Mapping[str, Any], p: Mapping[str, Any]) -> _Projection | None:
    path_id = _str(p, "path_id")
    nodes = [n for n in _objs(p, "nodes") if _str(n, "id") and _str(n, "kind")]
    if path_id is None or not nodes:
        return None
    graph_nodes, resources = [], []
    for n in nodes:
        node: dict[str, Any] = {"uid": n["id"], "type": n["kind"]}
        _put(node, "name", _str(n, "name"))
        graph_nodes.append(node)
        resources.append({"uid": n["id"], "type": n["kind"]})
    edges = []
    for i, e in enumerate(_objs(p, "edges")):
        src, dst = _str(e, "source"), _str(e, "target")
        if src is not None and dst is not None:
            edge: dict[str, Any] = {"uid": f"{path_id}#{i}", "source": src, "target": dst}
            _put(edge, "relation", _str(e, "relation"))
            edges.append(edge)
    title = _str(p, "title") or f"Exposure path {path_id}"
    graph: dict[str, Any] = {"uid": path_id, "name": title, "is_directed": True}
    graph["nodes"] = graph_nodes
    _put(graph, "edges", edges)
    info: dict[str, Any] = {"uid": path_id, "title": title, "types": ["Exposure Path"]}
    _put(info, "desc", _str(p, "description"))
    info["attack_graph"] = graph
    out: dict[str, Any] = {"finding_info": info, "message": title, "resources": resources}
    _put(out, "risk_score", _score(p.get("risk", ev.get("risk_score"))))
    return 2004, 1, "Create", out, []


def _control(decision: str, policy_id: str | None) -> dict[str, Any]:
    action_id, action, disposition_id, disposition = _CONTROL[decision]
    out: dict[str, Any] = {
        "action_id": action_id,
        "action": action,
        "disposition_id": disposition_id,
        "disposition": disposition,
        "is_alert": decision != "allow",
    }
    if policy_id is not None:
        out["policy"] = {"uid": policy_id, "name": policy_id}
    return out


def _verdict(
    ev: Mapping[str, Any], p: Mapping[str, Any], subject_key: str, decision_key: str
) -> _Projection | None:
    subject, decision = _str(p, subject_key), _str(p, decision_key)
    if subject is None or decision not in _CONTROL:
        return None
    if subject_key == "skill":
        version = _str(p, "skill_version")
        uid = f"skill:{subject}" + (f"@{version}" if version else "")
        title, kind, types = f"Skill {subject}: {decision}", "skill", "Skill Verdict"
    else:
        env = _str(p, "environment")
        uid = f"deploy:{subject}" + (f"@{env}" if env else "")
        where = f" to {env}" if env else ""
        title, kind, types = f"Deploy {subject}{where}: {decision}", "deployment", "Deploy Decision"
        version = None
    info: dict[str, Any] = {"uid": uid, "title": title, "types": [types]}
    reasons = _strs(p, "reasons")
    _put(info, "desc", "; ".join(reasons) if reasons else None)
    subject_res: dict[str, Any] = {"uid": subject, "type": kind}
    _put(subject_res, "version", version)
    out: dict[str, Any] = {
        "finding_info": info,
        "message": title,
        "resources": [subject_res, *_refs(ev)],
        **_control(decision, _str(p, "policy_id")),
    }
    _put(out, "risk_score", _score(ev.get("risk_score")))
    return 2004, 1, "Create", out, ["security_control"]


def _alert(ev: Mapping[str, Any], p: Mapping[str, Any]) -> _Projection | None:
    alert_id, title = _str(p, "alert_id"), _str(p, "title")
    if alert_id is None or title is None:
        return None
    info: dict[str, Any] = {"uid": alert_id, "title": title}
    _put(info, "desc", _str(p, "description"))
    rule = _str(p, "rule_id")
    if rule is not None:
        info["analytic"] = {"uid": rule, "type_id": 1, "type": "Rule"}
    attacks = []
    for t in _strs(p, "techniques"):
        attack: dict[str, Any] = {"technique": {"uid": t.split(".", 1)[0]}}
        if "." in t:
            attack["sub_technique"] = {"uid": t}
        attacks.append(attack)
    _put(info, "attacks", attacks)
    out: dict[str, Any] = {"finding_info": info, "message": title, "is_alert": True}
    _status(out, _str(p, "status"))
    _put(out, "resources", _refs(ev))
    _put(out, "risk_score", _score(ev.get("risk_score")))
    return 2004, 1, "Create", out, []


def _policy_decision(ev: Mapping[str, Any], p: Mapping[str, Any]) -> _Projection | None:
    policy_id, action, actor = _str(p, "policy_id"), _str(p, "action"), _str(p, "actor")
    resource, decision = _str(p, "resource"), _str(p, "decision")
    if policy_id is None or action is None or actor is None or resource is None:
        return None
    if decision not in _CONTROL:
        return None
    reasons = _strs(p, "reasons")
    out: dict[str, Any] = {
        "actor": {
            "app_name": actor,
            "authorizations": [{"decision": decision, "policy": {"uid": policy_id}}],
        },
        "api": {"operation": action},
        # The caller's network address is not part of the contract; the agent is the source.
        "src_endpoint": {"name": actor},
        "resources": [{"name": resource}, *_refs(ev)],
        "status_id": 2 if decision == "block" else 1,
        "status": "Failure" if decision == "block" else "Success",
        "message": f"{decision} {action} on {resource} for {actor} (policy {policy_id})",
        **_control(decision, policy_id),
    }
    _put(out, "status_detail", "; ".join(reasons) if reasons else None)
    # API Activity's activities are CRUD; a tool call or resource read by an agent is "Other".
    return 6003, 99, action, out, ["security_control"]


def _process(p: Mapping[str, Any]) -> dict[str, Any] | None:
    pid = _count(p, "pid")
    if pid is None:
        return None
    proc: dict[str, Any] = {"pid": pid}
    exe = _str(p, "exe")
    if exe is not None:
        proc["name"] = _basename(exe)
        proc["file"] = {"name": _basename(exe), "path": exe, "type_id": 1}
    user = _str(p, "user")
    if user is not None:
        proc["user"] = {"name": user}
    return proc


def _host(p: Mapping[str, Any], out: dict[str, Any], profiles: list[str]) -> bool:
    """Adds device (and container) from the payload; False when there is no host to name."""
    host = _str(p, "host")
    if host is not None:
        # The device's type is not part of the contract: 0 (Unknown).
        out["device"] = {"type_id": 0, "hostname": host}
    container = _str(p, "container_id")
    if container is not None:
        out["container"] = {"uid": container}
        profiles.append("container")
    return host is not None


def _exec(ev: Mapping[str, Any], p: Mapping[str, Any]) -> _Projection | None:
    proc, exe = _process(p), _str(p, "exe")
    if proc is None or exe is None:
        return None
    argv = _strs(p, "argv")
    if argv:
        first = argv[0]
        cmd = argv if first in (exe, _basename(exe)) else [exe, *argv]
        proc["cmd_line"] = " ".join(cmd)
    _put(proc, "working_directory", _str(p, "cwd"))
    ppid = _count(p, "ppid")
    if ppid is not None:
        proc["parent_process"] = {"pid": ppid}
    # The actor is the launching (parent) process when known, else the process itself
    # (an exec replaces the image of the calling process).
    actor: dict[str, Any] = {"process": {"pid": ppid if ppid is not None else proc["pid"]}}
    if "user" in proc:
        actor["user"] = proc["user"]
    out: dict[str, Any] = {"process": proc, "actor": actor, "message": f"exec {exe}"}
    profiles: list[str] = []
    if not _host(p, out, profiles):
        return None  # System Activity classes require the device
    return 1007, 1, "Launch", out, profiles


def _fs(ev: Mapping[str, Any], p: Mapping[str, Any]) -> _Projection | None:
    proc, path, op = _process(p), _str(p, "path"), _str(p, "operation")
    if proc is None or path is None or op not in _FS_ACTIVITY:
        return None
    activity, name = _FS_ACTIVITY[op]
    actor: dict[str, Any] = {"process": proc}
    if "user" in proc:
        actor["user"] = proc["user"]
    out: dict[str, Any] = {
        "actor": actor,
        "file": {"name": _basename(path), "path": path, "type_id": 0},
        "message": f"{op} {path}",
    }
    new_path = _str(p, "new_path")
    if op == "rename" and new_path is not None:
        out["file_result"] = {"name": _basename(new_path), "path": new_path, "type_id": 0}
    profiles: list[str] = []
    if not _host(p, out, profiles):
        return None
    return 1001, activity, name, out, profiles


def _net(ev: Mapping[str, Any], p: Mapping[str, Any]) -> _Projection | None:
    proc, op = _process(p), _str(p, "operation")
    dst: dict[str, Any] = {}
    _put(dst, "ip", _str(p, "dst_ip"))
    _put(dst, "hostname", _str(p, "dst_host"))
    if proc is None or op not in _NET_ACTIVITY or not dst:
        return None
    activity, name = _NET_ACTIVITY[op]
    port = _count(p, "dst_port")
    if port is not None and port <= 65535:
        dst["port"] = port
    out: dict[str, Any] = {"dst_endpoint": dst}
    src_ip = _str(p, "src_ip")
    if src_ip is not None:
        src: dict[str, Any] = {"ip": src_ip}
        sport = _count(p, "src_port")
        if sport is not None and sport <= 65535:
            src["port"] = sport
        out["src_endpoint"] = src
    protocol, direction = _str(p, "protocol"), _str(p, "direction") or ""
    if protocol is not None or direction in _DIRECTION:
        conn: dict[str, Any] = {"direction_id": _DIRECTION.get(direction, 0)}
        _put(conn, "protocol_name", protocol)
        out["connection_info"] = conn
    actor: dict[str, Any] = {"process": proc}
    if "user" in proc:
        actor["user"] = proc["user"]
    out["actor"] = actor
    out["message"] = f"{op} {dst.get('hostname') or dst.get('ip')}"
    profiles = ["host"]
    _host(p, out, profiles)
    return 4001, activity, name, out, profiles


def _syscall(ev: Mapping[str, Any], p: Mapping[str, Any]) -> _Projection | None:
    proc, syscall = _process(p), _str(p, "syscall")
    if proc is None or syscall is None:
        return None
    actor: dict[str, Any] = {"process": proc}
    if "user" in proc:
        actor["user"] = proc["user"]
    out: dict[str, Any] = {
        "actor": actor,
        "kernel": {"name": syscall, "type_id": 2, "system_call": syscall},
        "message": f"syscall {syscall}",
    }
    ret = _int(p, "ret")
    if ret is not None:
        out["status_id"], out["status"] = (2, "Failure") if ret < 0 else (1, "Success")
        out["status_code"] = str(ret)
    profiles: list[str] = []
    if not _host(p, out, profiles):
        return None
    return 1003, 4, "Invoke", out, profiles


_PROJECTORS: Mapping[str, Callable[[Mapping[str, Any], Mapping[str, Any]], _Projection | None]] = {
    "finding.created": _finding,
    "finding.updated": _finding,
    "exposure_path.created": _exposure_path,
    "skill.verdict": lambda ev, p: _verdict(ev, p, "skill", "verdict"),
    "deploy.decision": lambda ev, p: _verdict(ev, p, "target", "decision"),
    "security.alert.created": _alert,
    "runtime.policy_decision": _policy_decision,
    "runtime.exec": _exec,
    "runtime.fs": _fs,
    "runtime.net": _net,
    "runtime.syscall": _syscall,
}


def _project(
    ev: Mapping[str, Any],
    payload: Mapping[str, Any],
    tenant_id: str | None = None,
    source: str | None = None,
) -> dict[str, Any] | None:
    event_type = _str(ev, "event_type")
    projector = _PROJECTORS.get(event_type) if event_type is not None else None
    created_at = ev.get("created_at")
    when = epoch_millis(created_at) if isinstance(created_at, str) else None
    if projector is None or when is None:
        return None
    projected = projector(ev, payload)
    if projected is None:
        return None
    class_uid, activity_id, activity_name, members, profiles = projected
    class_name, category_uid, category_name = CLASSES[class_uid]
    sev = _SEVERITY.get(_str(ev, "severity") or "", 0)
    type_activity = "Other" if activity_id == 99 else activity_name
    metadata: dict[str, Any] = {"version": OCSF_VERSION, "product": dict(PRODUCT)}
    _put(metadata, "uid", _str(ev, "event_id"))
    _put(metadata, "tenant_uid", _str(ev, "tenant_id") or tenant_id)
    _put(metadata, "correlation_uid", _str(ev, "correlation_id"))
    metadata["event_code"] = event_type
    _put(metadata, "log_source", _str(ev, "source") or source)
    metadata["original_time"] = created_at
    _put(metadata, "profiles", profiles)
    out: dict[str, Any] = {
        "category_uid": category_uid,
        "category_name": category_name,
        "class_uid": class_uid,
        "class_name": class_name,
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": class_uid * 100 + activity_id,
        "type_name": f"{class_name}: {type_activity}",
        "severity_id": sev,
        "severity": _SEVERITY_NAME[sev],
        "time": when[0],
        "metadata": metadata,
    }
    # OCSF bounds the offset to ±18 hours; RFC 3339 allows up to ±23:59.
    if -1080 <= when[1] <= 1080:
        out["timezone_offset"] = when[1]
    out.update(members)
    return out


def project(event: PostureEvent | Mapping[str, Any]) -> dict[str, Any] | None:
    """The OCSF 1.7.0 event for ``event`` (a PostureEvent or an envelope dict), or None
    when its type has no clean mapping (see ``why_not``) or it lacks what the class needs."""
    ev = event.to_json_dict() if isinstance(event, PostureEvent) else event
    payload = ev.get("payload", {})
    if not isinstance(payload, Mapping):
        return None
    return _project(ev, payload)


def why_not(event_type: str) -> str | None:
    """Why ``event_type`` has no OCSF projection; None when it has one."""
    if event_type in _PROJECTORS:
        return None
    if event_type in _WHY_NOT:
        return _WHY_NOT[event_type]
    if is_custom_type(event_type):
        return (
            "custom types have no agreed meaning, so agent-bom cannot pick an OCSF class; "
            "a producer that needs one can set the envelope's ocsf member itself"
        )
    return (
        f"{event_type!r} is not a valid event type (neither a registry type nor a "
        "reverse-DNS custom type), so it has no projection"
    )


def _native_payload(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    payload = obj.get("payload", {})
    if not isinstance(payload, Mapping):
        return None
    extra = {k: v for k, v in obj.items() if k not in _ENVELOPE_MEMBERS}
    return {**payload, **extra} if extra else payload


def project_lines(
    lines: list[bytes],
    *,
    tenant_id: str | None = None,
    source: str | None = None,
    max_line_bytes: int | None = None,
) -> list[bytes]:
    """Add an ``ocsf`` member to each native NDJSON line whose event maps cleanly.

    Other lines come back unchanged: those that are not JSON objects (the core
    rejects them with a reason), that already carry ``ocsf``, or whose type has
    no projection. ``tenant_id`` / ``source`` are the stream's defaults, used in
    the projection's metadata for events that carry none. With ``max_line_bytes``
    (the stream's limit), a line the projection would push over it is left as it
    was, so adding OCSF never gets an event rejected.

    A native event without ``event_id`` gets a projection without ``metadata.uid``:
    its id is derived by the core from the event's bytes, ``ocsf`` included, so it
    cannot be known here. Consumers use the CloudEvent ``id`` for such events.
    """
    out = []
    for line in lines:
        stripped = line.rstrip(b"\r\n")
        try:
            obj = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            out.append(line)
            continue
        if not isinstance(obj, dict) or "ocsf" in obj or _str(obj, "event_type") not in _PROJECTORS:
            out.append(line)
            continue
        payload = _native_payload(obj)
        projected = None if payload is None else _project(obj, payload, tenant_id, source)
        if projected is None:
            out.append(line)
            continue
        # Splice the member in before the closing brace: the producer's bytes stay as they were.
        body = stripped.rstrip()
        spliced = body[:-1] + b',"ocsf":' + orjson.dumps(projected) + b"}"
        if max_line_bytes is not None and len(spliced) > max_line_bytes:
            out.append(line)
            continue
        out.append(spliced + line[len(stripped) :])
    return out
