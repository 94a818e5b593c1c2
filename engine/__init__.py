"""Questline's rules engine: programs, events, counters, unlocks. No web framework, no ORM."""
