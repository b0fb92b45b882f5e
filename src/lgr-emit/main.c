/* lgr-emit: make envelopes. Wrap each line of stdin as a log envelope, or
 * make one log, counter, gauge, timer or event from the arguments, once or
 * --count times at --rate per second, as frames on stdout.
 *
 * Signals: SIGTERM and SIGINT stop, flush and exit 0. SIGPIPE is ignored;
 * a closed stdout is logged and exits 1. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "envelope.h"
#include "frame.h"
#include "log.h"
#include "metrics.h"
#include "opt.h"
#include "sig.h"
#include "v2/envelope.pb-c.h"

#define OUT_BATCH (256 * 1024)
#define LINE_MAX_BYTES (64 * 1024)	/* longer lines are split, not lost */
#define MAX_TAGS 64
#define MAX_GAUGES 64

static const struct opt_prog prog = {
	.name = "lgr-emit",
	.usage =
	    "lgr-emit [--err] [--count N] [--instance-id ID] [--rate PER_SECOND]\n"
	    "[--size BYTES] [--source-id ID] [--tag K=V]... [--timestamp NS]\n"
	    "[--total N] KIND [ARGS...]\n"
	    "KIND: log [TEXT] | counter NAME DELTA | gauge NAME=VALUE[:UNIT]...\n"
	    "| timer NAME START_NS STOP_NS | event TITLE BODY\n",
	.help =
	    "Write v2 envelopes as frames on stdout.\n"
	    "\n"
	    "  log [TEXT]          a log envelope; without TEXT, one per line of stdin\n"
	    "  counter NAME DELTA  a counter (--total sets its total)\n"
	    "  gauge NAME=VALUE[:UNIT]...  a gauge with one or more metrics\n"
	    "  timer NAME START_NS STOP_NS  a timer\n"
	    "  event TITLE BODY    an event\n"
	    "\n"
	    "  --count N           envelopes to make (default 1; 0: until stopped);\n"
	    "                      from stdin, the most lines to read\n"
	    "  --err               log type ERR instead of OUT\n"
	    "  --instance-id ID    instance_id (default none)\n"
	    "  --rate PER_SECOND   pace the output (default: as fast as possible)\n"
	    "  --size BYTES        log payload or event body of exactly BYTES bytes,\n"
	    "                      TEXT (or BODY) repeated\n"
	    "  --source-id ID      source_id (default lgr-emit)\n"
	    "  --tag K=V           add a tag; repeatable\n"
	    "  --timestamp NS      fixed timestamp (default: now, per envelope)\n"
	    "  --total N           counter total (default 0)\n"
	    "  -h, --help          print this help\n"
	    "  -V, --version       print the version\n",
};

struct emit {
	Loggregator__V2__Envelope env;
	Loggregator__V2__Log log;
	Loggregator__V2__Counter counter;
	Loggregator__V2__Gauge gauge;
	Loggregator__V2__Timer timer;
	Loggregator__V2__Event event;
	Loggregator__V2__Envelope__TagsEntry tags[MAX_TAGS];
	Loggregator__V2__Envelope__TagsEntry *tagp[MAX_TAGS];
	Loggregator__V2__Gauge__MetricsEntry gentry[MAX_GAUGES];
	Loggregator__V2__Gauge__MetricsEntry *gentryp[MAX_GAUGES];
	Loggregator__V2__GaugeValue gvalue[MAX_GAUGES];

	uint64_t count;		/* 0: unbounded */
	double rate;		/* 0: unpaced */
	size_t size;		/* 0: payload as given */
	int fixed_ts;

	struct frame_writer out;
	unsigned char *tmpl;	/* packed envelope, re-stamped per frame */
	size_t tmpl_len;
	size_t ts_len;		/* varint bytes of the timestamp in tmpl */
	int64_t start_ns;	/* monotonic, for --rate */
	uint64_t sent;
};

static int64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static size_t
varint_len(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static void
varint_put(unsigned char *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (unsigned char)(v | 0x80);
		v >>= 7;
	}
	*p = (unsigned char)v;
}

/* Pack the envelope once; frames are copies with a new timestamp. */
static int
emit_build_template(struct emit *e)
{
	size_t len = loggregator__v2__envelope__get_packed_size(&e->env);

	free(e->tmpl);
	e->tmpl = malloc(len);
	if (e->tmpl == NULL)
		return -1;
	loggregator__v2__envelope__pack(&e->env, e->tmpl);
	e->tmpl_len = len;
	/* protobuf-c writes fields in number order: timestamp (1) first. */
	e->ts_len = 0;
	if (e->env.timestamp != 0 && len > 1 && e->tmpl[0] == 0x08)
		e->ts_len = varint_len((uint64_t)e->env.timestamp);
	return 0;
}

