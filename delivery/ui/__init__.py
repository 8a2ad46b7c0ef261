"""What users see: progress on stderr (a Reporter), results on stdout, and the text of each typed report."""
