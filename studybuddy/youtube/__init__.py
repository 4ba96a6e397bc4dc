"""YouTube: input URL forms, playlist and channel listing, transcripts, metadata, the yt-dlp path."""
