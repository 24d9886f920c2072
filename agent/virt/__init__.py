"""The libvirt side of the agent: the Host (one connection) and the Guest (one domain)."""
