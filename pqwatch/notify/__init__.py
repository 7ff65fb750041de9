"""The notify stage: compose, render and deliver digests."""
