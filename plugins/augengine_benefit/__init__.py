"""augengine built-in plugin (being written)."""
