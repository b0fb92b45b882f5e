/* test_rfc5424: rfc5424 against the golden vectors recorded from the Go
 * syslog agent's ToRFC5424 and TCPWriter framing, plus edge cases. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "arena.h"
#include "buf.h"
#include "envelope.h"
#include "rfc5424.h"
#include "tap.h"

#define OUT_MAX (1u << 20)

static uint8_t *
unhex(const char *h, size_t *len)
{
	size_t n = strlen(h) / 2, i;
	uint8_t *p = malloc(n + 1);
	unsigned x;

	for (i = 0; p != NULL && i < n; i++) {
		if (sscanf(h + 2 * i, "%2x", &x) != 1) {
			free(p);
			return NULL;
		}
		p[i] = (uint8_t)x;
	}
	*len = n;
	return p;
}

/* Messages as a list of (pointer, length), to compare as multisets: Go
 * writes gauge entries in random map order. */
struct msgs {
	size_t n;
	const char *p[64];
	size_t len[64];
};

static int
msg_cmp(const char *a, size_t an, const char *b, size_t bn)
{
	int c = memcmp(a, b, an < bn ? an : bn);

	return c ? c : (an > bn) - (an < bn);
}

static void
msgs_sort(struct msgs *m)
{
	size_t i, j;

	for (i = 1; i < m->n; i++)
		for (j = i; j > 0 && msg_cmp(m->p[j - 1], m->len[j - 1],
		    m->p[j], m->len[j]) > 0; j--) {
			const char *tp = m->p[j];
			size_t tl = m->len[j];

			m->p[j] = m->p[j - 1];
			m->len[j] = m->len[j - 1];
			m->p[j - 1] = tp;
			m->len[j - 1] = tl;
		}
}

static int
msgs_equal(struct msgs *a, struct msgs *b)
{
	size_t i;

	if (a->n != b->n)
		return 0;
	msgs_sort(a);
	msgs_sort(b);
	for (i = 0; i < a->n; i++)
		if (msg_cmp(a->p[i], a->len[i], b->p[i], b->len[i]) != 0)
			return 0;
	return 1;
}

/* Split framed bytes into messages; -1 when they do not frame. */
static int
split_framed(const char *p, size_t len, struct msgs *m)
{
	size_t off = 0;
	int rc;

	m->n = 0;
	while (m->n < 64 &&
	    (rc = rfc5424_unframe(p, len, &off, &m->p[m->n], &m->len[m->n]))
	    == 1)
		m->n++;
	return off == len ? 0 : -1;
}

static void
show(const char *what, const char *p, size_t n)
{
	printf("# %s: %.*s", what, (int)n, p);
	if (n == 0 || p[n - 1] != '\n')
		printf("\n");
}

