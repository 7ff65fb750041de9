"""The search stage: the query language, archive search and watch matching."""
