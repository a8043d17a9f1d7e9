"""The SIP edge's defences and conveniences: the guard that bans scanners and floods
(security events -> the PBX's ACL), the ban list, and the optional test phone."""
