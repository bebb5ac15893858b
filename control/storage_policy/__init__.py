"""What storage holds and what goes when it is full: the measure, the retention policy, and
the port through which the media side lists and deletes (control never touches bytes)."""
