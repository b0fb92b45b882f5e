# t/roles/roles.bash: what the role suites (t/metron.bats,
# t/statsd-injector.bats) share, loaded after lib: a CA and certificates
# from share/lgr-certs, stand-in dopplers (t/grpccli-peer/ingress_server.py
# over mTLS), the emitters of t/roles/agent.py, role scripts started in a
# process group of their own, and copies of the role scripts beside stub
# programs, to see what a script starts without starting it.

# A role script runs in a session and process group of its own (setsid),
# so teardown can stop it and all it started at once without touching
# bats. ROLE_PGIDS lists them for the current test.
ROLE_PGIDS=()
ROLE_COUNT=0

# lib.bash's teardown stops background jobs; keep it as lgr_lib_teardown
# and stop the role scripts' process groups first.
eval "lgr_lib_teardown() $(declare -f teardown | tail -n +2)"

teardown() {
	local pg
	for pg in "${ROLE_PGIDS[@]}"; do
		kill -TERM -- "-$pg" 2>/dev/null || true
	done
	lgr_lib_teardown
}

# roles_setup_file: once per suite, the protobuf modules agent.py imports
# and the certificates: $CERTS holds ca.crt and NAME.crt, NAME.key for
# metron, doppler, statsd-injector, client and the other components.
roles_setup_file() {
	export PYTHONDONTWRITEBYTECODE=1
	export LGR_PB=$BATS_FILE_TMPDIR/pb
	export CERTS=$BATS_FILE_TMPDIR/certs
	mkdir -p "$LGR_PB"
	protoc --python_out="$LGR_PB" -I "$LGR_ROOT/share/proto" \
	    v2/envelope.proto events/dropsonde.proto
	"$LGR_ROOT/share/lgr-certs" "$CERTS" 2>"$BATS_FILE_TMPDIR/certs.log"
}

# agent MODE ARGS...: t/roles/agent.py (grpc, udp, statsd).
agent() {
	"$LGR_PYTHON" "$LGR_ROOT/t/roles/agent.py" "$@"
}

# now_us: the time in microseconds, for deadlines.
now_us() {
	echo "${EPOCHREALTIME//[!0-9]/}"
}

# await N PID CMD...: retry CMD every 0.05 s for N times 0.05 s at most
# (a deadline, however long each try takes), and give up at once when
# process PID has ended.
await() {
	local n=$1 pid=$2 end
	shift 2
	end=$(($(now_us) + n * 50000))
	while :; do
		"$@" && return 0
		if ! running "$pid"; then
			"$@" && return 0
			lgr_diag "await: process $pid ended before '$*'"
			return 1
		fi
		[ "$(now_us)" -lt "$end" ] || break
		sleep 0.05
	done
	lgr_diag "await: gave up on '$*'"
	return 1
}

# ended N PID: wait for PID to end, N times 0.05 s at most.
ended() {
	local end=$(($(now_us) + $1 * 50000))
	while running "$2"; do
		[ "$(now_us)" -lt "$end" ] || return 1
		sleep 0.05
	done
}

# running PID: PID is alive (a zombie waiting for `wait` is not).
running() {
	local st
	st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	[ -n "$st" ] && [[ $st != Z* ]]
}

# --- stand-in dopplers --------------------------------------------------------

declare -gA DOPPLER=() DOPPLER_PID=()

# doppler_start NAME [ARGS...]: ingress_server.py ARGS over mTLS with the
# the certificate "doppler" (--name NAME for another) on a free loopback
# port. Envelopes go to $BATS_TEST_TMPDIR/NAME.jsonl, one
# JSON line each, its log to NAME.err. Waits for its port (30 s at most)
# and sets DOPPLER[NAME] to 127.0.0.1:PORT and DOPPLER_PID[NAME].
doppler_start() {
	local name=$1 t=$BATS_TEST_TMPDIR
	shift
	: >"$t/$name.jsonl"
	"$LGR_PYTHON" "$LGR_ROOT/t/grpccli-peer/ingress_server.py" \
	    --certs "$CERTS" --out "$t/$name.jsonl" "$@" 3>&- {LGR_DIAG}>&- \
	    </dev/null >"$t/$name.port" 2>"$t/$name.err" &
	DOPPLER_PID[$name]=$!
	await 600 "$!" grep -qx '[0-9][0-9]*' "$t/$name.port" || {
		lgr_diag "stand-in doppler $name did not start; its log:"
		lgr_diag "$(cat "$t/$name.err")"
		return 1
	}
	DOPPLER[$name]=127.0.0.1:$(cat "$t/$name.port")
}

