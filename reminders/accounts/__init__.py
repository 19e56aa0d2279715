"""Accounts: the organisations one deployment serves, and scoping every request to one."""
