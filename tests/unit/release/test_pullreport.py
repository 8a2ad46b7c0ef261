"""What a pull downloads: ChainIDs, the overlay2 vs containerd prediction, and the registry access log."""


import pytest
from hypothesis import given
from hypothesis import strategies as st

from delivery.registry.client import Blob, Manifest
from delivery.release.pullreport import (
    Access,
    EngineDownload,
    HostLayers,
    PullPlan,
    chain_ids,
    engine_download,
    engine_size,
    host_layers,
    human_bytes,
    parse_access_log,
    plan_pull,
    served_blob_bytes,
)


def digest(char: str) -> str:
    return "sha256:" + char * 64


A, B, B2, C = digest("a"), digest("b"), digest("e"), digest("c")
# Precomputed with `sha256("<chain below> <diff id>")`, as the OCI image spec defines ChainID.
CHAIN_AB = "sha256:ccd722928bd92476ba1745586fed6e45a102504185ad88cd89e01ff116fd146c"
CHAIN_ABC = "sha256:c1377126441fb2f5ec2c21ae2a60255331d639e830f0ee1b40a36e52d4c40588"

REAL_LINE = (
    '127.0.0.1 - - [27/Nov/2026:17:58:38 +0000] "GET /v2/probe/blobs/sha256:adbd50d3ad76d5cc39b3c3afc5ab0ab2ebc545666df864809b743168fa2d7ecc'
    ' HTTP/1.1" 200 2040619 "" "docker/26.1.5+dfsg1 go/go1.24.4"'
)
LOGRUS_LINE = (
    'time="2026-11-27T17:58:38.316172778Z" level=info msg="response completed" go.version=go1.24.4 '
    'http.request.method=GET http.request.uri="/v2/probe/blobs/sha256:adbd50d3ad76d5cc39b3c3afc5ab0ab2ebc545666df864809b743168fa2d7ecc" '
    "http.response.status=200 http.response.written=2040619"
)


# -- ChainID -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("diff_ids", "expected"),
    [
        pytest.param([], [], id="no-layers"),
        pytest.param([A], [A], id="first-chain-is-the-diff-id"),
        pytest.param([A, B], [A, CHAIN_AB], id="second-is-sha256-of-chain-space-diff"),
        pytest.param([A, B, C], [A, CHAIN_AB, CHAIN_ABC], id="third-builds-on-the-second-chain"),
    ],
)
def test_chain_ids(diff_ids: list[str], expected: list[str]) -> None:
    assert chain_ids(diff_ids) == expected


def test_a_changed_lower_layer_changes_every_chain_above_it() -> None:
    old, new = chain_ids([A, B, C]), chain_ids([A, B2, C])
    assert old[0] == new[0]
    assert old[1] != new[1] and old[2] != new[2]


# -- host layers ---------------------------------------------------------------------------------
def test_host_layers_collects_diff_ids_chains_and_image_ids() -> None:
    images = [
        ("sha256:img1", ["localhost:5000/production-control@sha256:repo1"], [A, B]),
        ("sha256:img2", [], [A, C]),
    ]
    chain_ac = chain_ids([A, C])[1]
    assert host_layers("overlay2", images) == HostLayers(
        store="overlay2",
        diff_ids=frozenset({A, B, C}),
        chain_ids=frozenset({A, CHAIN_AB, chain_ac}),
        image_ids=frozenset({"sha256:img1", "sha256:repo1", "sha256:img2"}),
    )


def test_host_layers_of_an_empty_host() -> None:
    assert host_layers("containerd", []) == HostLayers("containerd", frozenset(), frozenset(), frozenset())


# -- plan_pull -------------------------------------------------------------------------------------
CONFIG = Blob("sha256:config-new", 7)
L_OS, L_DEPS, L_CODE = Blob("sha256:blob-os", 1000), Blob("sha256:blob-deps-new", 200), Blob("sha256:blob-code", 30)
MANIFEST = Manifest(digest="sha256:manifest-new", size=500, config=CONFIG, layers=(L_OS, L_DEPS, L_CODE))
NEW_DIFF_IDS = [A, B2, C]  # the middle (deps) layer changed; the code layer's content did not
IMAGE = "localhost:5000/production-control:1.0.1-0123456789ab"


def host_with(store: str, *images: tuple[str, list[str], list[str]]) -> HostLayers:
    return host_layers(store, images)


OLD_RELEASE = ("sha256:config-old", ["localhost:5000/production-control@sha256:manifest-old"], [A, B, C])


@pytest.mark.parametrize(
    ("store", "pulled"),
    [
        pytest.param("overlay2", (L_DEPS, L_CODE), id="overlay2-changed-middle-repulls-everything-above"),
        pytest.param("containerd", (L_DEPS,), id="containerd-pulls-only-absent-content"),
    ],
)
def test_plan_pull_after_a_middle_layer_changed(store: str, pulled: tuple[Blob, ...]) -> None:
    plan = plan_pull(IMAGE, MANIFEST, NEW_DIFF_IDS, host_with(store, OLD_RELEASE))
    assert plan == PullPlan(
        image=IMAGE,
        digest="sha256:manifest-new",
        store=store,
        total_layers=3,
        pulled_layers=len(pulled),
        total_bytes=1237,
        pulled_bytes=sum(b.size for b in pulled) + CONFIG.size,
        pulled_digests=tuple(b.digest for b in pulled),
    )


