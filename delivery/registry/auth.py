"""Registry credentials, found the way the docker CLI finds them, then from the configured variable.

Order (the first that answers wins):
1. the docker CLI's config ($DOCKER_CONFIG/config.json, else ~/.docker/config.json):
   `credHelpers[host]`, else `credsStore`, else the `auths[host]` entry `docker login` wrote;
2. deploy.registry_user with the password in the variable named by deploy.registry_password_env;
3. none: anonymous (registries that allow it hand out anonymous pull tokens).

The secret never reaches argv, a log line or an error message: registry tools get it in a
0600 file of a private temporary directory (`auth_file`), removed when they are done; the docker
CLI gets it by `docker login` into the task run's private config (`private_config_document`,
delivery/docker/engine.py), never into the user's own.
"""
from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from delivery.errors import DeliveryError

DOCKER_HUB = "docker.io"
DOCKER_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io")
IDENTITY_TOKEN_USER = "<token>"  # what credential helpers answer as Username for an identity token
HELPER_TIMEOUT = 30

Runner = Callable[..., subprocess.CompletedProcess[bytes]]


@dataclass(frozen=True)
class Credentials:
    username: str
    secret: str = field(repr=False)
    source: str  # where they came from, for messages: never the secret itself

    @property
    def is_identity_token(self) -> bool:
        return self.username == IDENTITY_TOKEN_USER


def registry_host(registry: str) -> str:
    """The host[:port] of deploy.registry (which may carry a namespace path)."""
    host = registry.split("/", 1)[0]
    return DOCKER_HUB if host in DOCKER_HUB_KEYS else host


def config_keys(host: str) -> tuple[str, ...]:
    """The keys the docker CLI may have stored `host` under in config.json."""
    if host == DOCKER_HUB:
        return DOCKER_HUB_KEYS
    return (host, f"https://{host}", f"http://{host}", f"https://{host}/v1/", f"https://{host}/v2/")


def docker_config_path(environ: Mapping[str, str]) -> Path:
    base = environ.get("DOCKER_CONFIG") or str(Path(environ.get("HOME") or Path.home()) / ".docker")
    return Path(base) / "config.json"


def read_docker_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DeliveryError(f"{path} is not valid JSON: fix it, or move it away and `docker login` again") from exc
    if not isinstance(data, dict):
        raise DeliveryError(f"{path} is not a docker CLI config (a JSON object): fix it, or move it away")
    return data


def from_docker_config(host: str, environ: Mapping[str, str], run: Runner = subprocess.run) -> Credentials | None:
    """What the docker CLI would send to `host`: helper, store, or the stored `auths` entry."""
    path = docker_config_path(environ)
    config = read_docker_config(path)
    keys = config_keys(host)
    helpers = config.get("credHelpers") or {}
    for key in keys:
        if isinstance(helpers, dict) and helpers.get(key):
            return call_helper(str(helpers[key]), key, host, path, run)
    store = config.get("credsStore")
    if store:
        for key in keys:
            found = call_helper(str(store), key, host, path, run)
            if found:
                return found
        return None
    auths = config.get("auths") or {}
    for key in keys:
        entry = auths.get(key) if isinstance(auths, dict) else None
        if isinstance(entry, dict) and (entry.get("auth") or entry.get("identitytoken")):
            return _from_auth_entry(entry, host, path)
    return None


