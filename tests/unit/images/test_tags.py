"""Tags and image references: exact formats, the deps content hash, and round trips (splitting a reference: config/test_references.py)."""

import hashlib
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from delivery.errors import DeliveryError
from delivery.images import tags
from delivery.images.tags import (
    APP_REPOSITORY,
    DEPS_REPOSITORY,
    AppTag,
    DepsTag,
    ImageRef,
    app_tag,
    deps_content_hash,
    deps_dockerfile_part,
    deps_tag,
    dockerfile_arg_default,
    image_ref,
    parse_app_tag,
    parse_deps_tag,
    split_image_ref,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
DOCKER_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
COMMIT = "0123456789abcdef0123456789abcdef01234567"
IMAGE = "python:3.12.12-slim-bookworm"

SMALL_DOCKERFILE = """\
ARG BASE=python:3.12
FROM ${BASE} AS deps
RUN pip install x
FROM deps AS runtime
COPY . /app
"""

semvers = st.tuples(*[st.integers(min_value=0, max_value=10**6)] * 3).map(lambda v: ".".join(map(str, v)))
hex_strings = st.text(alphabet="0123456789abcdefABCDEF", min_size=12, max_size=64)


@pytest.fixture(scope="module")
def real_dockerfile() -> str:
    return (REPO_ROOT / "Dockerfile").read_text()


@pytest.fixture(scope="module")
def real_lock() -> bytes:
    return (REPO_ROOT / "requirements.lock").read_bytes()


def test_repository_names() -> None:
    assert (DEPS_REPOSITORY, APP_REPOSITORY) == ("production-control-deps", "production-control")


# --- Dockerfile parsing -----------------------------------------------------------------------


def stage_names(text: str) -> list[str]:
    """The named stages the parser finds (deps_dockerfile_part cuts the Dockerfile at them)."""
    return [name for _, name in tags._stages(text) if name is not None]


def test_real_dockerfile_targets(real_dockerfile: str) -> None:
    assert stage_names(real_dockerfile) == ["os", "venv", "layer-1", "layer-2", "layer-3", "layer-rest", "deps", "runtime"]


def test_real_dockerfile_python_image_default(real_dockerfile: str) -> None:
    assert dockerfile_arg_default(real_dockerfile, "PYTHON_IMAGE") == "python:3.12.12-slim-bookworm"
    assert dockerfile_arg_default(real_dockerfile, "DEPS_IMAGE") == "deps"
    assert dockerfile_arg_default(real_dockerfile, "GIT_COMMIT") is None  # a stage ARG, not a global one


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("FROM a AS one\nFROM b as Two\n", ["one", "two"], id="case-insensitive-lowercased"),
        pytest.param("from a\nFROM b AS named\n", ["named"], id="unnamed-stage-skipped"),
        pytest.param("FROM --platform=$BUILDPLATFORM a AS build\n", ["build"], id="platform-flag"),
        pytest.param("FROM a \\\n  AS split\n", ["split"], id="continuation"),
        pytest.param("RUN echo \\\n  FROM x AS fake\n", [], id="from-inside-a-continuation"),
        pytest.param("# FROM x AS commented\n", [], id="comment"),
        pytest.param("RUN a \\\n# comment inside\n  b\nFROM x AS after\n", ["after"], id="comment-in-continuation"),
        pytest.param("", [], id="empty"),
    ],
)
def test_dockerfile_stages(text: str, expected: list[str]) -> None:
    assert stage_names(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("ARG X=1\nFROM a\n", "1", id="simple"),
        pytest.param('ARG X="q"\nFROM a\n', "q", id="quoted"),
        pytest.param("ARG A=0 X=2\nFROM a\n", "2", id="several-on-one-line"),
        pytest.param("ARG X\nFROM a\n", None, id="no-default"),
        pytest.param("FROM a\nARG X=1\n", None, id="stage-arg"),
        pytest.param("arg X=3\nFROM a\n", "3", id="lowercase-instruction"),
    ],
)
def test_dockerfile_arg_default(text: str, expected: str | None) -> None:
    assert dockerfile_arg_default(text, "X") == expected


