"""voices.yaml and podcast.yaml validation: every problem at once, with file and line, and a
refused build leaves output/ untouched (exit code 2)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from narration.cli import main
from narration.config import load_podcast, load_voices
from narration.errors import ConfigError
from narration.synthesis.engines import settings_catalog

from .support import tree_digest

GOOD = """\
voices:
  narrator:
    voice: gmw/en-us
    rate: 170
  serge:
    voice: gmw/en-gb-scotland
    variant: m7
default: narrator
rules:
  - voice: serge
    kind: quote
    author: serge
"""


def _problems(text: str, tmp_path: Path, ids: list[str] | None = None) -> list[str]:
    path = tmp_path / "voices.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_voices(path, catalog=settings_catalog(ids))
    return [str(p) for p in info.value.problems]


def test_good_config_loads(tmp_path: Path) -> None:
    path = tmp_path / "voices.yaml"
    path.write_text(GOOD, encoding="utf-8")
    config = load_voices(path, catalog=settings_catalog(["gmw/en-us", "gmw/en-gb-scotland"]))
    assert config.voices["serge"].engine_voice == "gmw/en-gb-scotland+m7"
    assert config.pauses.sentence == 350 and config.audio.loudness == -19


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    (msg,) = _problems("voices:\n  narrator:\n    voice: [gmw/en-us\ndefault: narrator\n", tmp_path)
    assert re.search(r"voices\.yaml:\d+: YAML syntax error", msg)


def test_unknown_key_suggests_closest(tmp_path: Path) -> None:
    (msg,) = _problems(GOOD.replace("    rate: 170", "    rte: 170"), tmp_path)
    assert "voices.yaml:4: voices.narrator: unknown key 'rte' (did you mean 'rate'?)" in msg


def test_undefined_voice_in_rule(tmp_path: Path) -> None:
    (msg,) = _problems(GOOD.replace("  - voice: serge", "  - voice: sergei"), tmp_path)
    assert "voices.yaml:10: rules[0].voice: voice 'sergei' is not defined" in msg
    assert "did you mean 'serge'?" in msg


def test_a_voice_named_as_the_casts_character_voices_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace("  serge:", '  "character:serge":').replace(
        "voice: serge", 'voice: "character:serge"'
    )
    (msg,) = _problems(text, tmp_path)
    assert "voices.yaml:5: voices.character:serge: character:<name> names the voices" in msg


def test_unknown_engine_voice_lists_close_matches(tmp_path: Path) -> None:
    text = GOOD.replace("gmw/en-gb-scotland", "gmw/en-gb-scotlnd")
    (msg,) = _problems(text, tmp_path, ["gmw/en-us", "gmw/en-gb-scotland", "gmw/en"])
    assert "voices.yaml:6: voices.serge.voice: the engine has no voice 'gmw/en-gb-scotlnd'" in msg
    assert "close: gmw/en-gb-scotland" in msg


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("    rate: 5000", "voices.narrator.rate: must be between 80 and 450 (got 5000)"),
        (
            "    rate: 170\n    pitch: -3",
            "voices.narrator.pitch: must be between 0 and 100 (got -3)",
        ),
        (
            "    rate: 170\n    volume: 1.5",
            "voices.narrator.volume: must be between 0.0 and 1.0 (got 1.5)",
        ),
    ],
)
def test_out_of_range(tmp_path: Path, line: str, expected: str) -> None:
    (msg,) = _problems(GOOD.replace("    rate: 170", line), tmp_path)
    assert expected in msg


def test_bad_regex(tmp_path: Path) -> None:
    (msg,) = _problems(GOOD.replace("author: serge", "author: /serge(/"), tmp_path)
    assert "voices.yaml:12: rules[0].author: regular expression /serge(/ does not compile" in msg


def test_all_problems_at_once(tmp_path: Path) -> None:
    text = (
        GOOD.replace("    rate: 170", "    rte: 170\n    pitch: 400")
        .replace("default: narrator", "default: nobody")
        .replace("author: serge", "author: /(/")
    )
    msgs = _problems(text, tmp_path)
    assert len(msgs) == 4, msgs
    lines = [int(re.match(r".*voices\.yaml:(\d+):", m).group(1)) for m in msgs]
    assert lines == sorted(lines)


def test_podcast_yaml_unknown_key(tmp_path: Path) -> None:
    path = tmp_path / "podcast.yaml"
    path.write_text("title: A Book\nexplict: true\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_podcast(path)
    assert "podcast.yaml:2: unknown key 'explict' (did you mean 'explicit'?)" in str(info.value)


def test_podcast_yaml_scheduler_must_be_an_address(tmp_path: Path) -> None:
    path = tmp_path / "podcast.yaml"
    path.write_text("title: A Book\nm4b: true\nscheduler: nonsense\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_podcast(path)
    assert "podcast.yaml:3: scheduler: 'nonsense' is not a Dask scheduler address" in str(
        info.value
    )
    for good in ("tcp://10.0.0.5:8786", "localhost:8786", "tls://[::1]:8786"):
        path.write_text(f"scheduler: {good}\n", encoding="utf-8")
        assert load_podcast(path).scheduler == good


def test_missing_podcast_yaml_gives_defaults(tmp_path: Path) -> None:
    config = load_podcast(tmp_path / "podcast.yaml")
    assert config.language == "en" and config.category == "Arts" and config.explicit is False


BROKEN = {
    "syntax": (
        "default: narrator\nvoices: {narrator: {voice: gmw/en-us\n",
        r"voices\.yaml:\d+: YAML syntax error",
    ),
    "unknown-key": (
        GOOD.replace("    rate: 170", "    rtae: 170"),
        r"voices\.yaml:4: voices\.narrator: unknown key 'rtae' \(did you mean 'rate'\?\)",
    ),
    "undefined-voice": (
        GOOD.replace("  - voice: serge", "  - voice: ghost"),
        r"voices\.yaml:10: rules\[0\]\.voice: voice 'ghost' is not defined",
    ),
    "engine-voice": (
        GOOD.replace("gmw/en-gb-scotland", "gmw/en-gb-scotlnd"),
        r"voices\.yaml:6: voices\.serge\.voice: the engine has no voice 'gmw/en-gb-scotlnd' \(close: gmw/en-gb-scotland",
    ),
    "range": (
        GOOD.replace("rate: 170", "rate: 9"),
        r"voices\.yaml:4: voices\.narrator\.rate: must be between 80 and 450",
    ),
    "regex": (
        GOOD.replace("author: serge", "author: /[/"),
        r"voices\.yaml:12: rules\[0\]\.author: regular expression",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_voices_yaml_builds_nothing(make_project, case: str) -> None:
    text, pattern = BROKEN[case]
    root = make_project()
    (root / "voices.yaml").write_text(text, encoding="utf-8")
    out = root / "output"
    out.mkdir()
    (out / "feed.xml").write_text("<rss>previous build</rss>", encoding="utf-8")
    before = tree_digest(out)
    result = CliRunner().invoke(main, ["build", "--project", str(root), "--quiet"])
    assert result.exit_code == 2, result.output
    assert re.search(pattern, result.output), result.output
    assert "Traceback" not in result.output
    assert tree_digest(out) == before


def test_broken_config_leaves_no_output_dir(make_project) -> None:
    root = make_project()
    (root / "voices.yaml").write_text("voices: {}\ndefault: x\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["build", "--project", str(root), "--quiet"])
    assert result.exit_code == 2
    assert "voices.yaml" in result.output
    assert not (root / "output").exists()


def test_rule_that_matches_nothing_is_a_warning(make_project) -> None:
    root = make_project()
    text = (root / "voices.yaml").read_text(encoding="utf-8")
    text = text.replace(
        "rules:\n", "rules:\n  - name: tolstoy\n    author: tolstoy\n    voice: serge\n", 1
    )
    (root / "voices.yaml").write_text(text, encoding="utf-8")
    result = CliRunner().invoke(main, ["cast", "--project", str(root)])
    assert result.exit_code == 0, result.output
    assert re.search(
        r"Warning: .*voices\.yaml:\d+: rules\[0\] tolstoy matches no segment", result.output
    )
    assert not (root / "output").exists()


_yaml_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "voice",
                    "rate",
                    "pitch",
                    "voices",
                    "rules",
                    "default",
                    "kind",
                    "author",
                    "narrator",
                    "x",
                    "lexicon",
                    "announce",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(doc=_yaml_values | st.text(max_size=80))
def test_loader_never_crashes(tmp_path: Path, doc: object) -> None:
    """Whatever the file holds: a valid config or a ConfigError, never another exception."""
    import yaml

    path = tmp_path / "voices.yaml"
    text = doc if isinstance(doc, str) else yaml.safe_dump(doc)
    path.write_text(text, encoding="utf-8")
    try:
        load_voices(path, catalog=settings_catalog(["gmw/en-us"]))
    except ConfigError as exc:
        assert str(exc)
    ppath = tmp_path / "podcast.yaml"
    ppath.write_text(text, encoding="utf-8")
    try:
        load_podcast(ppath)
    except ConfigError as exc:
        assert str(exc)


# --------------------------------------------------------------------------- engines per voice

KOKORO_CAST = """\
voices:
  narrator:
    voice: gmw/en-us
  serge:
    engine: kokoro
    voice: bm_george
    speed: 0.9
  kollontai:
    engine: kokoro
    voice: {bf_emma: 0.7, bf_isabella: 0.3}