static void
run_record(json_t *r, struct arena *a)
{
	const char *name = json_string_value(json_object_get(r, "case"));
	json_t *params = json_object_get(r, "params");
	json_t *out = json_object_get(r, "out");
	json_t *extra = json_object_get(r, "extra");
	const char *framed_hex = json_string_value(json_object_get(extra,
	    "tcp_framed"));
	struct rfc5424_opts o = { 0 };
	Loggregator__V2__Envelope *e;
	uint8_t *in, *want_bytes[64], *fr = NULL;
	struct msgs want = { 0 }, got = { 0 };
	struct buf b, bf;
	const char *why;
	size_t len, i, frlen = 0;
	int n, nf;

	if (name == NULL || (in = unhex(json_string_value(json_object_get(r,
	    "in")), &len)) == NULL) {
		ok(0, "golden: a record without case or in");
		return;
	}
	o.hostname = json_string_value(json_object_get(params,
	    "default_hostname"));
	o.omit_metadata = json_is_true(json_object_get(params,
	    "omit_metadata"));
	arena_reset(a);
	e = envelope_unpack(a, in, len);
	if (!ok(e != NULL, "golden %s: envelope decodes", name)) {
		free(in);
		return;
	}
	for (i = 0; i < json_array_size(out) && i < 64; i++) {
		want_bytes[i] = unhex(json_string_value(json_array_get(out, i)),
		    &want.len[i]);
		want.p[i] = (const char *)want_bytes[i];
	}
	want.n = i;
	if (buf_init(&b, 256, OUT_MAX) == -1 || buf_init(&bf, 256, OUT_MAX)
	    == -1)
		exit(1);

	/* Unframed: join is ambiguous, so frame to split, then compare. */
	o.framed = 1;
	n = rfc5424_format(e, &o, &bf, &why);
	if (want.n == 0 && json_object_get(extra, "error") != NULL) {
		ok(n == -1 && errno == EINVAL && bf.len == 0,
		    "golden %s: refused (%s; Go: %s)", name,
		    why ? why : "no reason",
		    json_string_value(json_object_get(extra, "error")));
		goto done;
	}
	ok(n == (int)want.n, "golden %s: %zu messages (got %d)", name,
	    want.n, n);
	if (split_framed(bf.data, bf.len, &got) == -1)
		ok(0, "golden %s: own framing splits", name);
	else if (!ok(msgs_equal(&got, &want), "golden %s: messages byte for "
	    "byte", name)) {
		for (i = 0; i < want.n; i++)
			show("want", want.p[i], want.len[i]);
		for (i = 0; i < got.n; i++)
			show("got ", got.p[i], got.len[i]);
	}

	/* The unframed output is the messages back to back. */
	o.framed = 0;
	nf = rfc5424_format(e, &o, &b, NULL);
	{
		size_t total = 0;

		for (i = 0; i < got.n; i++)
			total += got.len[i];
		ok(nf == n && b.len == total, "golden %s: unframed is the "
		    "same messages", name);
	}

	/* Go's TCP framing: the recorded frames in Go's order are our
	 * frames as a multiset. */
	if (framed_hex != NULL) {
		struct msgs gf, of;

		fr = unhex(framed_hex, &frlen);
		if (split_framed((const char *)fr, frlen, &gf) == -1 ||
		    split_framed(bf.data, bf.len, &of) == -1)
			ok(0, "golden %s: tcp_framed splits", name);
		else
			ok(msgs_equal(&gf, &of) && frlen == bf.len,
			    "golden %s: tcp_framed", name);
	}
done:
	for (i = 0; i < want.n; i++)
		free(want_bytes[i]);
	free(fr);
	free(in);
	buf_release(&b);
	buf_release(&bf);
}

static void
run_golden(const char *path, struct arena *a)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	json_error_t err;
	json_t *r;
	int records = 0;

	if (!ok(f != NULL, "golden: open %s", path))
		return;
	while (getline(&line, &cap, f) > 0) {
		if ((r = json_loads(line, 0, &err)) == NULL) {
			ok(0, "golden: bad json line: %s", err.text);
			continue;
		}
		run_record(r, a);
		json_decref(r);
		records++;
	}
	free(line);
	fclose(f);
	ok(records >= 15, "golden: %d records read", records);
}

/* A hand-built envelope and its formatting. */
struct env {
	Loggregator__V2__Envelope e;
	Loggregator__V2__Log log;
	Loggregator__V2__Counter counter;
	Loggregator__V2__Gauge gauge;
	Loggregator__V2__Event event;
	Loggregator__V2__Envelope__TagsEntry tag[8];
	Loggregator__V2__Envelope__TagsEntry *tagp[8];
	Loggregator__V2__Gauge__MetricsEntry gm[4];
	Loggregator__V2__Gauge__MetricsEntry *gmp[4];
	Loggregator__V2__GaugeValue gv[4];
};

static void
env_log(struct env *v, const char *payload, size_t n)
{
	memset(v, 0, sizeof(*v));
	loggregator__v2__envelope__init(&v->e);
	loggregator__v2__log__init(&v->log);
	v->e.timestamp = 1700000000123456789LL;
	v->e.source_id = "app";
	v->e.instance_id = "0";
	v->e.message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_LOG;
	v->e.log = &v->log;
	v->log.payload.data = (uint8_t *)payload;
	v->log.payload.len = n;
	v->e.tags = v->tagp;
}

static void
env_tag(struct env *v, const char *k, const char *val)
{
	size_t i = v->e.n_tags++;

	loggregator__v2__envelope__tags_entry__init(&v->tag[i]);
	v->tag[i].key = (char *)k;
	v->tag[i].value = (char *)val;
	v->tagp[i] = &v->tag[i];
}

/* Format v unframed with hostname h; the text or NULL on error. */
static const char *
fmt(struct env *v, const char *h, int omit, struct buf *b, int *n)
{
	struct rfc5424_opts o = { h, omit, 0 };

	buf_reset(b);
	*n = rfc5424_format(&v->e, &o, b, NULL);
	if (*n == -1 || buf_putc(b, '\0') == -1)
		return NULL;
	b->len--;
	return b->data;
}

#define HDR "<14>1 2023-11-14T22:13:20.123456+00:00 "

