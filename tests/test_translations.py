"""The interface in French, Spanish and Arabic: complete catalogs, compiled, used by the pages."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from flask.testing import FlaskClient

from app.config import LANGUAGES
from app.models import Role

TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"
PLACEHOLDER = re.compile(r"%\([a-z_]+\)[sd]")
TRANSLATED = [language for language in LANGUAGES if language != "en"]


def catalog(language: str):
    with (TRANSLATIONS / language / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        return read_po(handle)


def test_the_template_holds_every_string_of_the_code() -> None:
    """messages.pot is extracted from app/: a string added without re-extracting fails here."""
    from babel.messages.extract import extract_from_dir
    from babel.messages.frontend import parse_mapping_cfg

    template = {m.id for m in read_po((TRANSLATIONS / "messages.pot").open("rb")) if m.id}
    with (TRANSLATIONS.parent / "babel.cfg").open() as config:
        method_map, options_map = parse_mapping_cfg(config)
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "_l": None, "lazy_gettext": None}
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(TRANSLATIONS.parent), method_map, options_map, keywords=keywords
    ):
        found.add(message if isinstance(message, str) else tuple(message))
    missing = sorted(str(m) for m in found - template)
    assert not missing, f"run the extraction in README's Translations section: {missing[:10]}"


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_message_is_translated_with_its_placeholders(language: str) -> None:
    template = {m.id for m in read_po((TRANSLATIONS / "messages.pot").open("rb")) if m.id}
    translated = catalog(language)
    problems = []
    for message in translated:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if message.fuzzy or not all(strings):
            problems.append(f"untranslated or fuzzy: {ids[0]!r}")
            continue
        named = set(PLACEHOLDER.findall(ids[-1]))
        for string in strings:
            extra = set(PLACEHOLDER.findall(string)) - named - set(PLACEHOLDER.findall(ids[0]))
            if extra:
                problems.append(f"{ids[0]!r}: unknown placeholders {sorted(extra)}")
        if len(ids) == 1 and not named <= set(PLACEHOLDER.findall(strings[0])):
            problems.append(f"{ids[0]!r}: lost placeholders in {strings[0]!r}")
    assert template <= {m.id for m in translated if m.id}, "catalog not updated from template"
    assert not problems, problems[:10]


def test_arrows_point_the_reading_way_in_right_to_left_languages() -> None:
    """Arrows "← Back" and "Next →" point against and with the reading direction: in a right-to-left
    language that is → and ← (arrows are not mirrored by the bidi algorithm)."""
    from app.config import RTL_LANGUAGES

    swap = str.maketrans("←→", "→←")
    for language in sorted(RTL_LANGUAGES):
        for message in catalog(language):
            if isinstance(message.id, str) and re.search("[←→]", message.id):
                arrows = "".join(re.findall("[←→]", message.string))
                assert arrows == "".join(re.findall("[←→]", message.id)).translate(swap), (
                    language,
                    message.id,
                    message.string,
                )


@pytest.mark.parametrize("language", TRANSLATED)
def test_catalogs_are_compiled_by_the_install_step(language: str) -> None:
    compiled = TRANSLATIONS / language / "LC_MESSAGES" / "messages.mo"
    source = compiled.with_suffix(".po")
    assert compiled.exists(), "scripts/install compiles the catalogs"
    assert compiled.stat().st_mtime >= source.stat().st_mtime - 1, "stale .mo: run scripts/install"


@pytest.mark.parametrize(
    ("language", "direction", "dashboard"),
    [("fr", "ltr", "Tableau de bord"), ("es", "ltr", "Panel"), ("ar", "rtl", "لوحة")],
)
def test_pages_speak_the_chosen_language(
    client: FlaskClient, login_as: Callable, language: str, direction: str, dashboard: str
) -> None:
    token = login_as(client, Role.VIEWER)
    response = client.post(
        "/tasks/preferences", data={"language": language, "csrf_token": token, "next": "/tasks/"}
    )
    assert response.status_code == 303
    page = client.get("/tasks/executions/").text
    assert f'<html lang="{language}" dir="{direction}">' in page
    assert dashboard in page, "the navigation is translated"
    assert "Executions</a>" not in page


def test_an_unknown_language_is_refused_with_a_message(
    client: FlaskClient, login_as: Callable
) -> None:
    token = login_as(client, Role.VIEWER)
    response = client.post(
        "/tasks/preferences",
        data={"language": "xx", "csrf_token": token, "next": "/tasks/"},
        follow_redirects=True,
    )
    assert response.status_code == 200 and "Unknown language: xx" in response.text
    assert '<html lang="en" dir="ltr">' in response.text
