"""Bulgarian transliteration by the official system (Transliteration Act, 2009)."""

from __future__ import annotations

import pytest

from reminders.sender.translit import transliterate_bg

# The Act's table, lower case.
TABLE = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ж": "zh", "з": "z",
    "и": "i", "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p",
    "р": "r", "с": "s", "т": "t", "у": "u", "ф": "f", "х": "h", "ц": "ts", "ч": "ch",
    "ш": "sh", "щ": "sht", "ъ": "a", "ь": "y", "ю": "yu", "я": "ya",
}  # fmt: skip


def test_the_table_covers_the_bulgarian_alphabet() -> None:
    assert "".join(TABLE) == "абвгдежзийклмнопрстуфхцчшщъьюя"


@pytest.mark.parametrize(("cyrillic", "latin"), TABLE.items())
def test_every_lower_case_letter(cyrillic: str, latin: str) -> None:
    assert transliterate_bg(cyrillic) == latin


@pytest.mark.parametrize(("cyrillic", "latin"), TABLE.items())
def test_every_capital_letter_alone_is_capitalised(cyrillic: str, latin: str) -> None:
    assert transliterate_bg(cyrillic.upper()) == latin.capitalize()


@pytest.mark.parametrize(("cyrillic", "latin"), TABLE.items())
def test_every_capital_letter_in_an_all_caps_word_is_upper_case(cyrillic: str, latin: str) -> None:
    # "О" before and after keeps the letter inside an all-caps word and away from "ия" at the end.
    assert transliterate_bg(f"О{cyrillic.upper()}О") == f"O{latin.upper()}O"


@pytest.mark.parametrize(
    ("cyrillic", "latin"),
    [
        ("София", "Sofia"),
        ("Пловдив", "Plovdiv"),
        ("Шумен", "Shumen"),
        ("Щастие", "Shtastie"),
        ("Цветан", "Tsvetan"),
        ("Юлия", "Yulia"),
        ("Жеравна", "Zheravna"),
        ("Хасково", "Haskovo"),
        ("Ябълка", "Yabalka"),
        ("Йордан", "Yordan"),
        ("Мария", "Maria"),
        ("Ямбол", "Yambol"),
        ("Ъгъл", "Agal"),
        ("Джамбазов", "Dzhambazov"),
        ("Гьоте", "Gyote"),
        ("ЖИВКОВ", "ZHIVKOV"),
        ("Ще", "Shte"),
        ("ЩЕ", "SHTE"),
        ("ЮЛИЯ", "YULIA"),
        ("ия", "ia"),
        ("Ия", "Ia"),
    ],
)
def test_words(cyrillic: str, latin: str) -> None:
    assert transliterate_bg(cyrillic) == latin


@pytest.mark.parametrize(
    ("cyrillic", "latin"),
    [
        ("Илияна", "Iliyana"),  # "ия" inside a word: я is "ya"
        ("Илиянa", "Iliyana"),  # the same with a Latin "a" at the end: still inside the word
        ("сияние", "siyanie"),
        ("София-Град", "Sofia-Grad"),  # a hyphen ends the word
        ("Мария,", "Maria,"),
        ("Мария2", "Maria2"),
        ("лятото", "lyatoto"),
    ],
)
def test_ia_only_at_the_end_of_a_word(cyrillic: str, latin: str) -> None:
    assert transliterate_bg(cyrillic) == latin


@pytest.mark.parametrize(
    ("cyrillic", "latin"),
    [
        ("България", "Bulgaria"),
        ("БЪЛГАРИЯ", "BULGARIA"),
        ("Република България", "Republika Bulgaria"),
        # The exception is for the name of the state only; derived words follow the table.
        ("български", "balgarski"),
        ("Българин", "Balgarin"),
        ("БЪЛГАРСКИ", "BALGARSKI"),
    ],
)
def test_the_name_of_the_state_is_the_one_exception(cyrillic: str, latin: str) -> None:
    assert transliterate_bg(cyrillic) == latin


def test_a_sentence() -> None:
    assert (
        transliterate_bg("Часът ви е утре в 10:30 при д-р Петрова.")
        == "Chasat vi e utre v 10:30 pri d-r Petrova."
    )


def test_an_all_caps_sentence() -> None:
    assert transliterate_bg("ЩЕ ДОЙДЕ ЛИ МАРИЯ?") == "SHTE DOYDE LI MARIA?"


def test_a_single_capital_is_a_capitalised_word() -> None:
    assert transliterate_bg("Я") == "Ya"


@pytest.mark.parametrize(
    "text",
    ["", "10:30, 15.12.2026", "Dr. Smith @ Clinic #3 (€20)", "ñ é Ç 😜", "Ivan\nPetrova\t!"],
)
def test_non_cyrillic_passes_through(text: str) -> None:
    assert transliterate_bg(text) == text


def test_other_cyrillic_letters_pass_through() -> None:
    # Russian and Serbian letters are outside the Bulgarian system; they are left for the
    # caller to see (compose reports them as forcing UCS-2) rather than guessed at.
    assert transliterate_bg("ыэёђ") == "ыэёђ"


def test_the_pronoun_i_with_grave() -> None:
    assert transliterate_bg("Кажете ѝ") == "Kazhete i"


def test_stress_marks_are_dropped() -> None:
    assert transliterate_bg("Мари\u0301я") == "Maria"
    assert transliterate_bg("café\u0301") == "café\u0301"  # only after Cyrillic letters