def test_overlay2_pulls_a_layer_whose_diff_id_is_present_only_under_another_chain() -> None:
    # C exists on the host, but on top of B, not B2: the classic store cannot reuse it.
    host = host_with("overlay2", OLD_RELEASE)
    assert C in host.diff_ids
    assert plan_pull(IMAGE, MANIFEST, NEW_DIFF_IDS, host).pulled_digests == ("sha256:blob-deps-new", "sha256:blob-code")


@pytest.mark.parametrize("store", ["overlay2", "containerd"])
@pytest.mark.parametrize(
    "present_as",
    [
        pytest.param(("sha256:config-new", [], [A, B2, C]), id="image-id"),
        pytest.param(("sha256:other", ["localhost:5000/production-control@sha256:manifest-new"], [A, B2, C]), id="repo-digest"),
    ],
)
def test_an_image_already_on_the_host_pulls_nothing(store: str, present_as: tuple) -> None:
    plan = plan_pull(IMAGE, MANIFEST, NEW_DIFF_IDS, host_with(store, present_as))
    assert (plan.pulled_layers, plan.pulled_bytes, plan.pulled_digests) == (0, 0, ())
    assert (plan.total_layers, plan.total_bytes) == (3, 1237)


@pytest.mark.parametrize("store", ["overlay2", "containerd"])
def test_an_empty_host_pulls_every_layer_and_the_config(store: str) -> None:
    plan = plan_pull(IMAGE, MANIFEST, NEW_DIFF_IDS, host_with(store))
    assert plan.pulled_digests == ("sha256:blob-os", "sha256:blob-deps-new", "sha256:blob-code")
    assert (plan.pulled_layers, plan.pulled_bytes) == (3, 1237)


@pytest.mark.parametrize("store", ["overlay2", "containerd"])
def test_same_layers_new_config_pulls_only_the_config_blob(store: str) -> None:
    # e.g. a rebuild that changed only a label: every layer is there, the image is not.
    plan = plan_pull(IMAGE, MANIFEST, NEW_DIFF_IDS, host_with(store, ("sha256:config-old", [], [A, B2, C])))
    assert (plan.pulled_layers, plan.pulled_bytes, plan.pulled_digests) == (0, 7, ())


@pytest.mark.parametrize(
    "diff_ids",
    [pytest.param([A, B2], id="fewer-diff-ids"), pytest.param([A, B2, C, A], id="more-diff-ids"), pytest.param([], id="none")],
)
def test_plan_pull_rejects_mismatched_layer_counts(diff_ids: list[str]) -> None:
    with pytest.raises(ValueError, match="disagree on the number of layers"):
        plan_pull(IMAGE, MANIFEST, diff_ids, host_with("overlay2"))


# -- access log ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param(
            REAL_LINE,
            [Access("GET", "/v2/probe/blobs/sha256:adbd50d3ad76d5cc39b3c3afc5ab0ab2ebc545666df864809b743168fa2d7ecc", 200, 2040619)],
            id="real-docker-registry-line",
        ),
        pytest.param(LOGRUS_LINE, [], id="logrus-line-skipped"),
        pytest.param(
            '172.17.0.1 - - [27/Nov/2026:17:58:38 +0000] "HEAD /v2/pc/manifests/1.0.0 HTTP/1.1" 404 - "" "curl/8"',
            [Access("HEAD", "/v2/pc/manifests/1.0.0", 404, 0)],
            id="dash-size-is-zero",
        ),
        pytest.param("", [], id="empty"),
        pytest.param("not a log line at all", [], id="free-text"),
    ],
)
def test_parse_access_log(line: str, expected: list[Access]) -> None:
    assert parse_access_log(line) == expected


def test_parse_access_log_keeps_only_access_lines_in_order() -> None:
    text = "\n".join([LOGRUS_LINE, REAL_LINE, LOGRUS_LINE, REAL_LINE.replace("GET", "HEAD").replace("2040619", "0")])
    assert [(a.method, a.size) for a in parse_access_log(text)] == [("GET", 2040619), ("HEAD", 0)]


@pytest.mark.parametrize(
    ("path", "is_blob"),
    [
        pytest.param("/v2/pc/blobs/sha256:abc", True, id="blob"),
        pytest.param("/v2/pc/manifests/sha256:abc", False, id="manifest"),
        pytest.param("/v2/pc/blobs/uploads/1234", False, id="upload"),
    ],
)
def test_access_is_blob(path: str, is_blob: bool) -> None:
    assert Access("GET", path, 200, 1).is_blob is is_blob


ACCESSES = [
    Access("GET", "/v2/production-control/blobs/sha256:code", 200, 100),
    Access("GET", "/v2/production-control-deps/blobs/sha256:deps", 200, 1000),
    Access("HEAD", "/v2/production-control/blobs/sha256:code", 200, 100),
    Access("GET", "/v2/production-control/blobs/sha256:redirect", 307, 50),
    Access("GET", "/v2/production-control/blobs/sha256:missing", 404, 20),
    Access("GET", "/v2/production-control/manifests/1.0.0-0123456789ab", 200, 2000),
    Access("GET", "/v2/production-control/blobs/sha256:os", 200, 10_000),
]


