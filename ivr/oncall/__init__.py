"""On call: the dialling gate and dialler, call-backs and their scheduler."""