/* Wait until frame number e->sent is due under --rate. */
static int
emit_pace(struct emit *e)
{
	int64_t due, now;
	struct timespec ts;

	if (e->rate <= 0)
		return 0;
	due = e->start_ns + (int64_t)((double)e->sent * 1e9 / e->rate);
	now = mono_ns();
	if (now >= due)
		return 0;
	if (frame_flush(&e->out) == -1)
		return -1;
	ts.tv_sec = (due - now) / 1000000000;
	ts.tv_nsec = (due - now) % 1000000000;
	nanosleep(&ts, NULL);	/* EINTR: the caller looks at the flags */
	return 0;
}

static int
emit_template_frame(struct emit *e)
{
	unsigned char *dst;

	if (!e->fixed_ts) {
		int64_t now = time_now_ns();

		if (e->ts_len && varint_len((uint64_t)now) == e->ts_len) {
			dst = frame_reserve(&e->out, e->tmpl_len);
			if (dst == NULL)
				return -1;
			memcpy(dst, e->tmpl, e->tmpl_len);
			varint_put(dst + 1, (uint64_t)now);
			frame_commit(&e->out, e->tmpl_len);
			return 0;
		}
		e->env.timestamp = now;
		if (emit_build_template(e) == -1)
			return -1;
	}
	return frame_write(&e->out, e->tmpl, e->tmpl_len);
}

static int
emit_repeat(struct emit *e)
{
	if (emit_build_template(e) == -1)
		return -1;
	e->start_ns = mono_ns();
	while (e->count == 0 || e->sent < e->count) {
		if (sig_term())
			break;
		if (emit_pace(e) == -1 || emit_template_frame(e) == -1)
			return -1;
		e->sent++;
	}
	return frame_flush(&e->out);
}

static int
emit_line(struct emit *e, const char *p, size_t len)
{
	unsigned char *dst;
	size_t n;

	if (len > 0 && p[len - 1] == '\r')
		len--;
	if (emit_pace(e) == -1)
		return -1;
	e->log.payload.data = (uint8_t *)p;
	e->log.payload.len = len;
	e->env.timestamp = e->fixed_ts ? e->env.timestamp : time_now_ns();
	n = loggregator__v2__envelope__get_packed_size(&e->env);
	dst = frame_reserve(&e->out, n);
	if (dst == NULL)
		return -1;
	loggregator__v2__envelope__pack(&e->env, dst);
	frame_commit(&e->out, n);
	e->sent++;
	return 0;
}

/* Every line of stdin becomes a log envelope. Lines longer than
 * LINE_MAX_BYTES are cut into pieces of that size, so no input is lost
 * and memory stays bounded. Returns 0, -1 on output error, -2 on input
 * error. */
static int
emit_stdin(struct emit *e)
{
	static char buf[4 * LINE_MAX_BYTES];
	size_t start = 0, end = 0;
	int eof = 0;

	e->start_ns = mono_ns();
	while (!eof && !sig_term()) {
		ssize_t n;
		char *nl;

		if (start > 0) {
			memmove(buf, buf + start, end - start);
			end -= start;
			start = 0;
		}
		n = read(STDIN_FILENO, buf + end, sizeof(buf) - end);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			log_error("event=read_failed error=\"%s\"", strerror(errno));
			return -2;
		}
		if (n == 0)
			eof = 1;
		end += n;
		for (;;) {
			size_t have = end - start, len;

			if (e->count && e->sent >= e->count)
				return frame_flush(&e->out);
			nl = memchr(buf + start, '\n', have);
			if (nl != NULL)
				len = nl - (buf + start);
			else if (have >= LINE_MAX_BYTES || (eof && have > 0))
				len = have;
			else
				break;
			if (len > LINE_MAX_BYTES) {
				len = LINE_MAX_BYTES;	/* the rest is the next piece */
				nl = NULL;
			}
			if (emit_line(e, buf + start, len) == -1)
				return -1;
			start += len + (nl != NULL);
		}
		/* Live output: what one read brought goes out now. */
		if (frame_flush(&e->out) == -1)
			return -1;
	}
	return frame_flush(&e->out);
}

