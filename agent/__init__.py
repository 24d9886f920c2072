"""The agent process: configuration, transports, RPC, the libvirt layer, client and CLI."""
