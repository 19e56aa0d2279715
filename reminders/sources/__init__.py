"""Where reminders come from besides the API: calendar feeds and the like."""
