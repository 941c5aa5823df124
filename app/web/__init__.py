"""Browser-facing pages: the staff console, the client room (pages.py with static/), the
printable sales sheet, and sign-in links for development (sign_in.py)."""