def _from_auth_entry(entry: dict[str, Any], host: str, path: Path) -> Credentials:
    source = f"docker login ({path})"
    if entry.get("identitytoken"):
        return Credentials(IDENTITY_TOKEN_USER, str(entry["identitytoken"]), source)
    try:
        user, sep, secret = base64.b64decode(str(entry["auth"]), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        sep = ""
    if not sep or not user:
        raise DeliveryError(f"the stored login for {host} in {path} is damaged: `docker login {host}` again")
    return Credentials(user, secret, source)


def call_helper(name: str, server: str, host: str, path: Path, run: Runner = subprocess.run) -> Credentials | None:
    """`docker-credential-<name> get` for `server`: its credentials, None when it has none for it."""
    program = f"docker-credential-{name}"
    what_to_do = f"fix it and `docker login {host}`, or remove it from {path}"
    try:
        answer = run([program, "get"], input=server.encode(), capture_output=True, timeout=HELPER_TIMEOUT)
    except FileNotFoundError:
        raise DeliveryError(f"the docker credential helper {program} (named in {path}) is not installed: "
                            f"install it, or remove it from {path}") from None
    except subprocess.TimeoutExpired:
        raise DeliveryError(f"the docker credential helper {program} did not answer within {HELPER_TIMEOUT}s for {host}: {what_to_do}") from None
    output = (answer.stdout or b"").decode(errors="replace").strip()
    if answer.returncode != 0:
        reason = output or (answer.stderr or b"").decode(errors="replace").strip()
        if "credentials not found" in reason.lower():
            return None
        first = reason.splitlines()[0][:200] if reason else f"exit code {answer.returncode}"
        raise DeliveryError(f"the docker credential helper {program} failed for {host} ({first}): {what_to_do}")
    try:
        data = json.loads(output)
        username, secret = str(data["Username"]), str(data["Secret"])
    except (ValueError, KeyError, TypeError):
        raise DeliveryError(f"the docker credential helper {program} answered something unreadable for {host}: {what_to_do}") from None
    if not secret:
        return None
    return Credentials(username, secret, f"docker credential helper {program}")


def resolve(registry: str, user: str | None, password_env: str, environ: Mapping[str, str] = os.environ,
            run: Runner = subprocess.run) -> Credentials | None:
    """The credentials for deploy.registry: the docker CLI's first, then the configured variable, else None."""
    host = registry_host(registry)
    found = from_docker_config(host, environ, run)
    if found is not None:
        return found
    if user:
        password = environ.get(password_env)
        if not password:
            raise DeliveryError(f"deploy.registry_user is set but ${password_env} is empty: export the registry password, or `docker login {host}`")
        return Credentials(user, password, f"deploy.registry_user and ${password_env}")
    return None


def logs_in(credentials: Credentials | None) -> bool:
    """Pure: whether the tasks log the docker CLI in themselves: only with the configured user and variable
    (credentials the CLI has already are its own, and anonymous needs no login)."""
    return credentials is not None and credentials.source.startswith("deploy.registry_user")


def private_config_document(user_config: Mapping[str, Any], host: str) -> dict[str, Any]:
    """Pure: the config.json of a task run's private docker CLI config, in which it logs in to `host`.

    The user's settings stay (currentContext, proxies, other registries' logins, credsStore and helpers);
    for `host` there is no stored entry, and an empty credential helper under each key the CLI may use for
    it: the CLI then keeps that login in this file (removed with the run), never in a credential store.
    """
    keys = config_keys(host)
    document = dict(user_config)
    auths: dict[str, Any] = document["auths"] if isinstance(document.get("auths"), dict) else {}
    helpers: dict[str, Any] = document["credHelpers"] if isinstance(document.get("credHelpers"), dict) else {}
    document["auths"] = {key: entry for key, entry in auths.items() if key not in keys}
    document["credHelpers"] = {**{key: helper for key, helper in helpers.items() if key not in keys}, **dict.fromkeys(keys, "")}
    return document


def auth_file_document(host: str, credentials: Credentials) -> dict[str, Any]:
    """Pure: an auth file (docker config.json `auths` format) holding only `host`'s credentials."""
    if credentials.is_identity_token:
        return {"auths": {host: {"identitytoken": credentials.secret}}}
    token = base64.b64encode(f"{credentials.username}:{credentials.secret}".encode()).decode()
    return {"auths": {host: {"auth": token}}}


@contextlib.contextmanager
def auth_file(host: str, credentials: Credentials) -> Iterator[Path]:
    """A private 0600 auth file with `host`'s credentials, deleted on exit."""
    with tempfile.TemporaryDirectory(prefix="production-control-auth-") as tmp:
        path = Path(tmp) / "auth.json"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as f:
            json.dump(auth_file_document(host, credentials), f)
        yield path
