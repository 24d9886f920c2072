#!/bin/sh
# Create (or bring up to date) virtactor's RabbitMQ vhost, policies, and one user per agent
# host, a conductor user and a control-plane user, each limited to the names it uses
# (docs/deploy.md, "RabbitMQ"). Run it as root on a broker node, where rabbitmqctl works.
#
#   deploy/rabbitmq/apply.sh [options] HOST...
#
# Safe to re-run: the vhost, permissions and policies are set to the same values again; an
# existing user keeps its password unless VIRTACTOR_RABBITMQ_PASSWORD_<NAME> is set, in which
# case it is set to that. A new user without such a variable gets a generated password,
# printed once on stdout as "<user> <password>" (everything else goes to stderr).
# <NAME> is the user's name without the --user-prefix, upper-cased, every character other
# than A-Z and 0-9 replaced by "_": host cmp-001 -> VIRTACTOR_RABBITMQ_PASSWORD_CMP_001,
# the conductor -> ..._CONDUCTOR, the control plane -> ..._CONTROL_PLANE.
#
# The queue and exchange names are those of agent/transport/topics.py (Names) under
# [amqp] prefix; the routing keys those of agent/transport/topics.py, agent/rpc/events.py
# and agent/rpc/subscribers.py. tests/system/test_rabbitmq_definitions.py proves them
# against the real transport.
set -eu

usage() {
    cat >&2 <<'EOF'
usage: apply.sh [options] HOST...

  --vhost NAME          the vhost (default: virtactor)
  --prefix PREFIX       [amqp] prefix of the agents (default: virtactor)
  --user-prefix TEXT    put TEXT before every user name (default: none: users are named
                        HOST, conductor and control-plane)
  --classic             [amqp] quorum = false: no quorum-queue settings in the policies
  --delivery-limit N    redeliveries before a request is dead-lettered (default: 5, as the
                        agent's own queue arguments)
  --dead-letter-max N   dead letters kept; the oldest are dropped (default: 100000)
  --no-conductor        do not create the conductor user
  --no-control-plane    do not create the control-plane user
  -h, --help            this text

Environment: RABBITMQCTL (default: rabbitmqctl), VIRTACTOR_RABBITMQ_PASSWORD_<NAME>.
EOF
}

die() {
    printf 'apply.sh: %s\n' "$*" >&2
    exit 2
}

VHOST=virtactor
PREFIX=virtactor
USER_PREFIX=
QUORUM=true
DELIVERY_LIMIT=5
DEAD_LETTER_MAX=100000
CONDUCTOR=true
CONTROL_PLANE=true
CTL=${RABBITMQCTL:-rabbitmqctl}

while [ $# -gt 0 ]; do
    case $1 in
        --vhost) [ $# -ge 2 ] || die "$1 needs a value"; VHOST=$2; shift 2 ;;
        --prefix) [ $# -ge 2 ] || die "$1 needs a value"; PREFIX=$2; shift 2 ;;
        --user-prefix) [ $# -ge 2 ] || die "$1 needs a value"; USER_PREFIX=$2; shift 2 ;;
        --classic) QUORUM=false; shift ;;
        --delivery-limit) [ $# -ge 2 ] || die "$1 needs a value"; DELIVERY_LIMIT=$2; shift 2 ;;
        --dead-letter-max) [ $# -ge 2 ] || die "$1 needs a value"; DEAD_LETTER_MAX=$2; shift 2 ;;
        --no-conductor) CONDUCTOR=false; shift ;;
        --no-control-plane) CONTROL_PLANE=false; shift ;;
        -h | --help) usage; exit 0 ;;
        --) shift; break ;;
        -*) usage; die "unknown option $1" ;;
        *) break ;;
    esac
done

is_count() {
    case $1 in '' | *[!0-9]*) return 1 ;; *) [ "$1" -gt 0 ] ;; esac
}

[ -n "$VHOST" ] || die "--vhost must not be empty"
case $PREFIX in
    # Put into names, regexes and JSON: letters, digits and . _ : - only (the config takes
    # any non-empty text; a prefix outside these needs this script extended).
    '' | *[!A-Za-z0-9_.:-]*) die "--prefix '$PREFIX': expected [A-Za-z0-9_.:-], not empty" ;;
esac
is_count "$DELIVERY_LIMIT" || die "--delivery-limit $DELIVERY_LIMIT: expected a count > 0"
is_count "$DEAD_LETTER_MAX" || die "--dead-letter-max $DEAD_LETTER_MAX: expected a count > 0"
for host in "$@"; do
    # One routing-key word, as agent/transport/topics.py check_word demands; it is also put
    # into the regexes below unescaped, which is safe for exactly these characters.
    case $host in
        '' | *[!A-Za-z0-9_:-]*) die "host '$host' is not one routing-key word ([A-Za-z0-9_:-])" ;;
        conductor) die "host 'conductor' is the conductors' queue; no agent may be named so" ;;
        control-plane) die "host 'control-plane' is the control-plane user's name" ;;
    esac
done

# The prefix as a regex literal: every character PCRE gives a meaning is escaped.
P=$(printf '%s' "$PREFIX" | sed 's/[][\\.^$*+?(){}|]/\\&/g')
# An event subscription's exclusive queue: <prefix>.events.<hex>.<hex> (amqp.py subscribe).
SUB="events\\.[0-9a-f]+\\.[0-9a-f]+"
# The four exchanges every transport declares at start, and the dead-letter queue it binds.
TOPOLOGY="commands|broadcast|events|dead-letter|dead-letters"

say() {
    printf '%s\n' "$*" >&2
}

ctl() {
    "$CTL" -q "$@" >/dev/null
}

