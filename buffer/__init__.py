"""NNG-Stream: receive-once, send-once FIFO memory buffer. Imports nothing of the other packages."""