static void
edge_cases(void)
{
	struct env v;
	struct buf b;
	const char *s;
	char big[400], want[600];
	int n;

	if (buf_init(&b, 64, OUT_MAX) == -1)
		exit(1);

	env_log(&v, "a\0b\0", 4);
	s = fmt(&v, "h", 0, &b, &n);
	ok(s && strcmp(s, HDR "h app [/0] - - ab\n") == 0,
	    "NULs removed, newline added");

	env_log(&v, "x\n", 2);
	s = fmt(&v, "h", 0, &b, &n);
	ok(s && strcmp(s, HDR "h app [/0] - - x\n") == 0,
	    "no second newline");

	env_log(&v, "", 0);
	s = fmt(&v, "", 0, &b, &n);
	ok(s && strcmp(s, HDR "- app [/0] - - \n") == 0,
	    "empty payload and hostname");

	env_log(&v, "x", 1);
	env_tag(&v, "k", "a\\b\"c]d");
	env_tag(&v, "b", "1");
	s = fmt(&v, "h", 0, &b, &n);
	ok(s && strcmp(s, HDR "h app [/0] - [tags@47450 b=\"1\" "
	    "k=\"a\\\\b\\\"c\\]d\"] x\n") == 0, "SD escaping, keys sorted");

	env_log(&v, "x", 1);
	env_tag(&v, "k", "first");
	env_tag(&v, "k", "last");
	s = fmt(&v, "h", 0, &b, &n);
	ok(s && strcmp(s, HDR "h app [/0] - [tags@47450 k=\"last\"] x\n")
	    == 0, "duplicate tag: the last wins");

	env_log(&v, "x", 1);
	env_tag(&v, "k", "\xff");
	s = fmt(&v, "h", 0, &b, &n);
	ok(s == NULL && n == -1 && errno == EINVAL && b.len == 0,
	    "non-UTF-8 tag value refused");
	s = fmt(&v, "h", 1, &b, &n);
	ok(s != NULL, "... unless metadata is off");

	env_log(&v, "x", 1);
	env_tag(&v, "a b", "v");
	s = fmt(&v, "h", 0, &b, &n);
	ok(s == NULL && errno == EINVAL, "tag name with a space refused");

	/* Hostname parts cut to 63 each. */
	memset(big, 'a', 100);
	big[100] = '\0';
	env_log(&v, "x", 1);
	env_tag(&v, "organization_name", big);
	env_tag(&v, "space_name", "s p");
	s = fmt(&v, "h", 1, &b, &n);
	snprintf(want, sizeof(want), HDR "%.63s.s-p. app [/0] - - x\n", big);
	ok(s && strcmp(s, want) == 0, "hostname part cut to 63");

	/* A cut that leaves a trailing dash keeps it (strip is first). */
	memset(big, 'a', 62);
	strcpy(big + 62, "-b");
	env_log(&v, "x", 1);
	env_tag(&v, "app_name", big);
	s = fmt(&v, "h", 1, &b, &n);
	snprintf(want, sizeof(want), HDR "..%.63s app [/0] - - x\n", big);
	ok(s && strcmp(s, want) == 0, "cut after the dash strip");

	/* Binding hostname: cut to 255 before the check. */
	memset(big, 'h', 300);
	big[300] = ' ';
	big[301] = '\0';
	env_log(&v, "x", 1);
	s = fmt(&v, big, 1, &b, &n);
	ok(s != NULL && strstr(s, " app ") - s == 39 + 255,
	    "hostname cut to 255; a space past the cut is fine");
	s = fmt(&v, "h\x7f", 1, &b, &n);
	ok(s == NULL && errno == EINVAL, "DEL in hostname refused");

	/* App name cut to 48, non-printables refused. */
	memset(big, 'n', 60);
	big[60] = '\0';
	env_log(&v, "x", 1);
	v.e.source_id = big;
	s = fmt(&v, "h", 1, &b, &n);
	snprintf(want, sizeof(want), HDR "h %.48s [/0] - - x\n", big);
	ok(s && strcmp(s, want) == 0, "app name cut to 48");
	v.e.source_id = "a\tb";
	s = fmt(&v, "h", 1, &b, &n);
	ok(s == NULL && errno == EINVAL, "tab in app name refused");
	v.e.source_id = "";
	s = fmt(&v, "h", 1, &b, &n);
	ok(s && strcmp(s, HDR "h - [/0] - - x\n") == 0, "empty app name: -");

	/* PROCID: instance with a control byte is refused; source type's
	 * are dropped. */
	env_log(&v, "x", 1);
	v.e.instance_id = "1\x01";
	s = fmt(&v, "h", 1, &b, &n);
	ok(s == NULL && errno == EINVAL, "control byte in instance refused");
	env_log(&v, "x", 1);
	v.e.instance_id = "";
	env_tag(&v, "source_type", "a\x01p\vp  x-");
	s = fmt(&v, "h", 1, &b, &n);
	ok(s && strcmp(s, HDR "h app [APP-X] - - x\n") == 0,
	    "source type sanitized, no instance");

	/* Metric PROCID cut to 128 loses its ']'. */
	memset(big, '7', 200);
	big[200] = '\0';
	loggregator__v2__counter__init(&v.counter);
	env_log(&v, "x", 1);
	v.e.message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_COUNTER;
	v.e.counter = &v.counter;
	v.counter.name = "c\"";
	v.counter.total = 18446744073709551615ULL;
	v.counter.delta = 1;
	v.e.instance_id = big;
	s = fmt(&v, "h", 1, &b, &n);
	snprintf(want, sizeof(want), HDR "h app [%.127s - [counter@47450 "
	    "name=\"c\\\"\" total=\"18446744073709551615\" delta=\"1\"] \n",
	    big);
	ok(s && strcmp(s, want) == 0, "counter; metric PROCID cut");

	/* Event, with tags after the element. */
	env_log(&v, "x", 1);
	loggregator__v2__event__init(&v.event);
	v.e.message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_EVENT;
	v.e.event = &v.event;
	v.event.title = "t";
	v.event.body = "b]";
	env_tag(&v, "z", "1");
	s = fmt(&v, "h", 0, &b, &n);
	ok(s && strcmp(s, HDR "h app [0] - [event@47450 title=\"t\" "
	    "body=\"b\\]\"][tags@47450 z=\"1\"] \n") == 0, "event");

	/* Gauge: duplicate names, the last wins; a bad unit fails all. */
	env_log(&v, "x", 1);
	loggregator__v2__gauge__init(&v.gauge);
	v.e.message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_GAUGE;
	v.e.gauge = &v.gauge;
	v.gauge.metrics = v.gmp;
	for (n = 0; n < 3; n++) {
		loggregator__v2__gauge__metrics_entry__init(&v.gm[n]);
		loggregator__v2__gauge_value__init(&v.gv[n]);
		v.gm[n].value = &v.gv[n];
		v.gmp[n] = &v.gm[n];
		v.gv[n].unit = "u";
		v.gv[n].value = n;
	}
	v.gm[0].key = "a";
	v.gm[1].key = "b";
	v.gm[2].key = "a";
	v.gauge.n_metrics = 3;
	s = fmt(&v, "h", 1, &b, &n);
	ok(n == 2 && s && strcmp(s, HDR "h app [0] - [gauge@47450 name=\"b\" "
	    "value=\"1\" unit=\"u\"] \n" HDR "h app [0] - [gauge@47450 "
	    "name=\"a\" value=\"2\" unit=\"u\"] \n") == 0,
	    "gauge duplicates: last wins");
	v.gv[2].unit = "\xc0\x80";
	s = fmt(&v, "h", 1, &b, &n);
	ok(s == NULL && errno == EINVAL && b.len == 0,
	    "overlong UTF-8 unit refuses the whole gauge");

	/* Timestamps: before 1970, zero fraction. */
	env_log(&v, "x", 1);
	v.e.timestamp = -1;
	s = fmt(&v, "h", 1, &b, &n);
	ok(s && strncmp(s, "<14>1 1969-12-31T23:59:59.999999+00:00 ", 39)
	    == 0, "timestamp -1ns");
	v.e.timestamp = 0;
	s = fmt(&v, "h", 1, &b, &n);
	ok(s && strncmp(s, "<14>1 1970-01-01T00:00:00+00:00 h", 33) == 0,
	    "timestamp 0: no fraction");
	v.log.type = 7;
	s = fmt(&v, "h", 1, &b, &n);
	ok(s && strncmp(s, "<-1>1 ", 6) == 0, "unknown log type: PRI -1");

	/* Framing. */
	buf_reset(&b);
	ok(rfc5424_frame(&b, "abc\n", 4) == 0 && b.len == 6 &&
	    memcmp(b.data, "4 abc\n", 6) == 0, "frame helper");
	{
		size_t off = 0, mn;
		const char *m;

		ok(rfc5424_unframe("5 abc", 5, &off, &m, &mn) == -1 &&
		    errno == EBADMSG, "unframe: short frame refused");
		off = 0;
		ok(rfc5424_unframe("x abc", 5, &off, &m, &mn) == -1,
		    "unframe: no length refused");
	}

	/* A full buffer leaves it as it was. */
	{
		struct buf small;
		struct rfc5424_opts o = { "h", 0, 1 };

		if (buf_init(&small, 16, 32) == -1)
			exit(1);
		env_log(&v, "x", 1);
		ok(rfc5424_format(&v.e, &o, &small, NULL) == -1 &&
		    errno == EMSGSIZE && small.len == 0,
		    "full buffer: EMSGSIZE, nothing left");
		buf_release(&small);
	}

	/* Drain types. */
	{
		enum rfc5424_drain_type l = rfc5424_drain_type_parse(NULL);
		enum rfc5424_drain_type m = rfc5424_drain_type_parse("metrics");
		enum rfc5424_drain_type a = rfc5424_drain_type_parse("all");

		ok(l == RFC5424_DRAIN_LOGS &&
		    rfc5424_drain_type_parse("bogus") == RFC5424_DRAIN_LOGS,
		    "drain-type: default logs");
		env_log(&v, "x", 1);
		ok(rfc5424_drain_carries(l, &v.e) &&
		    !rfc5424_drain_carries(m, &v.e) &&
		    rfc5424_drain_carries(a, &v.e), "drain-type: a log");
		v.e.message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_GAUGE;
		ok(!rfc5424_drain_carries(l, &v.e) &&
		    rfc5424_drain_carries(m, &v.e) &&
		    rfc5424_drain_carries(a, &v.e), "drain-type: a gauge");
		v.e.message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_TIMER;
		ok(!rfc5424_drain_carries(l, &v.e) &&
		    !rfc5424_drain_carries(m, &v.e) &&
		    !rfc5424_drain_carries(a, &v.e) &&
		    rfc5424_drain_carries(RFC5424_DRAIN_AGGREGATE, &v.e),
		    "drain-type: timers only to aggregate drains");
	}
	buf_release(&b);
}

