"""The ledger: tofu3's memory of every verification (SQLite under $XDG_STATE_HOME/tofu3/),
and the TAG_MOVED rule applied with it."""
