"""Delivery of documents to practices (fax, e-mail, webhook) through a database outbox."""
