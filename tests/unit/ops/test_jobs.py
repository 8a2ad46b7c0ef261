"""run-job: the entrypoint's cron jobs read from the crontab and the argv that runs one by hand."""

from delivery.ops.jobs import CronJob, crontab_jobs, job_argv


# -- crontab --------------------------------------------------------------------------------------------
def test_crontab_jobs_reads_the_entrypoint_jobs() -> None:
    text = """# comment
SHELL=/bin/bash
* * * * * app /usr/local/bin/docker-entrypoint.sh job record-run
*/5  1 * * 1-5 app /usr/local/bin/docker-entrypoint.sh job send-report --verbose
# 0 0 * * * app /usr/local/bin/docker-entrypoint.sh job disabled
0 3 * * * root /usr/sbin/logrotate /etc/logrotate.conf
"""
    assert crontab_jobs(text) == [CronJob("record-run", "* * * * *", "app"), CronJob("send-report", "*/5 1 * * 1-5", "app")]


def test_the_repository_crontab_has_record_run() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[3] / "crontab").read_text()
    assert [job.name for job in crontab_jobs(text)] == ["record-run"]


def test_job_argv_runs_the_entrypoint_job_role_by_hand() -> None:
    assert job_argv(["docker", "--host", "ssh://h"], "c1", "record-run") == [
        "docker", "--host", "ssh://h", "exec", "--env", "JOB_BY_HAND=1", "c1", "/usr/local/bin/docker-entrypoint.sh", "job", "record-run",
    ]  # fmt: skip
