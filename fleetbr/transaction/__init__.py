"""The dead-man transaction: stage, arm, apply detached, confirm over a fresh connection, disarm;
or verify that the host rolled itself back."""
