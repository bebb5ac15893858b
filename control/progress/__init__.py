"""Progress: how far people got in recordings, and a course's completion per student."""