static void
emit_add_tag(struct emit *e, const char *kv)
{
	const char *eq = strchr(kv, '=');
	size_t i;

	if (eq == NULL || eq == kv)
		opt_usage_error("--tag wants K=V, not '%s'", kv);
	for (i = 0; i < e->env.n_tags; i++) {
		if (strncmp(e->tags[i].key, kv, eq - kv) == 0 &&
		    e->tags[i].key[eq - kv] == '\0') {
			e->tags[i].value = (char *)eq + 1;	/* last wins */
			return;
		}
	}
	if (e->env.n_tags == MAX_TAGS)
		opt_usage_error("at most %d --tag options", MAX_TAGS);
	i = e->env.n_tags++;
	loggregator__v2__envelope__tags_entry__init(&e->tags[i]);
	e->tags[i].key = strndup(kv, eq - kv);
	e->tags[i].value = (char *)eq + 1;
	e->tagp[i] = &e->tags[i];
	e->env.tags = e->tagp;
}

/* TEXT repeated to exactly size bytes. */
static char *
emit_fill(const char *text, size_t size)
{
	size_t tl = strlen(text), i;
	char *p;

	if (tl == 0)
		text = "x", tl = 1;
	p = malloc(size + 1);
	if (p == NULL) {
		log_error("event=start_failed error=\"%s\"", strerror(errno));
		exit(1);
	}
	for (i = 0; i < size; i++)
		p[i] = text[i % tl];
	p[size] = '\0';
	return p;
}

static void
emit_parse_gauge(struct emit *e, const char *arg)
{
	const char *eq = strchr(arg, '='), *colon;
	size_t i = e->gauge.n_metrics;
	char *num;
	double v;

	if (eq == NULL || eq == arg)
		opt_usage_error("gauge wants NAME=VALUE[:UNIT], not '%s'", arg);
	if (i == MAX_GAUGES)
		opt_usage_error("at most %d gauge metrics", MAX_GAUGES);
	colon = strchr(eq + 1, ':');
	num = colon ? strndup(eq + 1, colon - eq - 1) : strdup(eq + 1);
	if (num == NULL || parse_double(num, &v) == -1)
		opt_usage_error("gauge value in '%s' is not a number", arg);
	free(num);
	loggregator__v2__gauge__metrics_entry__init(&e->gentry[i]);
	loggregator__v2__gauge_value__init(&e->gvalue[i]);
	e->gentry[i].key = strndup(arg, eq - arg);
	e->gvalue[i].value = v;
	e->gvalue[i].unit = colon ? (char *)colon + 1 : "";
	e->gentry[i].value = &e->gvalue[i];
	e->gentryp[i] = &e->gentry[i];
	e->gauge.metrics = e->gentryp;
	e->gauge.n_metrics = i + 1;
}

/* Fill in the message from KIND and its arguments. Returns 1 when log
 * lines come from stdin. */
