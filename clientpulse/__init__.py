"""clientpulse: the command-line shell around schemas/, producers/, streams/ and sinks/."""

__version__ = "0.1.0"
