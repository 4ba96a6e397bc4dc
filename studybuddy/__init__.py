"""study-buddy."""
