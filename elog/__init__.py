"""ELog/ARP stand-in: run records, a DAQ writing run files, Kafka run events."""
