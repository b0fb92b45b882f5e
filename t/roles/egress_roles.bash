# t/roles/egress_roles.bash: what the egress role suites (t/doppler.bats,
# t/trafficcontroller.bats, t/rlp.bats) share, loaded after lib and
# roles/roles: real bin/doppler instances, subscribers on python3-grpcio
# and python3-websockets (t/roles/egress_sub.py) whose envelopes are
# checked with python3-protobuf (t/roles/egress_check.py), and envelopes
# sent into a doppler as an agent sends them: lgr-route --to grpcs://
# with metron's certificate.
#
# Every process a test starts is its own: role scripts run in a session
# of their own (role_start), subscribers are background jobs. A doppler's
# lgr-ws runs in a process group of its own (lgr-route starts exec:
# sinks that way), so teardown also stops, by PID, every descendant a
# role script had when the test last looked (egress_tree).

EGRESS_PIDS=()

# lgr_roles_teardown: roles.bash's teardown, kept; ours adds the trees.
eval "lgr_roles_teardown() $(declare -f teardown | tail -n +2)"

teardown() {
	local pid pids=("${EGRESS_PIDS[@]}")
	for pid in "${ROLE_PGIDS[@]}"; do
		mapfile -t -O "${#pids[@]}" pids < <(egress_tree "$pid")
	done
	lgr_roles_teardown
	for pid in "${pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
}

# egress_setup_file: once per suite, roles_setup_file and the protobuf
# modules of egress and plumbing beside the others in $LGR_PB.
egress_setup_file() {
	roles_setup_file
	protoc --python_out="$LGR_PB" -I "$LGR_ROOT/share/proto" \
	    v2/egress.proto plumbing/doppler.proto
}

# egress_tree PID: PID's descendants, one a line, deepest last.
egress_tree() {
	local c
	for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do
		echo "$c"
		egress_tree "$c"
	done
}

# remember_tree PID: add PID's descendants to what teardown stops.
remember_tree() {
	mapfile -t -O "${#EGRESS_PIDS[@]}" EGRESS_PIDS < <(egress_tree "$1")
}

check() {
	"$LGR_PYTHON" "$LGR_ROOT/t/roles/egress_check.py" "$@"
}

# count FILE: the whole frames in FILE.
count() {
	check count "$1"
}

# has_count FILE N: FILE holds N frames or more.
has_count() {
	[ "$(check count "$1")" -ge "$2" ]
}

# --- dopplers -------------------------------------------------------------------

declare -gA DOP=() DOP_PID=() DOP_ERR=()

