"""The controller process: services, background tasks, lifecycle."""
