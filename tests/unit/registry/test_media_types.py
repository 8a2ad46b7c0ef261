"""An index or an image: told by a manifest document's media type, or by its `manifests` when it names none."""

import pytest

from delivery.registry.client import is_index, media_type_of

OCI_INDEX = "application/vnd.oci.image.index.v1+json"


@pytest.mark.parametrize(
    ("document", "media_type", "index"),
    [
        pytest.param({"mediaType": OCI_INDEX, "manifests": []}, OCI_INDEX, True, id="oci-index"),
        pytest.param({"mediaType": "application/vnd.docker.distribution.manifest.list.v2+json"},
                     "application/vnd.docker.distribution.manifest.list.v2+json", True, id="docker-list"),
        pytest.param({"manifests": []}, OCI_INDEX, True, id="index-without-media-type"),
        pytest.param({"mediaType": "application/vnd.oci.image.manifest.v1+json", "layers": []},
                     "application/vnd.oci.image.manifest.v1+json", False, id="oci-image"),
        pytest.param({"config": {}, "layers": []}, "", False, id="image-without-media-type"),
    ],
)
def test_media_type_and_index(document: dict[str, object], media_type: str, index: bool) -> None:
    assert media_type_of(document) == media_type
    assert is_index(document) is index
