#!/bin/bash
# t/bench/cache.sh: lgr-cache's figures, for make bench (t/bench/run) or
# alone from the top of the tree.
#
#   stored:     envelopes stored per second, lgr-cache pinned to core 0
#               reading a file of 200-byte logs (best of BENCH_RUNS), to
#               one source and round robin to 10,000
#   recentlogs: answers per second for an app holding 100 200-byte logs,
#               wrk with 64 connections, while lgr-emit writes 1,000/s to
#               that app and 20,000/s to another
set -u
cd "$(dirname "$0")/../.." || exit 1
export PATH="$PWD/bin:$PATH"

N=${BENCH_CACHE_N:-2000000}
RUNS=${BENCH_RUNS:-5}
SECS=${BENCH_CACHE_SECS:-5}
SIZE=200
tmp=$(mktemp -d)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do
		kill -TERM "$p" 2>/dev/null
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

now() { date +%s%N; }

echo
echo "lgr-cache: $N envelopes of $SIZE-byte logs from a file, lgr-cache on core 0"
mkdir -p "$tmp/py"
protoc --python_out="$tmp/py" -I share/proto v2/envelope.proto
lgr-emit --count "$N" --size $SIZE log > "$tmp/one"
LGR_PB=$tmp/py /usr/bin/python3 t/lgr-cache/cache.py gen "$N" $SIZE \
    "$tmp/many" 10000

# stored FILE: envelopes stored per second, best of RUNS.
stored() {
	local best=0 t0 t1 got rate
	for _ in $(seq "$RUNS"); do
		t0=$(now)
		taskset -c 0 lgr-cache --http 127.0.0.1:0 < "$1" > /dev/null \
		    2> "$tmp/err"
		t1=$(now)
		got=$(sed -n 's/.* event=stop .* stored=\([0-9]*\) .*/\1/p' "$tmp/err")
		rate=$(awk -v f="${got:-0}" -v ns=$((t1 - t0)) \
		    'BEGIN { printf "%.0f", f / (ns / 1e9) }')
		[ "$rate" -gt "$best" ] && best=$rate
	done
	echo "$best"
}
for what in one many; do
	rate=$(stored "$tmp/$what")
	label="one core: lgr-cache < file, 1 source"
	[ $what = many ] && label="one core: lgr-cache < file, 10000 sources"
	awk -v r="$rate" -v l="$label (stored)" \
	    'BEGIN { printf "%-50s %6.2f M env/s\n", l, r / 1e6 }'
done
echo "floor: 1.00 M env/s stored on one core"

echo
if ! command -v wrk > /dev/null; then
	echo "recentlogs: skipped, wrk is not installed (Debian package wrk)"
	exit 0
fi
mkfifo "$tmp/in"
lgr-cache --http 127.0.0.1:0 < "$tmp/in" > /dev/null 2> "$tmp/cache.err" &
pids+=($!)
exec 5> "$tmp/in"
for _ in $(seq 100); do
	port=$(sed -n 's/.*event=listening proto=http addr=127.0.0.1:\([0-9]*\).*/\1/p' \
	    "$tmp/cache.err")
	[ -n "$port" ] && break
	sleep 0.05
done
url="http://127.0.0.1:$port/apps/bench-app/recentlogs"
lgr-emit --count 100 --size $SIZE --source-id bench-app --instance-id 0 \
    --tag source_type=APP/PROC/WEB log x >&5
lgr-emit --count 0 --rate 1000 --size $SIZE --source-id bench-app \
    --instance-id 0 --tag source_type=APP/PROC/WEB log x >&5 &
pids+=($!)
lgr-emit --count 0 --rate 20000 --size $SIZE --source-id other log y >&5 &
pids+=($!)
for _ in $(seq 100); do
	n=$(curl -s "$url" | grep -c -a -- '^--' || true)
	[ "$n" -ge 100 ] && break
	sleep 0.05
done
bytes=$(curl -s "$url" | wc -c)
wrk -t2 -c64 -d"${SECS}s" "$url" > "$tmp/wrk" 2>&1
rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$tmp/wrk")
non2xx=$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$tmp/wrk")
awk -v r="${rps:-0}" -v b="$bytes" -v l="recentlogs, 100 logs ($bytes-byte answer), wrk 64 conns" \
    'BEGIN { printf "%-50s %8.0f req/s %7.0f MB/s\n", l, r, r * b / 1e6 }'
echo "  while writing 1000/s to that app and 20000/s to another${non2xx:+; $non2xx non-2xx answers}"
echo "floor: 20000 recentlogs requests/s"
