"""What step authors import: `from workbench import ...`."""

import workbench


def test_the_public_names_are_exported_and_importable() -> None:
    assert sorted(workbench.__all__) == [
        "ApiRequest", "ApiResponse", "Context", "Registry", "RetryPolicy", "Settings", "StepError",
        "StepLogger", "UndeclaredEmitError", "discover",
    ]  # fmt: skip
    for name in workbench.__all__:
        assert getattr(workbench, name) is not None
