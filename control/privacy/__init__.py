"""Data protection: what the platform holds about a person (the export) and erasing them."""
