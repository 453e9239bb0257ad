"""The trading core: orders and their state machine, the OMS, risk checks and the
portfolio. Plain state machines driven by bus events; no I/O."""
