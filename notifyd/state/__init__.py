"""The Redis repositories. Each module owns its keys (named in :mod:`notifyd.state.keys`) and is
the only code that reads or writes them; Lua scripts live in ``lua/`` as package data."""
