"""Webhooks: an account's endpoints get its events, signed by the Standard Webhooks spec.

- ``events``: the event types and what each one's ``data`` holds.
- ``outbox``: an event is written (one delivery per subscribed endpoint) in the transaction
  of the change that causes it, so a rollback takes it back and a commit keeps it.
- ``endpoints`` and ``deliveries``: the endpoints and their delivery log, for the API.
- ``posting``: one signed POST, through the same private-address guard as feed fetches.
- ``delivery`` and ``workers``: every ``serve`` and ``worker`` process claims due deliveries
  under a lease, POSTs them, and records each attempt and what comes next.
"""
