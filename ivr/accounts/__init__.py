"""Portal accounts: users and their roles, passwords, second factors, sessions, API tokens."""
