"""The hosted CI workflow file (.github/workflows/ci.yml): the weekly refresh, deployable tags from the default branch only, the registry secret."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_weekly_scheduled_job_runs_the_refresh() -> None:
    import yaml

    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    triggers = workflow.get("on") or workflow.get(True)  # YAML 1.1 reads the key `on` as True
    cron = triggers["schedule"][0]["cron"].split()
    assert len(cron) == 5 and cron[2:4] == ["*", "*"] and cron[4].isdigit()  # one day a week
    refresh = workflow["jobs"]["refresh"]
    assert refresh["if"].startswith("github.event_name == 'schedule'")  # (and a registry to refresh in)
    assert any("invoke build-deps --refresh" in str(step.get("run", "")) for step in refresh["steps"])
    assert workflow["jobs"]["release"]["if"].startswith("github.event_name != 'schedule'")
    assert workflow["jobs"]["check"]["if"].startswith("github.event_name != 'schedule'")


DEFAULT_BRANCH = "github.ref == format('refs/heads/{0}', github.event.repository.default_branch)"


def test_deployable_tags_are_pushed_from_the_default_branch_only() -> None:
    import yaml

    jobs = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())["jobs"]
    assert jobs["release"]["if"].endswith(f" && {DEFAULT_BRANCH}")
    assert jobs["check"]["if"].endswith(" && " + DEFAULT_BRANCH.replace("==", "!="))
    assert jobs["check"]["env"]["INVOKE_DEPLOY_REGISTRY"] == "localhost:5000"  # the runner's throwaway registry
    assert any("invoke ci" in str(step.get("run", "")) for step in jobs["check"]["steps"])
    assert "secrets." not in str(jobs["check"])


def test_the_registry_secret_reaches_only_the_steps_that_push() -> None:
    import yaml

    jobs = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())["jobs"]
    for name, job in jobs.items():
        assert "secrets." not in str(job.get("env") or {}), f"job {name} gives a secret to every step"
        with_secret = [step for step in job["steps"] if "secrets." in str(step)]
        for step in with_secret:
            pushes = "docker/login-action" in step.get("uses", "") or any(
                task in step.get("run", "") for task in ("invoke ci", "invoke build-deps"))
            assert pushes, f"job {name}: step {step.get('name') or step.get('uses')} gets a secret but does not push"
        runs = [step for step in job["steps"] if "run" in step]
        assert "secrets." not in str(runs[:-1]), f"job {name}: only its last step (the push) gets the secret"
