"""Versioned objects: fields, registry, change tracking, back-levelling and the msgpack codec."""
