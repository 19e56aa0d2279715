"""The two policies every new account starts with, as the migrations left the first account's.

A test checks that these equal what the migrations seed, so the two cannot drift apart. The
bill policy asks for no answer: ``replies`` and ``reply_ack`` are left out (None).
"""

from __future__ import annotations

from typing import Any

DEFAULT_POLICIES: list[dict[str, Any]] = [
    {
        "name": "appointment",
        "description": "The day before at 18:00, and 2 hours before.",
        "steps": [
            {
                "offset": "-P1D",
                "at": "18:00",
                "template": '{% if lang == "en" %}Reminder: {{ title }} {{ when }}{% if location '
                "%}, {{ location }}{% endif %}. Reply 1 to confirm, 2 to cancel.{% else %}"
                "Напомняне: {{ title }} {{ when }}{% if location %}, {{ location }}{% endif %}. "
                "Отговорете 1 за потвърждение, 2 за отказ.{% endif %}",
                "kind": None,
            },
            {
                "offset": "-PT2H",
                "at": None,
                "template": '{% if lang == "en" %}Reminder: {{ title }} {{ when }}{% if location '
                "%}, {{ location }}{% endif %}.{% else %}Напомняне: {{ title }} {{ "
                "when }}{% if location %}, {{ location }}{% endif %}.{% endif %}",
                "kind": None,
            },
        ],
        "replies": {
            "confirm": ["1", "ДА", "DA", "YES", "Y", "OK"],
            "cancel": ["2", "НЕ", "NE", "NO", "N"],
        },
        "reply_ack": {
            "confirm": '{% if lang == "en" %}Thank you, {{ title }} {{ when }} is confirmed.'
            "{% else %}Благодарим! {{ title }} {{ when }} е потвърдено.{% endif %}",
            "cancel": '{% if lang == "en" %}{{ title }} {{ when }} is cancelled. Thank you for '
            "letting us know.{% else %}{{ title }} {{ when }} е отменено. Благодарим, че ни "
            "уведомихте.{% endif %}",
        },
    },
    {
        "name": "bill",
        "description": "3 days before and on the due day at 10:00; overdue notices 3 and 10 days "
        "after.",
        "steps": [
            {
                "offset": "-P3D",
                "at": "10:00",
                "template": '{% if lang == "en" %}{{ title }}{% if amount %} ({{ amount }} {{ '
                "currency }}){% endif %} is due on {{ date }}.{% else %}{{ title }}{% "
                "if amount %} ({{ amount }} {{ currency }}){% endif %} е с падеж {{ "
                "date }}.{% endif %}",
                "kind": "bill_due",
            },
            {
                "offset": "P0D",
                "at": "10:00",
                "template": '{% if lang == "en" %}{{ title }}{% if amount %} ({{ amount }} {{ '
                "currency }}){% endif %} is due today.{% else %}{{ title }}{% if "
                "amount %} ({{ amount }} {{ currency }}){% endif %} е с падеж днес.{% "
                "endif %}",
                "kind": "bill_due",
            },
            {
                "offset": "P3D",
                "at": "10:00",
                "template": '{% if lang == "en" %}{{ title }}{% if amount %} ({{ amount }} {{ '
                "currency }}){% endif %} was due on {{ date }} and is still unpaid.{% "
                "else %}{{ title }}{% if amount %} ({{ amount }} {{ currency }}){% "
                "endif %} беше с падеж {{ date }} и все още не е платена.{% endif %}",
                "kind": "bill_overdue",
            },
            {
                "offset": "P10D",
                "at": "10:00",
                "template": '{% if lang == "en" %}{{ title }}{% if amount %} ({{ amount }} {{ '
                "currency }}){% endif %} was due on {{ date }} and is still unpaid.{% "
                "else %}{{ title }}{% if amount %} ({{ amount }} {{ currency }}){% "
                "endif %} беше с падеж {{ date }} и все още не е платена.{% endif %}",
                "kind": "bill_overdue",
            },
        ],
    },
]