/* More tags than the stack sort holds: the slow path must give the same
 * order, the last duplicate winning. */
static void
many_tags(void)
{
	enum { N = 300 };
	Loggregator__V2__Envelope__TagsEntry *t = calloc(N + 1, sizeof(*t));
	Loggregator__V2__Envelope__TagsEntry **tp = calloc(N + 1, sizeof(*tp));
	char (*keys)[8] = calloc(N, 8);
	struct buf b, w;
	struct env v;
	const char *s;
	int i, n;

	if (t == NULL || tp == NULL || keys == NULL ||
	    buf_init(&b, 64, OUT_MAX) == -1 || buf_init(&w, 64, OUT_MAX) == -1)
		exit(1);
	env_log(&v, "x", 1);
	for (i = 0; i < N; i++) {
		loggregator__v2__envelope__tags_entry__init(&t[i]);
		snprintf(keys[i], 8, "k%03d", N - 1 - i);	/* reversed */
		t[i].key = keys[i];
		t[i].value = i == 0 ? "old" : "v";
		tp[i] = &t[i];
	}
	loggregator__v2__envelope__tags_entry__init(&t[N]);
	t[N].key = keys[0];	/* k299 again: this one wins */
	t[N].value = "new";
	tp[N] = &t[N];
	v.e.tags = tp;
	v.e.n_tags = N + 1;
	s = fmt(&v, "h", 0, &b, &n);
	buf_puts(&w, HDR "h app [/0] - [tags@47450");
	for (i = 0; i < N; i++)
		buf_printf(&w, " k%03d=\"%s\"", i, i == N - 1 ? "new" : "v");
	buf_puts(&w, "] x\n");
	ok(s != NULL && b.len == w.len && memcmp(b.data, w.data, w.len) == 0,
	    "%d tags: sorted, last duplicate wins (slow path)", N + 1);
	buf_release(&b);
	buf_release(&w);
	free(t);
	free(tp);
	free(keys);
}

int
main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "t/golden";
	char path[4096];
	struct arena a;

	if (arena_init(&a, 4096, 16u << 20) == -1)
		return 1;
	snprintf(path, sizeof(path), "%s/syslog_rfc5424.jsonl", dir);
	run_golden(path, &a);
	edge_cases();
	many_tags();
	arena_release(&a);
	return tap_done();
}
