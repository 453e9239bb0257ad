"""Reading the store back in time order, clocks and pacing, reports. Never imports `daemon`."""