def test_deps_part_of_the_real_dockerfile_stops_at_the_runtime_stage(real_dockerfile: str) -> None:
    part = deps_dockerfile_part(real_dockerfile)

    rest = real_dockerfile[len(part) :]
    assert real_dockerfile.startswith(part)
    assert rest.startswith("FROM ${DEPS_IMAGE} AS runtime\n")
    assert "FROM os AS deps" in part
    assert "AS runtime" not in part


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(SMALL_DOCKERFILE, "ARG BASE=python:3.12\nFROM ${BASE} AS deps\nRUN pip install x\n", id="small"),
        pytest.param("FROM a AS deps\r\nFROM deps as RUNTIME\r\n", "FROM a AS deps\r\n", id="crlf-and-case"),
        pytest.param("FROM a AS deps\n  from deps AS runtime\n", "FROM a AS deps\n", id="indented-from"),
        pytest.param(
            "FROM a AS deps\nRUN x \\\n  FROM y AS runtime\nFROM deps AS runtime\n",
            "FROM a AS deps\nRUN x \\\n  FROM y AS runtime\n",
            id="ignores-from-inside-run",
        ),
    ],
)
def test_deps_dockerfile_part(text: str, expected: str) -> None:
    assert deps_dockerfile_part(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("FROM a AS runtime\n", "Dockerfile has no `deps` target: add a stage `FROM ... AS deps`", id="no-deps"),
        pytest.param("FROM a AS deps\n", "Dockerfile has no `runtime` target: add a stage `FROM ... AS runtime`", id="no-runtime"),
        pytest.param("", "Dockerfile has no `deps` target: add a stage `FROM ... AS deps`", id="empty"),
        pytest.param(
            "FROM a AS runtime\nFROM a AS deps\n",
            "Dockerfile defines `runtime` before `deps`: move the runtime stage after deps",
            id="wrong-order",
        ),
    ],
)  # fmt: skip
def test_deps_dockerfile_part_errors(text: str, message: str) -> None:
    with pytest.raises(DeliveryError) as caught:
        deps_dockerfile_part(text)
    assert str(caught.value) == message


# --- deps content hash -----------------------------------------------------------------------


def test_deps_content_hash_is_12_hex_of_length_prefixed_fields() -> None:
    fields = [b"production-control-deps/1", b"ARG BASE=python:3.12\nFROM ${BASE} AS deps\nRUN pip install x\n", b"lock", b"img"]
    expected = hashlib.sha256(b"".join(len(f).to_bytes(8, "big") + f for f in fields)).hexdigest()[:12]

    assert deps_content_hash(b"lock", SMALL_DOCKERFILE, "img") == expected


def test_deps_content_hash_ignores_changes_after_the_runtime_line(real_dockerfile: str, real_lock: bytes) -> None:
    runtime_at = real_dockerfile.index("FROM ${DEPS_IMAGE} AS runtime")
    edited = real_dockerfile[:runtime_at] + "FROM ${DEPS_IMAGE} AS runtime\nRUN echo a code-only change\nCMD [\"web\"]\n"

    assert deps_content_hash(real_lock, edited, IMAGE) == deps_content_hash(real_lock, real_dockerfile, IMAGE)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda d, lock, img: (d, lock + b"\n", img), id="lock"),
        pytest.param(lambda d, lock, img: (d, lock, "python:3.13-slim-bookworm"), id="base-image"),
        pytest.param(  # the OS packages are in deps/os-layer.sh, a deps input (`lock` here); this is its RUN line
            lambda d, lock, img: (d.replace("sh /tmp/os-layer.sh", "sh -x /tmp/os-layer.sh"), lock, img),
            id="os-stage",
        ),
        pytest.param(lambda d, lock, img: (d.replace("FROM os AS deps", "FROM os AS deps\nENV X=1"), lock, img), id="deps-stage"),
    ],
)
def test_deps_content_hash_changes_with_each_input(change, real_dockerfile: str, real_lock: bytes) -> None:  # type: ignore[no-untyped-def]
    before = deps_content_hash(real_lock, real_dockerfile, IMAGE)
    dockerfile, lock, image = change(real_dockerfile, real_lock, IMAGE)

    assert deps_content_hash(lock, dockerfile, image) != before


def test_deps_content_hash_fields_cannot_run_together() -> None:
    # Moving bytes from the lock into the image name must not give the same hash.
    assert deps_content_hash(b"ab", SMALL_DOCKERFILE, "c") != deps_content_hash(b"a", SMALL_DOCKERFILE, "bc")


