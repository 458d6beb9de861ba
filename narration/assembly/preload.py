"""What the fork server that assembly's processes start from loads before it forks any:
assembly's modules and native libraries, so each process inherits them instead of loading
them as it starts (0.3-0.5 s apiece, on the path of a rebuild that has one piece to encode).
Importing a module by name is safe where preloading the build's own script would not be
(it would run again, should it lack a __main__ guard)."""

from narration.assembly import (
    audio,
    book,  # noqa: F401 - loading it (and the chapter work and driver it imports) is the point
)

audio.preload()