@pytest.mark.parametrize(
    ("repository", "expected"),
    [
        pytest.param(None, (3, 11_100), id="all-repositories"),
        pytest.param("production-control", (2, 10_100), id="app-repository-not-its-deps-prefix-sibling"),
        pytest.param("production-control-deps", (1, 1000), id="deps-repository"),
        pytest.param("other", (0, 0), id="unknown-repository"),
    ],
)
def test_served_blob_bytes_counts_only_get_200_blobs(repository: str | None, expected: tuple[int, int]) -> None:
    assert served_blob_bytes(ACCESSES, repository) == expected


@pytest.mark.parametrize(
    ("n", "text"),
    [
        pytest.param(0, "0 B", id="zero"),
        pytest.param(999, "999 B", id="under-a-kB"),
        pytest.param(1000, "1.0 kB", id="one-kB-decimal"),
        pytest.param(1234567, "1.2 MB", id="MB"),
        pytest.param(999_999, "1.0 MB", id="rounds-up-into-the-next-unit"),
        pytest.param(2040619, "2.0 MB", id="real-blob"),
        pytest.param(10**9, "1.0 GB", id="GB"),
        pytest.param(5 * 10**12, "5000.0 GB", id="GB-is-the-largest-unit"),
    ],
)
def test_human_bytes(n: int, text: str) -> None:
    assert human_bytes(n) == text


# -- properties --------------------------------------------------------------------------------------
@given(st.text())
def test_parse_access_log_never_raises(text: str) -> None:
    assert all(isinstance(a, Access) for a in parse_access_log(text))


log_entries = st.lists(
    st.tuples(
        st.sampled_from(["GET", "HEAD"]),
        st.sampled_from([200, 206, 307, 404]),
        st.sampled_from(["production-control", "production-control-deps", "probe"]),
        st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
        st.integers(min_value=0, max_value=10**10),
        st.booleans(),  # followed by a logrus line
    ),
    max_size=30,
)


@given(log_entries)
def test_served_bytes_equal_the_sum_of_get_200_blob_lines(entries: list) -> None:
    lines = []
    for method, status, repo, hexdigest, size, with_logrus in entries:
        lines.append(
            f'127.0.0.1 - - [27/Nov/2026:17:58:38 +0000] "{method} /v2/{repo}/blobs/sha256:{hexdigest} HTTP/1.1" '
            f'{status} {size} "" "docker/26.1.5+dfsg1 go/go1.24.4"'
        )
        if with_logrus:
            lines.append(LOGRUS_LINE)
    accesses = parse_access_log("\n".join(lines))
    served = [(repo, size) for method, status, repo, _, size, _ in entries if method == "GET" and status == 200]
    assert len(accesses) == len(entries)
    assert served_blob_bytes(accesses) == (len(served), sum(size for _, size in served))
    deps = [size for repo, size in served if repo == "production-control-deps"]
    assert served_blob_bytes(accesses, "production-control-deps") == (len(deps), sum(deps))


# -- the engine's own account of a pull ---------------------------------------------------------------
PULL_OUTPUT = """\
  web-blue Pulling
  5c6cb3927dbc Already exists
  7d92afd2d8ef Downloading [==================>                                ]  1.864kB/4.863kB
  7d92afd2d8ef Downloading [==================================================>]  4.863kB/4.863kB
  7d92afd2d8ef Download complete
  cabdb307c9af Downloading [=>                                                 ]  32.77kB/1.384MB
  cabdb307c9af Downloading [==================================================>]  1.384MB/1.384MB
  cabdb307c9af Verifying Checksum
  cabdb307c9af Download complete
  b8c92f72be4c Extracting [==================================================>]     213B/213B
  b8c92f72be4c Pull complete
  7d92afd2d8ef Extracting [==================================================>]  4.863kB/4.863kB
  7d92afd2d8ef Pull complete
  cabdb307c9af Pull complete
  web-blue Pulled
"""


def test_engine_download_sums_each_downloaded_layer_once() -> None:
    # 7d92: 4863 B, cabd: 1384000 B, b8c9: only an Extracting line (too small for progress): 213 B;
    # 5c6c was already on the host.
    assert engine_download(PULL_OUTPUT.splitlines()) == EngineDownload(layers=3, bytes=4863 + 1_384_000 + 213)


def test_engine_download_of_a_pull_with_nothing_new() -> None:
    lines = ["  web-blue Pulling", "  5c6cb3927dbc Already exists", "  web-blue Pulled"]
    assert engine_download(lines) == EngineDownload(layers=0, bytes=0)


@pytest.mark.parametrize(("text", "size"), [("213B", 213), ("5.339kB", 5339), ("1.384MB", 1_384_000), ("1.2GB", 1_200_000_000)])
def test_engine_size(text: str, size: int) -> None:
    assert engine_size(text) == size