def test_deps_content_hash_needs_a_base_image() -> None:
    with pytest.raises(DeliveryError, match="the base image is empty: set deploy.python_image"):
        deps_content_hash(b"lock", SMALL_DOCKERFILE, "")


# --- deps tags --------------------------------------------------------------------------------


def test_deps_tag() -> None:
    assert deps_tag("1.0.0", "abcdef123456") == "deps-1.0.0-abcdef123456"
    assert deps_tag("1.0.0", "ABCDEF1234567890") == "deps-1.0.0-abcdef123456"


@pytest.mark.parametrize(
    ("version", "content_hash", "message"),
    [
        pytest.param("1.0", "abcdef123456", "invalid version '1.0'", id="bad-version"),
        pytest.param("1.0.0", "abc", "invalid content hash 'abc': expected at least 12 hex", id="short-hash"),
        pytest.param("1.0.0", "xyzxyzxyzxyz", "invalid content hash", id="not-hex"),
    ],
)
def test_deps_tag_errors(version: str, content_hash: str, message: str) -> None:
    with pytest.raises(DeliveryError, match=re.escape(message)):
        deps_tag(version, content_hash)


@pytest.mark.parametrize(
    "tag",
    [
        pytest.param("deps-1.0.0", id="no-hash"),
        pytest.param("deps-1.0-abcdef123456", id="bad-version"),
        pytest.param("deps-1.0.0-ABCDEF123456", id="uppercase-hash"),
        pytest.param("deps-1.0.0-abcdef1234567", id="long-hash"),
        pytest.param("1.0.0-abcdef123456", id="app-tag"),
        pytest.param("", id="empty"),
    ],
)
def test_parse_deps_tag_errors(tag: str) -> None:
    with pytest.raises(DeliveryError) as caught:
        parse_deps_tag(tag)
    assert str(caught.value) == (
        f"invalid deps tag {tag!r}: expected deps-X.Y.Z-<12 hex chars>, e.g. deps-1.0.0-abcdef123456"
    )


@given(semvers, hex_strings)
def test_deps_tag_round_trips(version: str, content_hash: str) -> None:
    tag = deps_tag(version, content_hash)

    assert parse_deps_tag(tag) == DepsTag(version=version, content_hash=content_hash[:12].lower())
    assert DOCKER_TAG.fullmatch(tag)


# --- app tags ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(("1.0.0", COMMIT), "1.0.0-0123456789ab", id="clean"),
        pytest.param(("1.0.0", COMMIT, None), "1.0.0-0123456789ab", id="clean-explicit"),
        pytest.param(("1.0.0", COMMIT, "fedcba9876543210"), "1.0.0-0123456789ab-dirty-fedcba98", id="dirty"),
        pytest.param(("2.10.3", COMMIT.upper()), "2.10.3-0123456789ab", id="uppercase-commit"),
    ],
)
def test_app_tag(args: tuple[str, ...], expected: str) -> None:
    assert app_tag(*args) == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(("1.0", COMMIT), "invalid version '1.0'", id="bad-version"),
        pytest.param(("1.0.0", "0123"), "invalid commit '0123': expected at least 12 hex", id="short-commit"),
        pytest.param(("1.0.0", "HEAD~1xxxxxxxx"), "invalid commit", id="not-hex"),
        pytest.param(("1.0.0", COMMIT, ""), "invalid dirty fingerprint '': expected at least 8 hex", id="empty-fingerprint"),
        pytest.param(("1.0.0", COMMIT, "zz"), "invalid dirty fingerprint", id="bad-fingerprint"),
        pytest.param(("1.0.0", COMMIT, "abc"), "invalid dirty fingerprint", id="short-fingerprint"),
        pytest.param((f"{'9' * 120}.0.0", COMMIT), "is not a valid Docker tag", id="too-long"),
    ],
)  # fmt: skip
def test_app_tag_errors(args: tuple[str, ...], message: str) -> None:
    with pytest.raises(DeliveryError, match=re.escape(message)):
        app_tag(*args)


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        pytest.param("1.0.0-0123456789ab", AppTag("1.0.0", "0123456789ab", None), id="clean"),
        pytest.param("1.0.0-0123456789ab-dirty-fedcba98", AppTag("1.0.0", "0123456789ab", "fedcba98"), id="dirty"),
    ],
)
def test_parse_app_tag(tag: str, expected: AppTag) -> None:
    assert parse_app_tag(tag) == expected


