"""narrate: offline multi-voice audiobooks published as a podcast."""

__version__ = "0.1.0"

#: The engine a voice is read by when voices.yaml names none (espeak-ng, through pyttsx3).
#: Here, not in model.py, so that the command line knows it without loading the models
#: (a Ctrl-C as narrate starts must find its handlers installed).
DEFAULT_ENGINE = "pyttsx3"
