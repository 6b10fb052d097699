"""Relational storage of FHIR resources: SQLite by default, PostgreSQL at scale."""
