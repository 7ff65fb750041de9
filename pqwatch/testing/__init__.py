"""Stand-ins for the outside world, for tests and for the offline tour: never used by pqwatch
itself. `python -m pqwatch.testing.replay FILE...` serves recorded API responses."""
