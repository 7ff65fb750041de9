"""The feeds stage: RSS/Atom per watch, written as files or served over HTTP."""
