# t/lib.bash: what every bats suite loads first (`load lib`).
#
# Puts the built programs first on PATH, bounds each test's time, checks
# exit statuses the way git's test_must_fail does (a status above 128 is a
# signal, never an expected failure), decodes frame streams with Debian's
# python3-protobuf (a decoder independent of lgr's), and stops in
# teardown whatever a test left running in the background.

bats_require_minimum_version 1.5.0

LGR_ROOT=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
PATH="$LGR_ROOT/bin:$PATH"
export PATH

# bats reads this after loading the suite, before each test.
: "${BATS_TEST_TIMEOUT:=60}"

# Debian's interpreter: the one python3-protobuf is installed for. A
# python3 earlier on PATH may be another interpreter without it.
LGR_PYTHON=/usr/bin/python3

# --- setup and teardown ----------------------------------------------------

setup() {
	# Jobs already running (bats' own timeout watchdog) are not ours.
	LGR_PREEXISTING_JOBS=" $(jobs -p | tr '\n' ' ') "
	# Helpers report on the test's own stderr, even while a command they
	# run has its stderr sent to a file.
	exec {LGR_DIAG}>&2
}

# The children of a process, then the process: a background job is a
# subshell whose children would outlive it.
lgr_kill_tree() {
	local pid=$1 child
	for child in $(ps -o pid= --ppid "$pid" 2>/dev/null); do
		lgr_kill_tree "$child"
	done
	kill -TERM "$pid" 2>/dev/null || true
}

teardown() {
	local pid
	for pid in $(jobs -p); do
		case $LGR_PREEXISTING_JOBS in
		*" $pid "*) continue ;;
		esac
		lgr_kill_tree "$pid"
		wait "$pid" 2>/dev/null || true
	done
}

# Background commands are started in the tests themselves, as
# `CMD <in >out 3>&- &`: bats' fd 3 closed (a child holding it keeps bats
# waiting), and redirections made in the child, after the fork (a function
# call would open a fifo in the test's shell and block there).

# --- exit statuses ---------------------------------------------------------

lgr_diag() {
	printf '%s\n' "$*" >&"${LGR_DIAG:-2}"
}

# run_ok CMD...: CMD must exit 0. Redirections given to run_ok apply to
# CMD, so `run_ok lgr-emit log x >"$f"` writes the frames to $f. Sets
# $status.
run_ok() {
	status=0
	"$@" {LGR_DIAG}>&- || status=$?
	if [ "$status" -gt 128 ]; then
		lgr_diag "run_ok: '$*' died of signal $((status - 128))"
		return 1
	fi
	if [ "$status" -ne 0 ]; then
		lgr_diag "run_ok: '$*' exited $status, wanted 0"
		return 1
	fi
}

# must_fail [-N] CMD...: CMD must fail on its own, like git's
# test_must_fail: an exit status from 1 to 125, exactly N if given. A
# status above 128 (killed by a signal) or 126/127 (not run) fails the
# test. Sets $status.
must_fail() {
	local want=
	case ${1-} in
	-[0-9]*) want=${1#-}; shift ;;
	esac
	status=0
	"$@" {LGR_DIAG}>&- || status=$?
	if [ "$status" -gt 128 ]; then
		lgr_diag "must_fail: '$*' died of signal $((status - 128))"
		return 1
	fi
	if [ "$status" -eq 0 ] || [ "$status" -ge 126 ]; then
		lgr_diag "must_fail: '$*' exited $status, wanted a failure"
		return 1
	fi
	if [ -n "$want" ] && [ "$status" -ne "$want" ]; then
		lgr_diag "must_fail: '$*' exited $status, wanted $want"
		return 1
	fi
}

# no_signal: after `run`, fail if the program was killed by a signal.
no_signal() {
	if [ "$status" -gt 128 ]; then
		lgr_diag "killed by signal $((status - 128))"
		return 1
	fi
}

# --- checks ----------------------------------------------------------------

# same WANT GOT: string equality that shows both on failure.
same() {
	if [ "$1" != "$2" ]; then
		lgr_diag "wanted: $1"
		lgr_diag "got:    $2"
		return 1
	fi
}

# same_file WANT_FILE GOT_FILE: byte equality, with a diff on failure.
same_file() {
	if ! cmp -s "$1" "$2"; then
		lgr_diag "files differ: $1 $2"
		diff "$1" "$2" >&"$LGR_DIAG" 2>&1 || true
		return 1
	fi
}

