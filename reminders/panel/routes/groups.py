"""The control panel's groups screen."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
