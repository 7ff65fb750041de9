"""pqwatch: a monitor of UK parliamentary written questions."""

__version__ = "0.1.0"
