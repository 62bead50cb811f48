"""Operating the gateway: the admin session and the live view of the backends."""
