"""Shapes of the API's requests and responses, one module per resource.

``common`` holds the field types and bases they share (``Input`` refuses unknown fields and
strips whitespace, ``Page``, ids, names, phones, zones); each resource's module holds its
``XCreate`` / ``XUpdate`` / ``XOut`` (``contacts``, ``groups``, ``messages``, ``notices``,
``events``, ``policies``, ``sources``, ``keys``, ``sms``, ``stats``, ``inbound``,
``http_webhook``). Routes and domain functions import them from there; nothing else defines a
request or response model.
"""
