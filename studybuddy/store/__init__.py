"""What a run keeps: the archive (SQLite or PostgreSQL) and its migrations, the output tree, rendering
of notes and transcripts, links between notes, subjects, and usage."""
