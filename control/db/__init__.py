"""The database: connection and writer lock, migrations, plain driver reads, lock order."""