# dop_start NAME [PORT [ARGS...]]: bin/doppler with the suite's
# certificates on 127.0.0.1:PORT (0, any free port, if not given), ARGS
# after; waits (30 s at most) until lgr-recv listens and lgr-ws takes
# relayed calls. Sets DOP[NAME] (HOST:PORT), DOP_PID[NAME] (the script)
# and DOP_ERR[NAME] (its log), and ROLE_* as role_start does.
dop_start() {
	local name=$1 port=${2:-0} l
	shift $(($# < 2 ? $# : 2))
	role_start doppler --certs "$CERTS" --grpc "127.0.0.1:$port" "$@"
	DOP_PID[$name]=$ROLE_PID
	DOP_ERR[$name]=$ROLE_ERR
	await 600 "$ROLE_PID" grep -q 'lgr-ws: .* event=listening proto=relay ' \
	    "$ROLE_ERR" || { role_log; return 1; }
	await 600 "$ROLE_PID" grep -q 'lgr-recv: .* event=listening proto=grpc ' \
	    "$ROLE_ERR" || { role_log; return 1; }
	l=$(grep -m 1 'lgr-recv: .* event=listening proto=grpc ' "$ROLE_ERR")
	DOP[$name]=$(field addr "$l")
	remember_tree "$ROLE_PID"
}

# dop_kill NAME: SIGKILL doppler NAME and every process it had: a doppler
# VM that dies. Waits until they are all gone (10 s at most).
dop_kill() {
	local pid pids
	pids=("${DOP_PID[$1]}")
	mapfile -t -O 1 pids < <(egress_tree "${DOP_PID[$1]}")
	kill -KILL "${pids[@]}" 2>/dev/null || true
	wait "${DOP_PID[$1]}" 2>/dev/null || true
	for pid in "${pids[@]}"; do
		ended 200 "$pid" || { lgr_diag "pid $pid outlived SIGKILL"; return 1; }
	done
}

# send ADDR FILE [LGR-ROUTE ARGS...]: the frames of FILE into the doppler
# at ADDR as an agent sends them: v2 BatchSender over mTLS with metron's
# certificate, server name doppler (lgr-route's default). lgr-route's
# sink is a diode that drops what outruns the connection; every frame
# must have gone (its sink_stopped line says dropped=0).
send() {
	local addr=$1 file=$2 err l
	shift 2
	err=$(mktemp "$BATS_TEST_TMPDIR/send.XXXXXX")
	run_ok lgr-route --to "grpcs://$addr" --tls-cert "$CERTS/metron.crt" \
	    --tls-key "$CERTS/metron.key" --tls-ca "$CERTS/ca.crt" "$@" \
	    <"$file" 2>"$err"
	l=$(grep ' event=sink_stopped ' "$err") || l=
	if [[ $l != *" dropped=0" ]]; then
		lgr_diag "send to $addr lost envelopes: $(cat "$err")"
		return 1
	fi
}

# --- subscribers ----------------------------------------------------------------

declare -gA SUB_PID=()

# sub_start NAME MODE ARGS...: egress_sub.py MODE ARGS in the background,
# envelopes to $BATS_TEST_TMPDIR/NAME.frames, its lines to NAME.log and
# errors to NAME.err, with --ready NAME.ready; sets SUB_PID[NAME]. ARGS
# are the mode's own (egress_sub.py grpc ADDR METHOD OUT: give ADDR
# METHOD and the options; OUT is filled in).
sub_start() {
	local name=$1 mode=$2 t=$BATS_TEST_TMPDIR pos
	shift 2
	rm -f "$t/$name.ready"
	: >"$t/$name.frames"
	if [ "$mode" = grpc ]; then
		pos=("$1" "$2" "$t/$name.frames")
		shift 2
	else
		pos=("$1" "$t/$name.frames")
		shift
	fi
	"$LGR_PYTHON" "$LGR_ROOT/t/roles/egress_sub.py" "$mode" "${pos[@]}" \
	    --ready "$t/$name.ready" "$@" \
	    3>&- {LGR_DIAG}>&- </dev/null >"$t/$name.log" 2>"$t/$name.err" &
	SUB_PID[$name]=$!
	EGRESS_PIDS+=("$!")
}

# sub_ready NAME: wait (30 s at most) until subscriber NAME's call is in
# place.
sub_ready() {
	await 600 "${SUB_PID[$1]}" test -e "$BATS_TEST_TMPDIR/$1.ready" || {
		lgr_diag "subscriber $1: $(cat "$BATS_TEST_TMPDIR/$1.log" \
		    "$BATS_TEST_TMPDIR/$1.err")"
		return 1
	}
}

# sub_end NAME: wait (20 s at most) until subscriber NAME ends; it must
# exit 0. Sets SUB_LINE to the last line it printed.
sub_end() {
	local st=0 t=$BATS_TEST_TMPDIR
	ended 400 "${SUB_PID[$1]}" || {
		lgr_diag "subscriber $1 did not end, $(count "$t/$1.frames") envelopes: $(cat "$t/$1.log" "$t/$1.err")"
		return 1
	}
	wait "${SUB_PID[$1]}" || st=$?
	SUB_LINE=$(tail -n 1 "$t/$1.log")
	if [ "$st" -ne 0 ]; then
		lgr_diag "subscriber $1 exited $st: $(cat "$t/$1.log" "$t/$1.err")"
		return 1
	fi
}

# --- envelopes ------------------------------------------------------------------

# logs FILE SOURCE N [LGR-EMIT ARGS...]: N log envelopes of SOURCE,
# payloads "SOURCE 1" to "SOURCE N", appended to FILE.
logs() {
	local f=$1 src=$2 n=$3
	shift 3
	seq -f "$src %g" "$n" | run_ok lgr-emit --source-id "$src" "$@" log >>"$f"
}
