"""The source stage: fetch questions from parliamentary APIs and return plain data types."""
