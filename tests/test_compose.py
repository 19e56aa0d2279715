"""SMS encoding, length and segments: the reference vectors, then the boundaries around them."""

from __future__ import annotations

import pytest

from reminders.sender.compose import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    GSM7_PART,
    LOOKALIKES,
    UCS2_PART,
    Composition,
    compose,
    is_gsm7,
)

EXTENSION = ["|", "^", "€", "{", "}", "[", "]", "~", "\\"]
NOT_GSM = ["Á", "Ú", "ú", "ç", "í", "Í", "ó", "Ó"]
FLAG_IT = "\U0001f1ee\U0001f1f9"  # 🇮🇹: two regional indicators, 4 code units
RAINBOW_FLAG = "\U0001f3f3\ufe0f\u200d\U0001f308"  # 🏳️‍🌈: 6 code units


def digits(count: int, start: int = 0) -> str:
    """``1234567890`` repeated, ``count`` characters from position ``start``.

    Twilio's emoji vectors let the emoji stand in for the first digit, so their digits start
    at "2" (``start=1``); that is why the reference's last part of row 6 holds "4".
    """
    return ("1234567890" * ((start + count) // 10 + 1))[start : start + count]


def units(part: str, encoding: str) -> int:
    """The size of one part, counted independently of the code under test."""
    if encoding == "UCS-2":
        return len(part.encode("utf-16-le")) // 2
    return sum(2 if char in "^{}\\[]~|€\f" else 1 for char in part)


def assert_well_formed(result: Composition) -> None:
    """The invariants every composition keeps, whatever the text."""
    assert "".join(result.parts) == result.text
    assert result.segments == len(result.parts)
    assert result.characters == sum(units(part, result.encoding) for part in result.parts)
    if result.segments > 1:
        limit = GSM7_PART if result.encoding == "GSM-7" else UCS2_PART
        assert all(0 < units(part, result.encoding) <= limit for part in result.parts)
    for part in result.parts:
        assert not part or not "\ud800" <= part[-1] <= "\udbff"  # no lone high surrogate


# Every row of /work/shared/reference/sms-segments.md: (row, text, encoding, segments).
VECTORS: list[tuple[str, str, str, int]] = [
    ("1", digits(160), "GSM-7", 1),
    ("2", digits(161), "GSM-7", 2),
    ("3", digits(307), "GSM-7", 3),
    ("4", "😜" + digits(68, 1), "UCS-2", 1),
    ("5", "😜" + digits(69, 1), "UCS-2", 2),
    ("6", "😜" + digits(133, 1), "UCS-2", 3),
    ("7", FLAG_IT + digits(66), "UCS-2", 1),
    ("8", FLAG_IT + digits(67), "UCS-2", 2),
    ("9", RAINBOW_FLAG + digits(64), "UCS-2", 1),
    ("10", RAINBOW_FLAG + digits(65), "UCS-2", 2),
    *[(f"11 {c}", c + digits(158, 1), "GSM-7", 1) for c in EXTENSION],
    *[(f"12 {c}", c + digits(159, 1), "GSM-7", 2) for c in EXTENSION],
    *[(f"13 {c}", c * 70, "UCS-2", 1) for c in NOT_GSM],
    *[(f"14 {c}", c * 71, "UCS-2", 2) for c in NOT_GSM],
    ("15", "😀" + "]" * 68, "UCS-2", 1),
    ("16", "😀" + "]" * 69, "UCS-2", 2),
    ("17", "e" + "\u0301" * 3 + "a" * 66, "UCS-2", 1),
    ("18", "e" + "\u0301" * 3 + "a" * 67, "UCS-2", 2),
    ("19", "\rabcde\r\n123", "GSM-7", 1),
    ("20", "A" * 161, "GSM-7", 2),
    ("21", "|" * 69 + "∞", "UCS-2", 1),
    ("22", "más", "UCS-2", 1),
]


@pytest.mark.parametrize(
    ("text", "encoding", "segments"), [v[1:] for v in VECTORS], ids=[v[0] for v in VECTORS]
)
def test_reference_vectors(text: str, encoding: str, segments: int) -> None:
    result = compose(text)
    assert result.text == text  # none of the vectors holds a look-alike
    assert (result.encoding, result.segments) == (encoding, segments)
    assert is_gsm7(text) == (encoding == "GSM-7")
    assert_well_formed(result)


def test_vector_3_last_part_holds_one_seven() -> None:
    assert compose(digits(307)).parts[-1] == "7"


def test_vector_6_last_part_holds_one_four() -> None:
    assert compose("😜" + digits(133, 1)).parts[-1] == "4"


def test_vectors_4_and_21_fill_a_single_ucs2_sms_exactly() -> None:
    assert compose("😜" + digits(68, 1)).characters == 70
    assert compose("|" * 69 + "∞").characters == 70  # extension characters cost 1 in UCS-2


def test_vector_11_counts_the_escape() -> None:
    assert compose("{" + digits(158, 1)).characters == 160
    assert compose("{" + digits(159, 1)).characters == 161


def test_vector_19_counts_crlf_as_two() -> None:
    assert compose("\rabcde\r\n123").characters == 11


def test_vector_20_splits_at_153() -> None:
    result = compose("A" * 161)
    assert result.parts == ("A" * 153, "A" * 8)


def test_vector_22_reports_the_accented_letter() -> None:
    assert compose("más").ucs2_characters == ("á",)


# The alphabet itself.


def test_the_alphabet_has_127_characters_and_the_extension_table_10() -> None:
    assert len(GSM7_BASIC) == 127  # 128 positions less the escape
    assert len(GSM7_EXTENSION) == 10
    assert not GSM7_BASIC & GSM7_EXTENSION


def test_capital_c_cedilla_is_gsm7_and_small_is_not() -> None:
    assert is_gsm7("Ç")
    assert compose("Ç").encoding == "GSM-7"
    result = compose("Ça va, garçon ç")
    assert result.encoding == "UCS-2"
    assert result.ucs2_characters == ("ç",)
    assert result.replaced == ()


def test_backtick_is_not_gsm7() -> None:
    assert not is_gsm7("`")


def test_form_feed_is_an_extension_character() -> None:
    assert compose("a\fb").characters == 4


def test_is_gsm7_of_empty_text() -> None:
    assert is_gsm7("")


def test_empty_text_is_one_empty_segment() -> None:
    result = compose("")
    assert (result.encoding, result.characters, result.segments, result.parts) == (
        "GSM-7",
        0,
        1,
        ("",),
    )


def test_ucs2_characters_are_distinct_and_in_order() -> None:
    result = compose("Дата: 😜 Да ∞", replace_lookalikes=False)
    assert result.ucs2_characters == ("Д", "а", "т", "😜", "∞")


def test_gsm7_has_no_ucs2_characters() -> None:
    assert compose("Hello [world] €5").ucs2_characters == ()


# Bulgarian.

BULGARIAN = "Часът ви е утре в 10:30"
# A typical clinic reminder: 104 characters in Cyrillic.
REMINDER = (
    "Здравейте, Мария! Напомняме Ви за час при д-р Петрова утре в 10:30 ч. "
    "За отказ се обадете на 0888123456."
)


def test_bulgarian_text_is_ucs2() -> None:
    result = compose(BULGARIAN)
    assert (result.encoding, result.characters, result.segments) == ("UCS-2", 23, 1)


def test_71_cyrillic_letters_take_two_segments() -> None:
    assert compose("ж" * 70).segments == 1
    result = compose("ж" * 71)
    assert result.segments == 2
    assert result.parts == ("ж" * 67, "ж" * 4)


def test_a_clinic_reminder_takes_two_segments_in_cyrillic_and_one_transliterated() -> None:
    assert len(REMINDER) == 104
    assert compose(REMINDER).segments == 2
    result = compose(REMINDER, transliterate=True)
    assert result.encoding == "GSM-7"
    assert result.segments == 1
    assert result.text.startswith("Zdraveyte, Maria! Napomnyame Vi za chas pri d-r Petrova")


def test_transliteration_comes_before_lookalikes() -> None:
    result = compose("„Щастие“ – утре", transliterate=True)
    assert result.text == '"Shtastie" - utre'
    assert result.encoding == "GSM-7"
    assert result.replaced == (("„", '"'), ("“", '"'), ("–", "-"))


def test_transliteration_is_off_by_default() -> None:
    assert compose(BULGARIAN).text == BULGARIAN


# Look-alikes.


def test_a_non_breaking_space_is_replaced() -> None:
    result = compose("Appointment at\u00a010:30")
    assert result.text == "Appointment at 10:30"
    assert result.encoding == "GSM-7"
    assert result.replaced == (("\u00a0", " "),)


def test_without_replacement_a_non_breaking_space_forces_ucs2() -> None:
    result = compose("Appointment at\u00a010:30", replace_lookalikes=False)
    assert result.text == "Appointment at\u00a010:30"
    assert result.encoding == "UCS-2"
    assert result.ucs2_characters == ("\u00a0",)
    assert result.replaced == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("„Здравей“ «hi» “hi”", '"Здравей" "hi" "hi"'),
        ("it’s ‘x’ ‚y′ don´t it`s", "it's 'x' 'y' don't it's"),
        ("a–b—c‒d−e‐f‑g", "a-b-c-d-e-f-g"),
        ("wait…", "wait..."),
        ("• one", "* one"),
        ("a\u2000b\u2005c\u200ad\u202fe\u205ff\u3000g", "a b c d e f g"),
        ("\ufeffzero\u200bwidth", "zerowidth"),
    ],
)
def test_lookalikes(text: str, expected: str) -> None:
    assert compose(text).text == expected


