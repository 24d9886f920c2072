"""The actor runtime (mailboxes, ask/tell, supervision) and the agent's actors."""
