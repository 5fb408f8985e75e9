from tests.support.figures import figures, pytest_terminal_summary  # noqa: F401 - fixture, hook
