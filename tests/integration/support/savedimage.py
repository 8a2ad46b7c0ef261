"""Reading every layer of an image saved with `docker save` (OCI or legacy layout)."""

import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LayerFile:
    """One entry of one layer: its path (without a leading `./` or `/`) and its content."""

    blob: str
    path: str
    content: bytes


def layer_files(saved: Path) -> Iterator[LayerFile]:
    """Every entry of every layer blob in the saved tarball, compressed or not.

    Blobs that are not tar archives (manifests, configs) come out as one entry whose
    path is empty, so a content check covers them too.
    """
    with tarfile.open(saved) as outer:
        for blob in outer:
            if not blob.isfile():
                continue
            data = outer.extractfile(blob)
            assert data is not None
            try:
                layer = tarfile.open(fileobj=data, mode="r:*")
            except tarfile.ReadError:
                data.seek(0)
                yield LayerFile(blob.name, "", data.read())
                continue
            with layer:
                for entry in layer:
                    content = b""
                    if entry.isfile():
                        member = layer.extractfile(entry)
                        assert member is not None
                        content = member.read()
                    yield LayerFile(blob.name, entry.name.removeprefix("./").lstrip("/"), content)