@pytest.mark.parametrize(
    "tag",
    [
        pytest.param("1.0.0", id="no-commit"),
        pytest.param("1.0.0-0123456789a", id="short-commit"),
        pytest.param("1.0.0-0123456789ab-dirty", id="dirty-without-fingerprint"),
        pytest.param("1.0.0-0123456789ab-dirty-fedcba9", id="short-fingerprint"),
        pytest.param("1.0.0-0123456789AB", id="uppercase"),
        pytest.param("latest", id="latest"),
        pytest.param("deps-1.0.0-abcdef123456", id="deps-tag"),
    ],
)
def test_parse_app_tag_errors(tag: str) -> None:
    with pytest.raises(DeliveryError) as caught:
        parse_app_tag(tag)
    assert str(caught.value) == (
        f"invalid app tag {tag!r}: expected X.Y.Z-<12 hex commit>[-dirty-<8 hex>], e.g. 1.0.0-0123456789ab"
    )


@given(semvers, hex_strings, st.none() | st.text(alphabet="0123456789abcdef", min_size=8, max_size=64))
def test_app_tag_round_trips_and_is_a_docker_tag(version: str, commit: str, dirty: str | None) -> None:
    tag = app_tag(version, commit, dirty)

    assert DOCKER_TAG.fullmatch(tag)
    assert parse_app_tag(tag) == AppTag(version, commit[:12].lower(), dirty[:8] if dirty is not None else None)


@given(semvers, hex_strings, st.text(alphabet="0123456789abcdef", min_size=8, max_size=64))
def test_a_dirty_tree_never_gets_the_clean_tag(version: str, commit: str, dirty: str) -> None:
    assert app_tag(version, commit, dirty) != app_tag(version, commit)


@given(st.text(), st.text(), st.none() | st.text())
def test_app_tag_gives_a_docker_tag_or_a_delivery_error(version: str, commit: str, dirty: str | None) -> None:
    try:
        tag = app_tag(version, commit, dirty)
    except DeliveryError as error:
        assert "\n" not in str(error)
    else:
        assert DOCKER_TAG.fullmatch(tag)


@given(st.text())
def test_tag_parsers_raise_only_delivery_error(text: str) -> None:
    for parse in (parse_app_tag, parse_deps_tag):
        try:
            parse(text)  # type: ignore[operator]
        except DeliveryError as error:
            assert "\n" not in str(error)


# --- image references -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(("localhost:5000", DEPS_REPOSITORY, "deps-1.0.0-abcdef123456"),
                     "localhost:5000/production-control-deps:deps-1.0.0-abcdef123456", id="deps"),
        pytest.param(("registry.example.com", APP_REPOSITORY, "1.0.0-0123456789ab"),
                     "registry.example.com/production-control:1.0.0-0123456789ab", id="app"),
        pytest.param(("", "python", "3.12"), "python:3.12", id="no-registry"),
        pytest.param(("ghcr.io/acme", APP_REPOSITORY, "1.0.0-0123456789ab"),
                     "ghcr.io/acme/production-control:1.0.0-0123456789ab", id="namespace"),
        pytest.param(("registry.example.com:5000/a/b", "production-control-deps", "deps-1.0.0-abcdef123456"),
                     "registry.example.com:5000/a/b/production-control-deps:deps-1.0.0-abcdef123456", id="nested-namespace"),
    ],
)  # fmt: skip
def test_image_ref(args: tuple[str, str, str], expected: str) -> None:
    assert image_ref(*args) == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(("http://x", APP_REPOSITORY, "t"), "invalid registry 'http://x'", id="scheme"),
        pytest.param(("ghcr.io/Acme", APP_REPOSITORY, "t"), "invalid registry 'ghcr.io/Acme'", id="upper-case-namespace"),
        pytest.param(("localhost:5000", "Upper", "t"), "invalid repository 'Upper'", id="uppercase-repository"),
        pytest.param(("localhost:5000", APP_REPOSITORY, "-t"), "is not a valid Docker tag", id="bad-tag"),
        pytest.param(("", "example.com/app", "t"), "would be read as a registry host", id="ambiguous-repository"),
    ],
)
def test_image_ref_errors(args: tuple[str, str, str], message: str) -> None:
    with pytest.raises(DeliveryError, match=re.escape(message)):
        image_ref(*args)