default: narrator
lexicon:
  Kollontai: {kokoro: /kəlˈɒntaɪ/, pyttsx3: Kolontai}
  Kolontay: Kollontai
"""


def _catalog(installed: bool = True):
    """The engines' own catalogs, espeak-ng's cut down to one voice and one variant."""
    from narration.config import EngineCatalog
    from narration.synthesis.engines import KokoroEngine, Pyttsx3Engine
    from narration.synthesis.engines.kokoro import catalogue

    def catalog(engine: str) -> EngineCatalog:
        if engine == "pyttsx3":
            return EngineCatalog(
                voices=frozenset({"gmw/en-us"}),
                variants=frozenset({"m3"}),
                settings=Pyttsx3Engine(),
            )
        if engine == "kokoro" and installed:  # its voices ship with narrate: no extra needed
            return EngineCatalog(
                voices=frozenset(catalogue()),
                settings=KokoroEngine,
                ignore_case=KokoroEngine.ignore_case,
                default_voice=KokoroEngine.default_voice,
                blends=KokoroEngine.blends,
                phonemes=KokoroEngine.phonemes,
            )
        if engine == "kokoro":
            return EngineCatalog(unavailable="the Kokoro engine is not installed: make kokoro")
        return EngineCatalog(unavailable=f"unknown engine '{engine}' (available: kokoro, pyttsx3)")

    return catalog


def _kokoro_problems(text: str, tmp_path: Path, installed: bool = True) -> list[str]:
    path = tmp_path / "voices.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_voices(path, catalog=_catalog(installed))
    return [str(p) for p in info.value.problems]


def test_kokoro_voices_blends_and_per_engine_lexicon_load(tmp_path: Path) -> None:
    from narration.model import PHONEMES_CLOSE, PHONEMES_OPEN

    path = tmp_path / "voices.yaml"
    path.write_text(KOKORO_CAST, encoding="utf-8")
    config = load_voices(path, catalog=_catalog())
    assert config.engines == ["pyttsx3", "kokoro"]
    assert config.voices["serge"].engine_voice == "bm_george"
    assert config.voices["kollontai"].engine_voice == "bf_emma*0.7+bf_isabella*0.3"
    assert config.lexicon_for("serge")["Kollontai"] == f"{PHONEMES_OPEN}kəlˈɒntaɪ{PHONEMES_CLOSE}"
    assert config.lexicon_for("narrator")["Kollontai"] == "Kolontai"
    assert config.lexicon_for("narrator")["Kolontay"] == "Kollontai"


def test_each_engine_keeps_its_own_settings(tmp_path: Path) -> None:
    text = KOKORO_CAST.replace("    speed: 0.9", "    speed: 0.9\n    pitch: 40\n    rate: 150")
    text = text.replace("    voice: gmw/en-us\n", "    voice: gmw/en-us\n    speed: 1.2\n")
    problems = _kokoro_problems(text, tmp_path)
    assert any(
        p.endswith(
            "voices.yaml:4: voices.narrator.speed: pyttsx3 voices have no speed; set rate (words a minute)"
        )
        for p in problems
    )
    assert any(
        p.endswith("voices.yaml:9: voices.serge.pitch: kokoro voices have no pitch")
        for p in problems
    )
    assert any(
        "voices.serge.rate: kokoro voices have no rate; set speed (0.5-2)" in p for p in problems
    )


def test_an_engine_checks_its_own_settings(tmp_path: Path) -> None:
    """config knows no engine's settings: the engine's catalog carries the engine, which
    says what its voices lack, in its own words."""
    from types import MappingProxyType

    from narration.config import EngineCatalog
    from narration.synthesis.engines import Engine

    class Paced(Engine):
        name = "paced"
        settings = frozenset({"rate"})
        substitutes = MappingProxyType({"pitch": "rate (words a minute)"})

    path = tmp_path / "voices.yaml"
    path.write_text(
        "voices:\n  narrator:\n    engine: paced\n    voice: x\n    rate: 150\n"
        "    pitch: 40\n    speed: 1.2\ndefault: narrator\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_voices(path, catalog=lambda engine: EngineCatalog(settings=Paced()))
    assert [str(p).split("voices.yaml:", 1)[1] for p in info.value.problems] == [
        "6: voices.narrator.pitch: paced voices have no pitch; set rate (words a minute)",
        "7: voices.narrator.speed: paced voices have no speed",
    ]
    assert load_voices(path, catalog=lambda engine: EngineCatalog()).voices["narrator"].rate == 150


def test_unknown_kokoro_voice_in_a_blend_and_bad_weight(tmp_path: Path) -> None:
    text = KOKORO_CAST.replace("{bf_emma: 0.7, bf_isabella: 0.3}", "{bf_ema: 0.7, bf_isabella: 0}")
    problems = _kokoro_problems(text, tmp_path)
    assert any(
        "voices.kollontai.voice: kokoro has no voice 'bf_ema' (close: bf_emma" in p
        for p in problems
    )
    assert any("blend weight of 'bf_isabella' must be above 0 (got 0)" in p for p in problems)


def test_espeak_voices_do_not_blend_nor_take_phonemes(tmp_path: Path) -> None:
    text = KOKORO_CAST.replace("    voice: gmw/en-us\n", "    voice: {gmw/en-us: 1}\n")
    text = text.replace("pyttsx3: Kolontai", "pyttsx3: /kolontai/")
    problems = _kokoro_problems(text, tmp_path)
    assert any(
        p.endswith(
            "voices.yaml:3: voices.narrator.voice: pyttsx3 voices cannot be blended; name one voice"
        )
        for p in problems
    )
    assert any(
        "lexicon.Kollontai.pyttsx3: pyttsx3 takes a respelling, not phonemes" in p for p in problems
    )


def test_speed_out_of_range_and_unknown_engine(tmp_path: Path) -> None:
    text = KOKORO_CAST.replace("speed: 0.9", "speed: 3").replace(
        "  narrator:\n    voice: gmw/en-us", "  narrator:\n    engine: festival\n    voice: x"
    )
    problems = _kokoro_problems(text, tmp_path)
    assert any("voices.serge.speed: must be between 0.5 and 2.0 (got 3)" in p for p in problems)
    assert any(
        "voices.narrator.engine: unknown engine 'festival' (available: kokoro, pyttsx3)" in p
        for p in problems
    )


def test_kokoro_voice_without_the_extra_names_the_install_command(tmp_path: Path) -> None:
    """One line per Kokoro voice, and nothing about the lexicon's Kokoro phonemes."""
    problems = _kokoro_problems(KOKORO_CAST, tmp_path, installed=False)
    assert [p.split("voices.yaml:", 1)[1] for p in problems] == [
        "5: voices.serge.engine: the Kokoro engine is not installed: make kokoro",
        "9: voices.kollontai.engine: the Kokoro engine is not installed: make kokoro",
    ]


