"""The scheduler: every notice is a persistent APScheduler job that fires it once."""