DIGEST = "sha256:" + "ab" * 32


registries = st.sampled_from(["", "localhost:5000", "registry.example.com", "10.0.0.1:443", "[::1]:5000", "ghcr.io/acme", "localhost:5000/a/b"])
repositories = st.from_regex(r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+)?", fullmatch=True)
docker_tags = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", fullmatch=True)


@given(registries, repositories, docker_tags)
def test_image_ref_and_split_round_trip(registry: str, repository: str, tag: str) -> None:
    try:
        ref = image_ref(registry, repository, tag)
    except DeliveryError:
        assert not registry and "." in repository.partition("/")[0]
        return
    host, _, namespace = registry.partition("/")  # a namespace reads back as part of the repository
    assert split_image_ref(ref) == ImageRef(host, f"{namespace}/{repository}" if namespace else repository, tag, None)


# -- pinned references: the env file names tag@digest, everything reading a tag back strips it ------------
RELEASE_TAG = "1.0.0-0123456789ab"
OTHER_DIGEST = "sha256:" + "cd" * 32


def test_a_pinned_tag_names_its_digest_and_reads_back_as_the_tag() -> None:
    pin = tags.pinned(RELEASE_TAG, DIGEST)
    assert pin == f"{RELEASE_TAG}@{DIGEST}" and tags.pinned(RELEASE_TAG, None) == RELEASE_TAG
    ref = f"localhost:5000/{APP_REPOSITORY}:{pin}"  # what docker-compose.yml makes of BLUE_TAG=<pin>
    assert split_image_ref(ref) == ImageRef("localhost:5000", APP_REPOSITORY, RELEASE_TAG, DIGEST)
    assert tags.without_digest(pin) == RELEASE_TAG and tags.without_digest(RELEASE_TAG) == RELEASE_TAG
    assert tags.without_digest(ref) == f"localhost:5000/{APP_REPOSITORY}:{RELEASE_TAG}"


def test_a_digest_that_is_not_one_is_refused() -> None:
    with pytest.raises(DeliveryError, match=r"^invalid digest 'sha256:abc': expected sha256:<64 hex characters>$"):
        tags.pinned(RELEASE_TAG, "sha256:abc")


@pytest.mark.parametrize(
    ("image", "repo_digests", "found"),
    [
        pytest.param(f"localhost:5000/{APP_REPOSITORY}:{RELEASE_TAG}", [f"localhost:5000/{APP_REPOSITORY}@{DIGEST}"], [DIGEST],
                     id="same-repository"),
        pytest.param(f"localhost:5000/{APP_REPOSITORY}:{RELEASE_TAG}",
                     [f"other:5000/{APP_REPOSITORY}@{OTHER_DIGEST}", f"localhost:5000/{DEPS_REPOSITORY}@{OTHER_DIGEST}",
                      f"localhost:5000/{APP_REPOSITORY}@{DIGEST}"], [DIGEST], id="other-registries-and-repositories-skipped"),
        pytest.param(f"docker.io/acme/{APP_REPOSITORY}:{RELEASE_TAG}", [f"acme/{APP_REPOSITORY}@{DIGEST}"], [DIGEST],
                     id="docker-hub-written-without-its-host"),
        pytest.param(f"ghcr.io/acme/{APP_REPOSITORY}:{RELEASE_TAG}",
                     ["garbage", f"ghcr.io/acme/{APP_REPOSITORY}@{DIGEST}", f"ghcr.io/acme/{APP_REPOSITORY}@{OTHER_DIGEST}",
                      f"ghcr.io/acme/{APP_REPOSITORY}@{DIGEST}"], [DIGEST, OTHER_DIGEST], id="in-order-once-garbage-skipped"),
        pytest.param(f"localhost:5000/{APP_REPOSITORY}:{RELEASE_TAG}", [], [], id="none-recorded"),
    ],
)  # fmt: skip
def test_recorded_digests_are_those_of_the_images_repository(image: str, repo_digests: list[str], found: list[str]) -> None:
    assert tags.recorded_digests(image, repo_digests) == found
