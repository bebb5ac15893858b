"""Courses: who may see and manage one, creating and changing it, prerequisites."""