def test_replacements_are_distinct_and_in_order() -> None:
    result = compose("“a” “b” … “c”")
    assert result.replaced == (("“", '"'), ("”", '"'), ("…", "..."))


def test_replacements_are_applied_even_when_the_text_stays_ucs2() -> None:
    result = compose("Час – утре")
    assert result.text == "Час - утре"
    assert result.encoding == "UCS-2"
    assert result.replaced == (("–", "-"),)


def test_no_lookalike_is_gsm7_already_and_every_replacement_is() -> None:
    for original, replacement in LOOKALIKES.items():
        assert not is_gsm7(original), original
        assert is_gsm7(replacement), original


@pytest.mark.parametrize("char", ["\u0301", "\u200d", "\ufe0f", "ç", "Ç", "é", "€"])
def test_these_are_not_touched(char: str) -> None:
    assert compose(f"a{char}b").text == f"a{char}b"


def test_emoji_joiners_survive_so_vector_10_stays_two_segments() -> None:
    result = compose(RAINBOW_FLAG + digits(65))
    assert result.characters == 71
    assert RAINBOW_FLAG in result.parts[0]


def test_replacement_can_change_the_length() -> None:
    result = compose("a" * 158 + "…")
    assert result.characters == 161
    assert result.segments == 2


# Boundaries: parts never cut a character in two.


