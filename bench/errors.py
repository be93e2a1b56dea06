"""How a measurement fails, and how the whole run stops."""


class BenchError(Exception):
    """One measurement failed; the run goes on with the others and exits non-zero."""


class Abort(BaseException):
    """The run's time is up, or it was told to stop: unwind through every ``finally``."""
