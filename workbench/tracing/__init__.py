"""Traces, spans and their events: capture (recorder), storage (store) and the live feed (feed)."""
