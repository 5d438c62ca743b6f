"""Placeholder: being written (see the open issues); registers nothing yet."""