static int
emit_parse_kind(struct emit *e, int argc, char **argv, int log_err,
    uint64_t total)
{
	const char *kind;
	int n, i;

	if (argc < 1)
		opt_usage_error("missing KIND (log, counter, gauge, timer, event)");
	kind = argv[0];
	n = argc - 1;
	if (strcmp(kind, "log") == 0) {
		if (n > 1)
			opt_usage_error("log takes at most one TEXT (quote it)");
		e->env.message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_LOG;
		e->env.log = &e->log;
		e->log.type = log_err ? LOGGREGATOR__V2__LOG__TYPE__ERR :
		    LOGGREGATOR__V2__LOG__TYPE__OUT;
		if (n == 0 && e->size == 0)
			return 1;
		if (e->size) {
			e->log.payload.data = (uint8_t *)emit_fill(n ? argv[1] :
			    "lgr-emit load ", e->size);
			e->log.payload.len = e->size;
		} else {
			e->log.payload.data = (uint8_t *)argv[1];
			e->log.payload.len = strlen(argv[1]);
		}
		return 0;
	}
	if (log_err)
		opt_usage_error("--err applies to log only");
	if (e->size && strcmp(kind, "event") != 0)
		opt_usage_error("--size applies to log and event only");
	if (strcmp(kind, "counter") == 0) {
		if (n != 2)
			opt_usage_error("counter wants NAME DELTA");
		e->env.message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_COUNTER;
		e->env.counter = &e->counter;
		e->counter.name = argv[1];
		e->counter.delta = opt_u64(argv[2], "counter DELTA", 0,
		    UINT64_MAX);
		e->counter.total = total;
	} else if (strcmp(kind, "gauge") == 0) {
		if (n < 1)
			opt_usage_error("gauge wants NAME=VALUE[:UNIT]...");
		e->env.message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_GAUGE;
		e->env.gauge = &e->gauge;
		for (i = 1; i <= n; i++)
			emit_parse_gauge(e, argv[i]);
	} else if (strcmp(kind, "timer") == 0) {
		if (n != 3)
			opt_usage_error("timer wants NAME START_NS STOP_NS");
		e->env.message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_TIMER;
		e->env.timer = &e->timer;
		e->timer.name = argv[1];
		e->timer.start = opt_i64(argv[2], "timer START_NS", INT64_MIN,
		    INT64_MAX);
		e->timer.stop = opt_i64(argv[3], "timer STOP_NS", INT64_MIN,
		    INT64_MAX);
	} else if (strcmp(kind, "event") == 0) {
		if (n != 2)
			opt_usage_error("event wants TITLE BODY");
		e->env.message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_EVENT;
		e->env.event = &e->event;
		e->event.title = argv[1];
		e->event.body = e->size ? emit_fill(argv[2], e->size) : argv[2];
	} else {
		opt_usage_error("unknown KIND '%s' (log, counter, gauge, timer, "
		    "event)", kind);
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "count", required_argument, NULL, 'c' },
		{ "err", no_argument, NULL, 'e' },
		{ "instance-id", required_argument, NULL, 'i' },
		{ "rate", required_argument, NULL, 'r' },
		{ "size", required_argument, NULL, 'z' },
		{ "source-id", required_argument, NULL, 's' },
		{ "tag", required_argument, NULL, 't' },
		{ "timestamp", required_argument, NULL, 'T' },
		{ "total", required_argument, NULL, 'o' },
		OPT_COMMON,
		{ NULL, 0, NULL, 0 }
	};
	static struct emit e;
	uint64_t total = 0;
	int c, count_set = 0, log_err = 0, from_stdin, rc;
	struct arena arena;
	size_t need;

	opt_init(&prog);
	loggregator__v2__envelope__init(&e.env);
	loggregator__v2__log__init(&e.log);
	loggregator__v2__counter__init(&e.counter);
	loggregator__v2__gauge__init(&e.gauge);
	loggregator__v2__timer__init(&e.timer);
	loggregator__v2__event__init(&e.event);
	e.env.source_id = "lgr-emit";
	e.count = 1;
	while ((c = opt_next(argc, argv, "", longopts)) != -1) {
		switch (c) {
		case 'c':
			e.count = opt_u64(optarg, "--count", 0, UINT64_MAX);
			count_set = 1;
			break;
		case 'e':
			log_err = 1;
			break;
		case 'i':
			e.env.instance_id = optarg;
			break;
		case 'o':
			total = opt_u64(optarg, "--total", 0, UINT64_MAX);
			break;
		case 'r':
			e.rate = opt_double(optarg, "--rate", 0.001, 1e9);
			break;
		case 's':
			e.env.source_id = optarg;
			break;
		case 't':
			emit_add_tag(&e, optarg);
			break;
		case 'T':
			e.env.timestamp = opt_i64(optarg, "--timestamp",
			    INT64_MIN, INT64_MAX);
			e.fixed_ts = 1;
			break;
		case 'z':
			e.size = opt_u64(optarg, "--size", 1, FRAME_MAX_DEFAULT / 2);
			break;
		default:
			opt_usage_error("unknown option");
		}
	}
	from_stdin = emit_parse_kind(&e, argc - optind, argv + optind,
	    log_err, total);
	if (arena_init(&arena, 4096, 1 << 20) == -1 ||
	    envelope_keep_sign(&e.env, &arena) == -1) {
		log_error("event=start_failed error=\"%s\"", strerror(errno));
		return 1;
	}
	if (from_stdin && !count_set)
		e.count = 0;

	/* Lines are capped, so this bounds every envelope made; a frame
	 * must fit what readers accept by default. */
	need = loggregator__v2__envelope__get_packed_size(&e.env) + 16 +
	    (from_stdin ? LINE_MAX_BYTES : 0);
	if (need > FRAME_MAX_DEFAULT)
		opt_usage_error("envelope of %zu bytes is over the %d-byte frame "
		    "limit: shorten the tags or text", need, FRAME_MAX_DEFAULT);
	if (frame_writer_init(&e.out, STDOUT_FILENO, need + FRAME_HEADER >
	    OUT_BATCH ? need + FRAME_HEADER : OUT_BATCH) == -1) {
		log_error("event=start_failed error=\"%s\"", strerror(errno));
		return 1;
	}
	fd_grow_pipe(STDOUT_FILENO);
	sig_init();
	rc = from_stdin ? emit_stdin(&e) : emit_repeat(&e);
	if (rc == -1) {
		log_error("event=write_failed error=\"%s\" sent=%llu",
		    strerror(errno), (unsigned long long)e.out.flushed);
		return 1;
	}
	return rc == 0 ? 0 : 1;
}
