# netlab.sh: a page server on the far side of a real, emulated link.
# Sourced by the network tests and benchmarks (needs root, ip and tc, and
# the veth and sch_netem modules: the emulated x86 host loads them).
#
#   netlab_up             network namespace $NETLAB_NS with one end of a
#                         veth pair ($NETLAB_SERVER_IP), the other end here
#                         ($NETLAB_CLIENT_IP)
#   netlab_link ARGS...   netem on the server's end: every packet it sends
#                         (the replies) goes through it, e.g.
#                         "delay 10ms" or "delay 1ms loss 1%"; none: no netem
#   netlab_serve ARGS...  starts apfvm serve ARGS (--image IMG or
#                         --snapshot PATH, ...) in the namespace on port
#                         $NETLAB_PORT; returns once it listens (its "on
#                         port" line); its pid in NETLAB_SERVER_PID
#   netlab_stop_server    stops it (SIGTERM) and waits for it
#   netlab_wait_bytes N   waits (at most 120 s) until the server's end has
#                         sent N more bytes than when its netem was set (tc's
#                         count of what went through it)
#   netlab_s3rver         starts s3rver (build/node, make deps), an
#                         S3-compatible server, in the namespace on port
#                         $NETLAB_S3_PORT with bucket "apfvm", and points
#                         the AWS_* variables at it; its pid in
#                         NETLAB_S3_PID
#   netlab_wait_port PORT waits (at most 240 s) until the namespace's server
#                         address accepts connections on PORT
#   netlab_down           removes it all (also on exit, via trap)
NETLAB_NS=${NETLAB_NS:-apfvm-net-$$}
NETLAB_CLIENT_IP=10.213.0.1
NETLAB_SERVER_IP=10.213.0.2
NETLAB_PORT=7070
NETLAB_S3_PORT=4568
NETLAB_SERVER_PID=
NETLAB_S3_PID=
NETLAB_DIR=

netlab_up() {
	local host_if=apv$$ ns_if=aps$$
	NETLAB_DIR=$(mktemp -d /tmp/apfvm-netlab.XXXXXX) || return 1
	ip netns add "$NETLAB_NS" || return 1
	ip link add "$host_if" type veth peer name "$ns_if" &&
		ip link set "$ns_if" netns "$NETLAB_NS" &&
		ip addr add "$NETLAB_CLIENT_IP/24" dev "$host_if" &&
		ip link set "$host_if" up &&
		ip -n "$NETLAB_NS" addr add "$NETLAB_SERVER_IP/24" dev "$ns_if" &&
		ip -n "$NETLAB_NS" link set "$ns_if" up &&
		ip -n "$NETLAB_NS" link set lo up || return 1
	NETLAB_NS_IF=$ns_if
}

netlab_link() {
	tc -n "$NETLAB_NS" qdisc del dev "$NETLAB_NS_IF" root 2>/dev/null || true
	[ "$1" = none ] && return 0
	tc -n "$NETLAB_NS" qdisc add dev "$NETLAB_NS_IF" root netem "$@"
}

netlab_serve() {
	local line
	rm -f "$NETLAB_DIR/serve.fifo"
	mkfifo "$NETLAB_DIR/serve.fifo" || return 1
	ip netns exec "$NETLAB_NS" "${APFVM:-build/apfvm}" serve \
		--listen "$NETLAB_SERVER_IP:$NETLAB_PORT" "$@" >"$NETLAB_DIR/serve.fifo" \
		2>>"$NETLAB_DIR/serve.err" &
	NETLAB_SERVER_PID=$!
	# Its first line says it listens; a server that fails closes the fifo.
	# The fifo stays open (fd 8) while it runs, so that it can write more.
	exec 8<"$NETLAB_DIR/serve.fifo"
	read -r -t 30 -u 8 line
	case $line in *"on port"*) return 0 ;; esac
	echo "netlab: apfvm serve did not start: $line $(cat "$NETLAB_DIR/serve.err")" >&2
	return 1
}

netlab_stop_server() {
	[ -n "$NETLAB_SERVER_PID" ] || return 0
	kill "$NETLAB_SERVER_PID" 2>/dev/null || true
	wait "$NETLAB_SERVER_PID" 2>/dev/null || true # its status: killed
	exec 8<&-
	NETLAB_SERVER_PID=
}

netlab_wait_bytes() {
	local want=$1 deadline=$((SECONDS + 120)) sent
	while [ $SECONDS -lt $deadline ]; do
		sent=$(tc -s -n "$NETLAB_NS" qdisc show dev "$NETLAB_NS_IF" |
			awk '$1 == "Sent" { print $2; exit }')
		[ "${sent:-0}" -ge "$want" ] && return 0
		# tc has no way to wait for a counter: poll it.
		sleep 0.05
	done
	return 1
}

netlab_wait_port() {
	# Node.js starting s3rver in the emulated host has taken over a minute.
	local deadline=$((SECONDS + 240))
	while [ $SECONDS -lt $deadline ]; do
		ip netns exec "$NETLAB_NS" bash -c "exec 3<>/dev/tcp/$NETLAB_SERVER_IP/$1" \
			2>/dev/null && return 0
		# Servers such as s3rver do not say when they listen: poll.
		sleep 0.1
	done
	return 1
}

netlab_s3rver() {
	local s3rver=${S3RVER:-build/node/node_modules/.bin/s3rver}
	mkdir -p "$NETLAB_DIR/s3"
	ip netns exec "$NETLAB_NS" node "$s3rver" -d "$NETLAB_DIR/s3" -a "$NETLAB_SERVER_IP" \
		-p "$NETLAB_S3_PORT" --configure-bucket apfvm --silent >"$NETLAB_DIR/s3rver.log" 2>&1 &
	NETLAB_S3_PID=$!
	if ! netlab_wait_port "$NETLAB_S3_PORT"; then
		echo "netlab: s3rver did not start: $(tail -3 "$NETLAB_DIR/s3rver.log")" >&2
		return 1
	fi
	# s3rver's fixed credentials.
	export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1
	export AWS_ENDPOINT_URL_S3=http://$NETLAB_SERVER_IP:$NETLAB_S3_PORT
}

netlab_stop_s3rver() {
	[ -n "$NETLAB_S3_PID" ] || return 0
	kill "$NETLAB_S3_PID" 2>/dev/null || true
	wait "$NETLAB_S3_PID" 2>/dev/null || true
	NETLAB_S3_PID=
}

netlab_down() {
	netlab_stop_server
	netlab_stop_s3rver
	ip netns del "$NETLAB_NS" 2>/dev/null || true # takes the veth pair with it
	[ -n "$NETLAB_DIR" ] && rm -rf "$NETLAB_DIR"
	NETLAB_DIR=
}