def test_kokoro_ids_match_exactly_and_weights_are_finite(tmp_path: Path) -> None:
    text = KOKORO_CAST.replace("voice: bm_george", "voice: BM_George").replace(
        "bf_isabella: 0.3", "bf_isabella: .nan"
    )
    problems = _kokoro_problems(text, tmp_path)
    assert any("voices.serge.voice: kokoro has no voice 'BM_George'" in p for p in problems)
    assert any("blend weight of 'bf_isabella' must be above 0 (got nan)" in p for p in problems)


def test_a_tiny_blend_weight_survives_the_round_trip(tmp_path: Path) -> None:
    from narration.synthesis.engines.kokoro import parse_blend

    text = KOKORO_CAST.replace("bf_isabella: 0.3", "bf_isabella: 0.00001")
    path = tmp_path / "voices.yaml"
    path.write_text(text, encoding="utf-8")
    config = load_voices(path, catalog=_catalog())
    assert parse_blend(config.voices["kollontai"].engine_voice) == [
        ("bf_emma", 0.7),
        ("bf_isabella", 0.00001),
    ]


def test_build_with_kokoro_voice_and_no_extra_is_one_line_per_voice(
    make_project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on an espeak-only install: the real build's checks, with the extra reported missing."""
    from narration.synthesis.engines import kokoro

    monkeypatch.setattr(kokoro, "missing_packages", lambda: ["onnxruntime", "kokoro_onnx"])
    root = make_project()
    from .support import REPO

    (root / "voices.kokoro.yaml").write_text(
        (REPO / "voices.kokoro.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    result = CliRunner().invoke(
        main, ["build", "-p", str(root), "--voices", "voices.kokoro.yaml", "--quiet"]
    )
    assert result.exit_code == 2
    lines = [line.strip() for line in result.output.strip().splitlines()]
    assert lines[0] == "Error: 4 problems:"
    assert all(
        "engine: the Kokoro engine is not installed (onnxruntime, kokoro_onnx missing): "
        "pip install -e '.[kokoro]' (or: make kokoro)" in line
        for line in lines[1:]
    )
    assert not (root / "output").exists()


def test_the_seeds_kokoro_cast_gives_four_distinct_kokoro_voices(tmp_path: Path) -> None:
    from .support import REPO

    config = load_voices(REPO / "voices.kokoro.yaml", catalog=_catalog())
    voices = config.voices
    assert set(voices) == {"narrator", "kollontai", "serge", "statement"}
    assert {v.engine for v in voices.values()} == {"kokoro"}
    assert len({v.engine_voice for v in voices.values()}) == 4
    plain = load_voices(REPO / "voices.yaml", catalog=settings_catalog())
    assert config.rules == plain.rules and config.announce == plain.announce


# --------------------------------------------------------------------------- YAML's own traps


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "podcast.yaml",
            "title: X\npublished: 2026-13-45\n",
            "podcast.yaml:2: published: Input should be a valid date or datetime, month value "
            "is outside expected range of 1-12 (got '2026-13-45')",
        ),
        (
            "voices.yaml",
            GOOD.replace("    rate: 170", "    rate: 170\n    label: 2026-02-30"),
            None,  # a date-shaped label is just text
        ),
    ],
)
def test_a_date_shaped_value_is_checked_not_a_traceback(
    make_project, name: str, text: str, expected: str | None
) -> None:
    root = make_project()
    (root / name).write_text(text, encoding="utf-8")
    result = CliRunner().invoke(main, ["cast", "-p", str(root)])
    assert "Traceback" not in result.output and not isinstance(result.exception, ValueError)
    if expected is None:
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert line.startswith("Error: ") and line.endswith(expected), line


def test_real_dates_still_parse(tmp_path: Path) -> None:
    path = tmp_path / "podcast.yaml"
    path.write_text("published: 2026-11-23\n", encoding="utf-8")
    assert str(load_podcast(path).published) == "2026-11-23"


def test_a_key_given_twice_names_both_lines(tmp_path: Path) -> None:
    text = GOOD.replace("  serge:\n", "  narrator:\n    voice: gmw/en-gb\n  serge:\n").replace(
        "default: narrator\n", "default: narrator\ndefault: serge\n"
    )
    problems = _problems(text, tmp_path)
    assert [p.split("voices.yaml:", 1)[1] for p in problems] == [
        "5: 'narrator' is given twice, on lines 2 and 5; keep one",
        "11: 'default' is given twice, on lines 10 and 11; keep one",
    ]
    podcast = tmp_path / "podcast.yaml"
    podcast.write_text("title: A\nauthor: B\ntitle: C\n", encoding="utf-8")
    with pytest.raises(
        ConfigError, match=r"podcast\.yaml:3: 'title' is given twice, on lines 1 and 3"
    ):
        load_podcast(podcast)
