"""The test tree itself: pytest imports test modules by their file name, so two with one name break collection."""

from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_test_modules_have_unique_file_names() -> None:
    names = Counter(path.name for folder in ("tests/unit", "tests/docker", "benchmarks") for path in (ROOT / folder).glob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []
