"""What the tests bring to the code under test: fault injection, the controller launcher."""
