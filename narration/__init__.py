"""narrate: offline multi-voice audiobooks published as a podcast."""

__version__ = "0.1.0"
