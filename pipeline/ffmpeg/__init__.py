"""ffmpeg: finding it, the command line, what it said on stderr, its JPEG stream, MP4 boxes, the extraction."""
