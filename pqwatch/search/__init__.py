"""The search stage's result types (results.py). The query language is pqwatch.query; the
SQLite search, matching and compiler are in pqwatch.store.sqlite."""
