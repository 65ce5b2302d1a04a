"""The domain: rules and state transitions. Standard library only."""
