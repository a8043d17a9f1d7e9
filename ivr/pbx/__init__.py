"""The PBX side: building an Asterisk root, rendering configs, running instances."""
