"""Calendars: a person's private iCalendar feed and a public course's feed."""
