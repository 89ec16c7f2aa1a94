"""LCLStream-API: REST service turning a streamer config into a running transfer; and the lclstream client."""