# doppler_stop NAME: SIGTERM it and reap it.
doppler_stop() {
	kill -TERM "${DOPPLER_PID[$1]}"
	wait "${DOPPLER_PID[$1]}" || true
}

# received NAME: how many envelopes stand-in NAME has recorded.
received() {
	local n
	n=$(wc -l <"$BATS_TEST_TMPDIR/$1.jsonl")
	echo $((n))
}

# has_received NAME N: stand-in NAME has recorded N envelopes or more.
has_received() {
	[ "$(received "$1")" -ge "$2" ]
}

# together N NAME...: stand-ins NAME... have recorded N envelopes or
# more between them.
together() {
	local n=$1 sum=0 d
	shift
	for d; do
		sum=$((sum + $(received "$d")))
	done
	[ "$sum" -ge "$n" ]
}

# batch_sizes NAME: the envelopes in each message stand-in NAME got, one
# number a line.
batch_sizes() {
	sed -n 's/.* event=message method=[A-Za-z]* size=\([0-9]*\)$/\1/p' \
	    "$BATS_TEST_TMPDIR/$1.err"
}

# free_port: a loopback TCP port nothing listens on (bound, then let go).
free_port() {
	"$LGR_PYTHON" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# --- role scripts ---------------------------------------------------------------

# role_start ROLE ARGS...: ROLE ARGS (a command on PATH, e.g. metron, or a
# path) in a session of its own; stdout to $BATS_TEST_TMPDIR/role.N.out
# and stderr to role.N.err, N counting the roles of the test from 1.
# Sets ROLE_PID (its process group too), ROLE_OUT and ROLE_ERR, which the
# other role_ functions use: to work on an earlier role, set them back.
role_start() {
	ROLE_COUNT=$((ROLE_COUNT + 1))
	ROLE_OUT=$BATS_TEST_TMPDIR/role.$ROLE_COUNT.out
	ROLE_ERR=$BATS_TEST_TMPDIR/role.$ROLE_COUNT.err
	setsid "$@" 3>&- {LGR_DIAG}>&- </dev/null >"$ROLE_OUT" 2>"$ROLE_ERR" &
	ROLE_PID=$!
	ROLE_PGIDS+=("$ROLE_PID")
}

# role_ready PROTO...: wait (30 s at most) until the role's lgr-recv
# listens on each PROTO (udp, grpc, statsd) and its lgr-route has started
# its sink; then set UDP, GRPC and STATSD to the HOST:PORT listened on.
role_ready() {
	local p
	for p in "$@"; do
		await 600 "$ROLE_PID" grep -q "lgr-recv: .* event=listening proto=$p " \
		    "$ROLE_ERR" || { role_log; return 1; }
	done
	await 600 "$ROLE_PID" grep -q 'lgr-route: .* event=sink_started ' \
	    "$ROLE_ERR" || { role_log; return 1; }
	UDP=$(listen_addr udp) || UDP=
	GRPC=$(listen_addr grpc) || GRPC=
	STATSD=$(listen_addr statsd) || STATSD=
}

# listen_addr PROTO: HOST:PORT of the role's listening line for PROTO.
listen_addr() {
	local l
	l=$(grep -m 1 "event=listening proto=$1 " "$ROLE_ERR") || return 1
	field addr "$l"
}

role_log() {
	lgr_diag "the role's log:"
	lgr_diag "$(cat "$ROLE_ERR")"
}

# role_children: the role script's children, "PID NAME" a line, sorted
# by name; all three of metron's or both of statsd-injector's must have
# started their program by the time role_ready returns.
role_children() {
	local pid
	for pid in $(pgrep -P "$ROLE_PID"); do
		printf '%s %s\n' "$pid" "$(ps -o comm= -p "$pid")"
	done | sort -k 2
}

# role_stop [SIGNAL]: send SIGNAL (default TERM) to the role script alone;
# it must exit 0 within 30 s, and nothing of its process group may be
# left.
role_stop() {
	local st=0 left
	kill "-${1:-TERM}" "$ROLE_PID"
	if ! ended 600 "$ROLE_PID"; then
		lgr_diag "the role did not stop on SIG${1:-TERM}"
		role_log
		return 1
	fi
	wait "$ROLE_PID" || st=$?
	if [ "$st" -ne 0 ]; then
		lgr_diag "the role exited $st on SIG${1:-TERM}"
		role_log
		return 1
	fi
	left=$(pgrep -a -g "$ROLE_PID") && {
		lgr_diag "left running in its process group: $left"
		return 1
	}
	# Stopped and empty: teardown must not signal the group again (its
	# number may be another's by then).
	local pg keep=()
	for pg in "${ROLE_PGIDS[@]}"; do
		[ "$pg" = "$ROLE_PID" ] || keep+=("$pg")
	done
	ROLE_PGIDS=("${keep[@]}")
}

# stop_line PROG [WORD]: PROG's stop line in the role's log (lgr-route's
# sink_stopped line when WORD is sink_stopped).
stop_line() {
	local l
	l=$(grep "^$1: level=info event=${2:-stop} " "$ROLE_ERR") ||
	    { lgr_diag "no ${2:-stop} line from $1"; role_log; return 1; }
	printf '%s\n' "$l"
}

# --- stubs ----------------------------------------------------------------------

# stub_role ROLE: a copy of bin/ROLE in $BATS_TEST_TMPDIR/stub with
# t/roles/stub.sh as lgr-recv, lgr-diode and lgr-route beside it (a role
# script runs the programs of its own directory). Each stub logs its
# argv to $STUB_LOG. Sets STUB to the copy's path.
stub_role() {
	local d=$BATS_TEST_TMPDIR/stub p
	mkdir -p "$d"
	cp "$LGR_ROOT/bin/$1" "$d/$1"
	for p in lgr-recv lgr-diode lgr-route; do
		cp "$LGR_ROOT/t/roles/stub.sh" "$d/$p"
	done
	export STUB_LOG=$BATS_TEST_TMPDIR/stub.log
	rm -f "$STUB_LOG"
	STUB=$d/$1
}

# started PROG: the argv stub PROG was started with, "[arg] [arg]...".
started() {
	local l
	l=$(grep "^$1 " "$STUB_LOG") || { lgr_diag "$1 was not started"; return 1; }
	printf '%s\n' "${l#"$1" }"
}

# usage_error ROLE ARGS...: ROLE (a stubbed copy) with ARGS exits 2 with
# one line naming the problem, "ROLE: ...", then its usage, on stderr, and
# nothing on stdout, and starts nothing. Sets ERROR to the first line.
usage_error() {
	local role=$1
	shift
	run --separate-stderr timeout 10 "$STUB" "$@"
	if [ "$status" -ne 2 ] || [[ ${stderr_lines[0]-} != "$role: "* ]] ||
	    [[ ${stderr_lines[1]-} != "usage: $role "* ]] || [ -n "$output" ]; then
		lgr_diag "$role $*: exit $status, wanted 2 and a usage error"
		lgr_diag "stderr: $stderr"
		lgr_diag "stdout: $output"
		return 1
	fi
	if [ -e "$STUB_LOG" ]; then
		lgr_diag "$role $*: started programs on a usage error:"
		lgr_diag "$(cat "$STUB_LOG")"
		return 1
	fi
	ERROR=${stderr_lines[0]}
}
