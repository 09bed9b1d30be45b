"""Tracker stores: ``InMemoryTrackerStore`` and ``RedisTrackerStore`` behind one ``TrackerStore`` protocol."""
