"""The runbooks' own typed reports: the builder entry of `invoke doctor` is BuilderInfo.as_dict(), field for field."""

from delivery.images.builder import ENGINE, LAYOUT, BuilderInfo
from delivery.ui.reports import BuilderEntry, DoctorResult, builder_entry


def test_the_builder_entry_has_exactly_the_fields_its_type_names() -> None:
    info = BuilderInfo("ci", "docker-container", "running", "v0.18.2", "28.0.1", "containerd", LAYOUT, "linux/arm64",
                       ("linux/arm64", "linux/amd64"))
    entry = builder_entry(info)
    assert entry == info.as_dict()
    assert set(entry) == set(BuilderEntry.__annotations__)
    assert (entry["path"], entry["native"], entry["reproducible"], entry["loses"]) == (LAYOUT, "linux/arm64", True, None)


def test_the_engine_path_entry_says_what_it_loses() -> None:
    entry = builder_entry(BuilderInfo("default", "docker", "running", "bundled with Engine 26.1.5", "26.1.5", "overlay2", ENGINE))
    assert entry["reproducible"] is False and entry["loses"] and entry["to_reproducible"]


def test_a_doctor_result_names_only_known_fields() -> None:
    assert set(DoctorResult.__annotations__) == {"builder", "registry", "platforms", "buildable", "platforms_problem"}
