"""x.509 PKI and mutual-TLS helpers used by every service, client and data stream."""