def test_an_extension_character_at_the_153rd_septet_moves_to_the_next_part() -> None:
    text = digits(152) + "€" + digits(20)
    result = compose(text)
    assert result.encoding == "GSM-7"
    assert result.parts[0] == digits(152)  # 152 septets; the 2-septet € would make 154
    assert result.parts[1].startswith("€")
    assert_well_formed(result)


def test_an_extension_character_that_fits_stays() -> None:
    text = digits(151) + "€" + digits(20)
    result = compose(text)
    assert result.parts[0] == digits(151) + "€"  # exactly 153 septets
    assert_well_formed(result)


def test_an_emoji_straddling_the_67th_unit_moves_to_the_next_part() -> None:
    text = "ж" * 66 + "😜" + "ж" * 10
    result = compose(text)
    assert result.parts == ("ж" * 66, "😜" + "ж" * 10)
    assert_well_formed(result)


def test_an_emoji_that_fits_stays() -> None:
    text = "ж" * 65 + "😜" + "ж" * 10
    result = compose(text)
    assert result.parts == ("ж" * 65 + "😜", "ж" * 10)


def test_a_surrogate_pair_held_as_two_code_points_is_kept_together() -> None:
    pair = "\ud83d\ude1c"  # 😜 as two halves, as text decoded with surrogatepass can hold it
    result = compose("ж" * 66 + pair + "ж" * 10)
    assert result.parts == ("ж" * 66, "😜" + "ж" * 10)
    assert_well_formed(result)


def test_a_lone_surrogate_forces_ucs2_and_is_reported() -> None:
    result = compose("abc\ud83d")
    assert result.encoding == "UCS-2"
    assert result.ucs2_characters == ("\ud83d",)


@pytest.mark.parametrize("length", [152, 153, 154, 159, 160, 161, 305, 306, 307, 460])
@pytest.mark.parametrize("filler", ["a", "€", "a€", "€a", "ab€"])
def test_gsm7_parts_respect_the_limits(length: int, filler: str) -> None:
    text = (filler * length)[:length]
    assert_well_formed(compose(text))


@pytest.mark.parametrize("length", [66, 67, 68, 69, 70, 71, 133, 134, 135, 201])
@pytest.mark.parametrize("filler", ["ж", "😜", "ж😜", "😜ж", "жж😜", "€ж"])
def test_ucs2_parts_respect_the_limits(length: int, filler: str) -> None:
    text = (filler * length)[:length]
    assert_well_formed(compose(text))
