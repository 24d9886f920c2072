"""A multi-host development environment on one machine, driven by `deploy/devenv`:

    deploy/devenv up --hosts N [--first-index K] [--prefix P] [--json]
    deploy/devenv status [--json]
    deploy/devenv down [--keep]

`up` starts RabbitMQ and PostgreSQL (deploy/local/services.sh), N local hypervisor hosts
hostK.. (deploy/local/libvirt-host.sh), one conductor on a database of its own and one agent
per host, as background processes with pid and log files in the state directory, and waits
until each answers. `status` tells what runs and answers; `down` stops it all again.

`state` holds the record and the generated configuration files, `processes` starts, finds
and stops the processes, `lifecycle` is up / inspect / down, and `__main__` the command line.
docs/deploy.md ("Development environment") documents it.
"""
