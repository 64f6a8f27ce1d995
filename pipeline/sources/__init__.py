"""Dataset layouts (DFDC, FaceForensics++, Celeb-DF, labels.csv, mixed) to a sorted list of videos."""
