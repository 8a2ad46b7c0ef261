"""The audit policy (pure): vulnerabilities found or ignored, dated ignores, the repository's ignores file, pip-audit's command line."""

from datetime import date
from pathlib import Path

import pytest

from delivery.errors import DeliveryError
from delivery.supply.audit import Ignore, evaluate, load_ignores, pip_audit_command

ROOT = Path(__file__).resolve().parents[3]
TODAY = date(2026, 11, 29)


# -- audit policy ------------------------------------------------------------------------------------
def report(*deps: dict) -> dict:
    return {"dependencies": list(deps), "fixes": []}


JINJA = {"name": "jinja2", "version": "3.1.2", "vulns": [
    {"id": "GHSA-h5c8-rqwp-cp95", "aliases": ["CVE-2024-22195"], "fix_versions": ["3.1.3"]}]}
CLEAN = {"name": "h11", "version": "0.16.0", "vulns": []}


def ignore(id_: str = "GHSA-h5c8-rqwp-cp95", until: date = date(2026, 12, 31), package: str = "jinja2") -> Ignore:
    return Ignore(id_, package, until, "reason")


def test_audit_passes_without_vulnerabilities() -> None:
    result = evaluate(report(CLEAN), [], TODAY)
    assert result.ok and result.audited == 1


def test_audit_fails_on_a_vulnerability_nobody_ignored() -> None:
    result = evaluate(report(CLEAN, JINJA), [], TODAY)
    assert not result.ok
    assert result.failure().startswith("audit failed: jinja2 3.1.2 has GHSA-h5c8-rqwp-cp95 (fixed in 3.1.3): upgrade it")


@pytest.mark.parametrize("id_", ["GHSA-h5c8-rqwp-cp95", "CVE-2024-22195"], ids=["by-id", "by-alias"])
def test_a_dated_ignore_in_force_lets_it_pass(id_: str) -> None:
    result = evaluate(report(JINJA), [ignore(id_)], TODAY)
    assert result.ok and [f.id for f in result.ignored] == ["GHSA-h5c8-rqwp-cp95"]


def test_an_ignore_is_for_its_package_only() -> None:
    assert not evaluate(report(JINJA), [ignore(package="markupsafe")], TODAY).ok


def test_an_expired_ignore_fails_even_when_it_still_matches() -> None:
    result = evaluate(report(JINJA), [ignore(until=date(2026, 11, 28))], TODAY)
    assert not result.ok
    assert "the ignore of GHSA-h5c8-rqwp-cp95 (jinja2) expired on 2026-11-28" in result.failure()
    assert evaluate(report(JINJA), [ignore(until=TODAY)], TODAY).ok  # the last day still counts


def test_a_package_the_service_did_not_answer_for_fails_the_audit() -> None:
    result = evaluate(report(CLEAN, {"name": "jinja2", "skip_reason": "Dependency not found on PyPI"}), [], TODAY)
    assert not result.ok and result.audited == 1
    assert "1 package(s) could not be audited (jinja2 (Dependency not found on PyPI))" in result.failure()


def test_ignores_need_id_package_date_and_reason(tmp_path: Path) -> None:
    path = tmp_path / "audit-ignores.toml"
    path.write_text('[[ignore]]\nid = "GHSA-x"\npackage = "Jinja2"\nuntil = 2026-12-31\nreason = "r"\n')
    assert load_ignores(path) == [Ignore("GHSA-x", "jinja2", date(2026, 12, 31), "r")]
    path.write_text('[[ignore]]\nid = "GHSA-x"\npackage = "jinja2"\nreason = "r"\n')
    with pytest.raises(DeliveryError, match="lacks until"):
        load_ignores(path)
    path.write_text('[[ignore]]\nid = "GHSA-x"\npackage = "jinja2"\nuntil = "soon"\nreason = "r"\n')
    with pytest.raises(DeliveryError, match="until must be a TOML date"):
        load_ignores(path)


def test_the_repository_ignores_file_is_valid() -> None:
    assert all(i.until >= TODAY for i in load_ignores(ROOT / "audit-ignores.toml"))


def test_pip_audit_reads_the_lock_without_resolving() -> None:
    command = pip_audit_command(Path("requirements.lock"))
    assert command[1:] == ["-m", "pip_audit", "--requirement", "requirements.lock", "--no-deps", "--disable-pip", "--format",
                           "json", "--progress-spinner", "off", "--timeout", "30", "--vulnerability-service", "pypi"]
    assert pip_audit_command(Path("l"), "http://127.0.0.1:9/v1/query")[-4:] == [
        "--vulnerability-service", "osv", "--osv-url", "http://127.0.0.1:9/v1/query"]