password_variable() {
    printf 'VIRTACTOR_RABBITMQ_PASSWORD_%s' "$(printf '%s' "$1" | tr 'a-z' 'A-Z' | tr -c 'A-Z0-9' '_')"
}

user_exists() {
    printf '%s\n' "$EXISTING_USERS" | grep -qxF -- "$1"
}

# ensure_user NAME: the user <user-prefix>NAME exists, with the password of its variable if set.
ensure_user() {
    user=$USER_PREFIX$1
    variable=$(password_variable "$1")
    eval "password=\${$variable-}"  # $variable is [A-Z0-9_] only
    if user_exists "$user"; then
        if [ -n "$password" ]; then
            printf '%s\n' "$password" | ctl change_password "$user"
            say "user $user: password set from $variable"
        else
            say "user $user: exists, password unchanged"
        fi
        return
    fi
    generated=false
    if [ -z "$password" ]; then
        # 144 random bits as hex: nothing to escape in an amqp:// URL.
        password=$(od -An -N18 -tx1 /dev/urandom | tr -d ' \n')
        generated=true
    fi
    # On stdin, so the password never shows in a process list.
    printf '%s\n' "$password" | ctl add_user "$user"
    if $generated; then
        printf '%s %s\n' "$user" "$password"
        say "user $user: created, generated password printed once on stdout"
    else
        say "user $user: created, password from $variable"
    fi
}

permissions() {  # USER CONFIGURE WRITE READ
    ctl set_permissions -p "$VHOST" "$1" "$2" "$3" "$4"
}

topic_permissions() {  # USER EXCHANGE WRITE READ
    ctl set_topic_permissions -p "$VHOST" "$1" "$PREFIX.$2" "$3" "$4"
}

policy() {  # NAME PATTERN DEFINITION
    ctl set_policy -p "$VHOST" --apply-to queues --priority 0 "$PREFIX-$1" "$2" "$3"
}

ctl add_vhost "$VHOST"
say "vhost $VHOST"
EXISTING_USERS=$("$CTL" -q list_users --no-table-headers | cut -f1)

# Request queues: the agent declares them with x-dead-letter-exchange (and, quorum, with
# x-delivery-limit); the policy says the same, for a queue declared by hand. No message-ttl:
# every call carries its own deadline as the message's expiration, and a cast sent without
# a ttl must wait for its agent however long it is down.
if [ "$QUORUM" = true ]; then
    requests="{\"dead-letter-exchange\":\"$PREFIX.dead-letter\",\"delivery-limit\":$DELIVERY_LIMIT}"
else
    requests="{\"dead-letter-exchange\":\"$PREFIX.dead-letter\"}"
fi
policy requests "^$P\\.compute\\.[^.]+\$" "$requests"
# Dead letters wait for an operator; a flood of them must not fill the broker's disk.
policy dead-letters "^$P\\.dead-letters\$" \
    "{\"max-length\":$DEAD_LETTER_MAX,\"max-length-bytes\":268435456,\"overflow\":\"drop-head\"}"
# A subscriber whose connection stalls loses its oldest events, as its own buffer does.
policy events "^$P\\.$SUB\$" "{\"max-length\":100000,\"overflow\":\"drop-head\"}"
say "policies $PREFIX-requests, $PREFIX-dead-letters, $PREFIX-events"

# Every user may declare (configure) the topology its transport declares at each start, and
# bind the dead-letter queue to its exchange. Replies to direct reply-to go through the
# default exchange, so whoever serves requests needs write on amq.default: see
# docs/deploy.md for what that allows.
for host in "$@"; do
    ensure_user "$host"
    user=$USER_PREFIX$host
    own="compute\\.$host"
    permissions "$user" \
        "^$P\\.($TOPOLOGY|$own|$SUB)\$" \
        "^(amq\\.default|$P\\.(commands|events|dead-letter|dead-letters|$own|$SUB))\$" \
        "^$P\\.(commands|broadcast|events|dead-letter|$own|$SUB)\$"
    # Requests to its own queue (health checks) and the conductors'; bound to its own only.
    topic_permissions "$user" commands "^compute\\.($host|conductor)\$" "^compute\\.$host\$"
    # Its own host events, any instance's or migration's (not expressible per instance), its
    # solicitation of subscribers; it hears subscribers' announcements only.
    topic_permissions "$user" events \
        "^(host\\.$host\\.[^.]+|instance\\.[^.]+\\.[^.]+|migration\\.[^.]+\\.progress|subscribers\\.solicit\\.$host)\$" \
        "^subscribers\\.announce\\.\\*\$"
    say "agent $host: user $user"
done

if [ "$CONDUCTOR" = true ]; then
    ensure_user conductor
    user=${USER_PREFIX}conductor
    own="compute\\.conductor"
    permissions "$user" \
        "^$P\\.($TOPOLOGY|$own)\$" \
        "^(amq\\.default|$P\\.(dead-letter|dead-letters|$own))\$" \
        "^$P\\.(commands|dead-letter|$own)\$"
    topic_permissions "$user" commands '^$' "^compute\\.conductor\$"
    say "conductor: user $user"
fi

if [ "$CONTROL_PLANE" = true ]; then
    ensure_user control-plane
    user=${USER_PREFIX}control-plane
    permissions "$user" \
        "^$P\\.($TOPOLOGY|$SUB)\$" \
        "^$P\\.(commands|broadcast|events|dead-letter|dead-letters|$SUB)\$" \
        "^$P\\.(events|dead-letter|dead-letters|$SUB)\$"
    # Any host's (and the conductors') requests; it announces what it reads and hears all.
    topic_permissions "$user" commands "^compute\\.[^.]+\$" '^$'
    topic_permissions "$user" events "^subscribers\\.announce\\.[^.]+\$" '.*'
    say "control plane: user $user"
fi
