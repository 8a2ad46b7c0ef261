"""What a deploy on one compose host reports: `as_dict` is what `--json` prints, every field by its name."""

from dataclasses import fields

from delivery.deploy.compose.report import DeployReport

DIGEST = "sha256:" + "a" * 64


def test_a_new_report_is_not_healthy_live_or_rolled_back_and_measured_nothing() -> None:
    report = DeployReport(host="h1", image="localhost:5000/production-control:2.0.0-abcdef123456", version="2.0.0-abcdef123456",
                          digest=DIGEST)
    assert (report.healthy, report.rolled_back, report.web_live) == (False, False, False)
    assert (report.previous, report.error, report.slot, report.cron, report.monitor, report.pruned) == (None,) * 6
    assert (report.predicted_layers, report.measured_bytes, report.pull_seconds, report.proxy_restarts) == (0, 0, 0.0, 0)


def test_as_dict_names_every_field_in_order_with_its_value() -> None:
    report = DeployReport(host="h1", image="i", version="2.0.0-abcdef123456", digest=DIGEST, previous="1.0.0-abcdef123456",
                          healthy=True, monitor={"requests": 120, "errors": 0}, cron="runs 2.0.0-abcdef123456")
    shown = report.as_dict()
    assert list(shown) == [field.name for field in fields(DeployReport)]
    assert shown["host"] == "h1" and shown["digest"] == DIGEST and shown["previous"] == "1.0.0-abcdef123456"
    assert shown["healthy"] is True and shown["cron"] == "runs 2.0.0-abcdef123456"
    assert shown["monitor"] == {"requests": 120, "errors": 0}


def test_as_dict_is_a_copy_the_caller_may_change() -> None:
    report = DeployReport(host="h1", image="i", version="v", digest=DIGEST, monitor={"requests": 1}, pruned={"removed": ["a"]})
    shown = report.as_dict()
    shown["monitor"]["requests"] = 99
    shown["pruned"]["removed"].append("b")
    assert report.monitor == {"requests": 1} and report.pruned == {"removed": ["a"]}
