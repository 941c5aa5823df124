"""Browser-facing pages: the printable sales sheet (and, later, the staff and client UIs)."""
