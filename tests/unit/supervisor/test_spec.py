import pytest

from supervisor import ChildSpec, Process, Restart


def test_defaults_and_repr() -> None:
    spec = ChildSpec("writer", Process)
    assert spec.restart is Restart.PERMANENT
    assert spec.shutdown == 5.0
    assert repr(spec) == "ChildSpec('writer', permanent, shutdown=5s)"
    assert repr(ChildSpec("x", Process, Restart.TRANSIENT, 0.5)) == (
        "ChildSpec('x', transient, shutdown=0.5s)"
    )


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"id": ""}, ValueError),
        ({"shutdown": -1.0}, ValueError),
        ({"restart": "permanent"}, TypeError),
        ({"start": None}, TypeError),
    ],
)
def test_invalid_specs_are_refused(kwargs: dict[str, object], error: type[Exception]) -> None:
    args: dict[str, object] = {"id": "a", "start": Process, **kwargs}
    with pytest.raises(error):
        ChildSpec(**args)  # type: ignore[arg-type]


def test_spec_is_frozen() -> None:
    spec = ChildSpec("a", Process)
    with pytest.raises(AttributeError):
        spec.id = "b"  # type: ignore[misc]
