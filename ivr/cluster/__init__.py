"""Past one machine: a PostgreSQL server of the project's own, Kamailio in front of nodes."""
