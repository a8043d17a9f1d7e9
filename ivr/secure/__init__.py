"""Patient data at rest: the cipher, the keyring, rotation, private files."""
