"""RPC over a transport: envelopes, dispatch to actors, de-duplication, the client side."""
