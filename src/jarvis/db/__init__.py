"""Database plumbing: declarative base, engine, transactions, migrations."""
