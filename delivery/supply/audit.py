"""The audit of the locked Python packages against a public vulnerability database.

pip-audit checks every `name==version` of requirements.lock (no resolution, no install)
against PyPI's vulnerability data (the per-release JSON API, fed by the PyPA advisory
database and OSV), or any OSV-compatible API (`deploy.audit_osv_url`).

Policy (`evaluate`, pure): the audit fails on
- a known vulnerability that no entry of audit-ignores.toml names;
- an ignore entry past its `until` date (ignores are explicit and dated, never forever);
- a package the service could not answer for (fail closed: "not audited" is not "clean").
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from delivery.errors import DeliveryError

IGNORES_FILE = "audit-ignores.toml"


@dataclass(frozen=True)
class Ignore:
    id: str
    package: str
    until: date
    reason: str


@dataclass(frozen=True)
class Finding:
    package: str
    version: str
    id: str
    aliases: tuple[str, ...]
    fix_versions: tuple[str, ...]

    def describe(self) -> str:
        fix = f" (fixed in {', '.join(self.fix_versions)})" if self.fix_versions else " (no fix yet)"
        return f"{self.package} {self.version} has {self.id}{fix}"


@dataclass(frozen=True)
class AuditResult:
    audited: int
    findings: tuple[Finding, ...]  # not ignored: fail
    ignored: tuple[Finding, ...]
    expired: tuple[Ignore, ...]  # fail
    unaudited: tuple[str, ...]  # fail: "name version (reason)"
    service: str = "pypi"
    ignores_in_force: tuple[Ignore, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not (self.findings or self.expired or self.unaudited)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "service": self.service, "audited": self.audited,
            "vulnerabilities": [f.describe() for f in self.findings],
            "ignored": [f.describe() for f in self.ignored],
            "expired_ignores": [f"{i.id} ({i.package}) until {i.until}" for i in self.expired],
            "unaudited": list(self.unaudited),
        }

    def failure(self, ignores_file: str = IGNORES_FILE) -> str:
        """The one line a failed audit prints."""
        parts = []
        if self.findings:
            parts.append("; ".join(f.describe() for f in self.findings)
                         + f": upgrade it (pyproject.toml, `invoke lock`) or add a dated ignore with a reason to {ignores_file}")
        if self.expired:
            parts.append("; ".join(f"the ignore of {i.id} ({i.package}) expired on {i.until}" for i in self.expired)
                         + f": upgrade the package, or renew the entry in {ignores_file} with a new date and reason")
        if self.unaudited:
            parts.append(f"{len(self.unaudited)} package(s) could not be audited ({self.unaudited[0]}"
                         f"{', ...' if len(self.unaudited) > 1 else ''}): the vulnerability service did not answer for them; "
                         "run the audit where it is reachable (or set deploy.audit_osv_url to an OSV mirror)")
        return "audit failed: " + " | ".join(parts)


def load_ignores(path: Path) -> list[Ignore]:
    """The ignore entries of audit-ignores.toml; each needs id, package, until (a date) and reason."""
    if not path.exists():
        return []
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise DeliveryError(f"{path.name} is not valid TOML ({exc}): fix it") from None
    ignores = []
    for number, entry in enumerate(data.get("ignore", []), 1):
        missing = [key for key in ("id", "package", "until", "reason") if not entry.get(key)]
        if missing:
            raise DeliveryError(f"{path.name}: ignore entry {number} lacks {', '.join(missing)}: every ignore names the "
                                "vulnerability, its package, an end date (until = 2026-12-31) and a reason")
        if not isinstance(entry["until"], date):
            raise DeliveryError(f"{path.name}: ignore entry {number} ({entry['id']}): until must be a TOML date like 2026-12-31")
        ignores.append(Ignore(str(entry["id"]), normalize(str(entry["package"])), entry["until"], str(entry["reason"])))
    return ignores


def normalize(name: str) -> str:
    """PEP 503: Jinja2 -> jinja2."""
    return re.sub(r"[-_.]+", "-", name).lower()


def evaluate(report: Mapping[str, Any], ignores: list[Ignore], today: date, service: str = "pypi") -> AuditResult:
    """Pure: apply the policy to a pip-audit JSON report."""
    in_force = [i for i in ignores if i.until >= today]
    expired = tuple(i for i in ignores if i.until < today)
    findings, ignored, unaudited = [], [], []
    audited = 0
    for dependency in report.get("dependencies", []):
        name = normalize(dependency.get("name", ""))
        if "skip_reason" in dependency:
            unaudited.append(f"{name} {dependency.get('version', '')}".strip() + f" ({dependency['skip_reason']})")
            continue
        audited += 1
        for vuln in dependency.get("vulns", []):
            finding = Finding(name, dependency.get("version", ""), vuln["id"], tuple(vuln.get("aliases", [])),
                              tuple(vuln.get("fix_versions", [])))
            ids = {finding.id, *finding.aliases}
            if any(i.package == name and i.id in ids for i in in_force):
                ignored.append(finding)
            else:
                findings.append(finding)
    return AuditResult(audited, tuple(findings), tuple(ignored), expired, tuple(unaudited), service, tuple(in_force))


def pip_audit_command(lock: Path, osv_url: str | None = None) -> list[str]:
    """Pure: the pip-audit command line for a fully pinned lock (no resolution, no pip)."""
    command = [sys.executable, "-m", "pip_audit", "--requirement", str(lock), "--no-deps", "--disable-pip",
               "--format", "json", "--progress-spinner", "off", "--timeout", "30"]
    if osv_url:
        command += ["--vulnerability-service", "osv", "--osv-url", osv_url]
    else:
        command += ["--vulnerability-service", "pypi"]
    return command


def run_audit(lock: Path, ignores_path: Path, *, ca_bundle: Path | None = None, osv_url: str | None = None,
              today: date | None = None) -> AuditResult:
    """Run pip-audit on `lock` and apply the policy (the ignores file is checked first)."""
    ignores = load_ignores(ignores_path)
    env = dict(os.environ)
    if ca_bundle:
        env["REQUESTS_CA_BUNDLE"] = str(ca_bundle)  # a TLS-inspecting proxy's CA
    result = subprocess.run(pip_audit_command(lock, osv_url), capture_output=True, text=True, env=env)
    try:
        report = json.loads(result.stdout)
    except ValueError:
        detail = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
        raise DeliveryError(f"pip-audit failed on {lock.name} ({detail}): check the lock and the network") from None
    return evaluate(report, ignores, today or date.today(), "osv" if osv_url else "pypi")
