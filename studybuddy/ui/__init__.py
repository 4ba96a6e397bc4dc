"""The web UI of study-buddy (`study-buddy ui`): start, watch, browse and retry runs in a browser."""
