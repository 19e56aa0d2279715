"""Bills from billing systems: anchors of kind "bill", due on a date, upserted by external_id.

- ``schemas``: what the API takes and answers, and the form of each field.
- ``rules``: what a row means (policy, customer, amount, due date, title, the bill it
  updates), decided in memory, the same for POST /bills and a batch.
- ``writing``: writes what the rules decided, one row or ten thousand, a statement per table.
- ``reading``: bills as the API shows them. ``payments``: paid, or a payment refused.
"""

from reminders.bills.payments import PAYMENT_FAILED, mark_paid, payment_failed
from reminders.bills.reading import bill_out, bills_out, get_bill, list_bills
from reminders.bills.rules import KEY_PREFIX
from reminders.bills.schemas import (
    BatchIn,
    BatchOut,
    BillContact,
    BillIn,
    BillOut,
    PaymentFailedIn,
    RowError,
)
from reminders.bills.writing import Upserted, upsert_bill, upsert_many

__all__ = [
    "KEY_PREFIX",
    "PAYMENT_FAILED",
    "BatchIn",
    "BatchOut",
    "BillContact",
    "BillIn",
    "BillOut",
    "PaymentFailedIn",
    "RowError",
    "Upserted",
    "bill_out",
    "bills_out",
    "get_bill",
    "list_bills",
    "mark_paid",
    "payment_failed",
    "upsert_bill",
    "upsert_many",
]
