"""The Guest layer: one libvirt domain, its XML configuration and the devices on it.

`domain.Guest` wraps one `virDomain` with small blocking verbs and no policy; `config` and
`config_devices` build a domain's XML from an instance and its image (`elements` holds the
XML helpers, `metadata` the agent's own <metadata>), `disks`, `devices` and
`device_events` attach and detach devices and wait for the guest to let them go, `spawn`,
`rescue` and `snapshot` are the multi-step operations, `info` reads state and stats back.

The package itself imports nothing: `errors` is loaded by clients that have no libvirt.
"""
