"""The portal: an aiohttp application with server-rendered pages and a JSON API.

Operators, practice admins, front desks and on-call clinicians read calls, listen to
recordings, follow tonight's calls, fetch morning reports and see who is on call, each
within what ivr.accounts.access lets them see. `ivr web` serves it (IVR_WEB_*).
"""
