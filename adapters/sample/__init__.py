"""The sample venue: plays a recorded feed into the bus as if it were live."""
