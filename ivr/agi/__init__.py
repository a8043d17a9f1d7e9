"""FastAGI: the protocol layer and the asyncio server."""