# contains TEXT PATTERN: TEXT holds the fixed string PATTERN.
contains() {
	case $1 in
	*"$2"*) return 0 ;;
	esac
	lgr_diag "wanted '$2' in:"
	lgr_diag "$1"
	return 1
}

# last_line FILE: the last line of FILE.
last_line() {
	tail -n 1 "$1"
}

# field KEY LINE: the value of key=value field KEY in a log line.
field() {
	local w
	for w in $2; do
		case $w in
		"$1"=*) printf '%s\n' "${w#*=}"; return 0 ;;
		esac
	done
	return 1
}

# wait_until N CMD...: retry CMD every 0.05 s, at most N times.
wait_until() {
	local n=$1
	shift
	while [ "$n" -gt 0 ]; do
		"$@" && return 0
		n=$((n - 1))
		sleep 0.05
	done
	lgr_diag "wait_until: gave up on '$*'"
	return 1
}

# has_frames N FILE: FILE holds at least N whole frames (for wait_until).
has_frames() {
	local n
	n=$(decode --count --partial "$2") || return 1
	[ "$n" -ge "$1" ]
}

# frame_hex LEN HEXBODY: a frame header saying LEN, then the bytes of
# HEXBODY (LEN need not match: for truncated and oversized frames).
frame_hex() {
	printf '%08x%s' "$1" "$2" | xxd -r -p
}

# --- an independent decoder ------------------------------------------------

# decode [--json|--count|--payloads] [--partial] FILE: the envelopes of a
# frame stream, one a line: protobuf text format (the default); JSON from
# json_format with the .proto field names and unset fields as their zero
# value, keys sorted; the number of frames; or each log payload as text. Exits 1 if the stream ends inside a frame (unless
# --partial) or a frame is not an envelope.
decode() {
	lgr_decoder_ready || return 1
	"$LGR_PYTHON" "$BATS_FILE_TMPDIR/lgr_decode.py" "$BATS_FILE_TMPDIR" "$@"
}

# Generate the Python modules and the script once per suite file.
lgr_decoder_ready() {
	local py=$BATS_FILE_TMPDIR/lgr_decode.py
	[ -f "$py" ] && return 0
	protoc --python_out="$BATS_FILE_TMPDIR" -I "$LGR_ROOT/share/proto" \
	    v2/envelope.proto || return 1
	cat >"$py.tmp" <<'EOF'
# Read a stream of frames (4-byte big-endian length, then a serialized
# loggregator.v2.Envelope) and print each envelope on one line.
import json
import struct
import sys

sys.path.insert(0, sys.argv[1])
from google.protobuf import json_format, text_format  # noqa: E402
from v2 import envelope_pb2  # noqa: E402

mode, partial, path = "text", False, None
for arg in sys.argv[2:]:
    if arg in ("--json", "--count", "--payloads"):
        mode = arg[2:]
    elif arg == "--partial":
        partial = True
    else:
        path = arg
with open(path, "rb") as f:
    data = f.read()
out = sys.stdout
off = n = 0
while off < len(data):
    if len(data) - off < 4:
        if partial:
            break
        sys.exit("decode: stream ends inside the header at %d" % off)
    (length,) = struct.unpack(">I", data[off:off + 4])
    body = data[off + 4:off + 4 + length]
    if len(body) < length:
        if partial:
            break
        sys.exit("decode: stream ends inside the frame at %d" % off)
    env = envelope_pb2.Envelope()
    try:
        env.ParseFromString(body)
    except Exception as e:
        sys.exit("decode: frame at %d is not an envelope: %s" % (off, e))
    if mode == "text":
        out.write(text_format.MessageToString(env, as_one_line=True) + "\n")
    elif mode == "json":
        d = json_format.MessageToDict(
            env, preserving_proto_field_name=True,
            including_default_value_fields=True)
        out.write(json.dumps(d, sort_keys=True, separators=(",", ":")) + "\n")
    elif mode == "payloads":
        out.write(env.log.payload.decode("utf-8", "backslashreplace") + "\n")
    off += 4 + length
    n += 1
if mode == "count":
    out.write("%d\n" % n)
EOF
	mv "$py.tmp" "$py"
}
