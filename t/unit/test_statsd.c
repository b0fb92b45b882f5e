/* test_statsd: statsd lines against the golden vectors recorded from
 * statsd-injector's listener, plus a table of our own cases. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <jansson.h>

#include "arena.h"
#include "buf.h"
#include "envelope.h"
#include "fmtnum.h"
#include "statsd.h"
#include "tap.h"

#define NELEM(x) (sizeof(x) / sizeof((x)[0]))
#define ARENA_MAX (64u << 20)
#define NOW 1700000000123456789LL

/*
 * Inputs go flush against a PROT_NONE page, so reading one byte past a
 * datagram faults at once.
 */
static unsigned char *guard_base;
static size_t guard_len;

static const char *
guarded(const void *p, size_t n)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE), room;

	room = (n + pg - 1) / pg * pg;
	if (room == 0)
		room = pg;
	guard_len = room + pg;
	guard_base = mmap(NULL, guard_len, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (guard_base == MAP_FAILED ||
	    mprotect(guard_base + room, pg, PROT_NONE) == -1) {
		perror("test_statsd: mmap");
		exit(1);
	}
	memcpy(guard_base + room - n, p, n);
	return (const char *)guard_base + room - n;
}

static void
unguard(void)
{
	munmap(guard_base, guard_len);
}

/*
 * Canonical bytes of an envelope: timestamp zeroed, map entries sorted by
 * key, packed by protobuf-c. Go writes maps in any order, so this is how
 * its bytes and ours are compared.
 */
static int
cmp_tag(const void *x, const void *y)
{
	const Loggregator__V2__Envelope__TagsEntry *a =
	    *(Loggregator__V2__Envelope__TagsEntry *const *)x;
	const Loggregator__V2__Envelope__TagsEntry *b =
	    *(Loggregator__V2__Envelope__TagsEntry *const *)y;

	return strcmp(a->key, b->key);
}

static int
cmp_metric(const void *x, const void *y)
{
	const Loggregator__V2__Gauge__MetricsEntry *a =
	    *(Loggregator__V2__Gauge__MetricsEntry *const *)x;
	const Loggregator__V2__Gauge__MetricsEntry *b =
	    *(Loggregator__V2__Gauge__MetricsEntry *const *)y;

	return strcmp(a->key, b->key);
}

static char *
canon_hex(Loggregator__V2__Envelope *e)
{
	static const char hx[] = "0123456789abcdef";
	unsigned char *p;
	char *h;
	size_t n, i;

	e->timestamp = 0;
	if (e->n_tags > 1)
		qsort(e->tags, e->n_tags, sizeof(*e->tags), cmp_tag);
	if (e->message_case == LOGGREGATOR__V2__ENVELOPE__MESSAGE_GAUGE &&
	    e->gauge->n_metrics > 1)
		qsort(e->gauge->metrics, e->gauge->n_metrics,
		    sizeof(*e->gauge->metrics), cmp_metric);
	n = loggregator__v2__envelope__get_packed_size(e);
	p = malloc(n + 1);
	h = malloc(2 * n + 1);
	if (p == NULL || h == NULL)
		abort();
	loggregator__v2__envelope__pack(e, p);
	for (i = 0; i < n; i++) {
		h[2 * i] = hx[p[i] >> 4];
		h[2 * i + 1] = hx[p[i] & 15];
	}
	h[2 * n] = '\0';
	free(p);
	return h;
}

static unsigned char *
unhex(const char *h, size_t *len)
{
	size_t n = strlen(h), i;
	unsigned char *p = malloc(n / 2 + 1);
	unsigned int x;

	if (p == NULL || n % 2 != 0)
		abort();
	for (i = 0; i < n / 2; i++) {
		if (sscanf(h + 2 * i, "%2x", &x) != 1)
			abort();
		p[i] = (unsigned char)x;
	}
	*len = n / 2;
	return p;
}

/* What emit saw: canonical hex, or a text rendering, one per envelope. */
struct seen {
	char *item[64];
	size_t n;
	int text;		/* render as text rather than hex */
	int fail_errno;		/* emit fails with this when set */
	int bad;		/* an envelope broke an invariant */
};

/* source|name|unit|value|k=v,k=v, value as Go's %v would print it. */
static char *
render(Loggregator__V2__Envelope *e)
{
	Loggregator__V2__Gauge__MetricsEntry *me = e->gauge->metrics[0];
	char num[FMT_DOUBLE_MAX];
	struct buf b;
	size_t i;

	if (buf_init(&b, 256, 1 << 20) == -1 ||
	    fmt_double(num, sizeof(num), me->value->value, FMT_GO_G) == -1)
		abort();
	buf_printf(&b, "%s|%s|%s|%s|", e->source_id, me->key,
	    me->value->unit, num);
	for (i = 0; i < e->n_tags; i++)
		buf_printf(&b, "%s%s=%s", i ? "," : "", e->tags[i]->key,
		    e->tags[i]->value);
	buf_putc(&b, '\0');
	return (char *)b.data;
}

static int
emit_cb(void *ctx, Loggregator__V2__Envelope *e)
{
	struct seen *sn = ctx;
	size_t i;

	if (sn->fail_errno) {
		errno = sn->fail_errno;
		return -1;
	}
	if (e->timestamp != NOW || e->instance_id[0] != '\0' ||
	    e->message_case != LOGGREGATOR__V2__ENVELOPE__MESSAGE_GAUGE ||
	    e->gauge->n_metrics != 1 || e->n_deprecated_tags != 0)
		sn->bad = 1;
	for (i = 0; i + 1 < e->n_tags; i++)
		if (strcmp(e->tags[i]->key, e->tags[i + 1]->key) >= 0)
			sn->bad = 1;	/* unsorted or a key twice */
	if (sn->n == NELEM(sn->item))
		abort();
	sn->item[sn->n++] = sn->text ? render(e) : canon_hex(e);
	return 0;
}

static void
seen_clear(struct seen *sn)
{
	size_t i;

	for (i = 0; i < sn->n; i++)
		free(sn->item[i]);
	sn->n = 0;
	sn->bad = 0;
}

static const char *
jstr(json_t *v)
{
	const char *s = json_string_value(v);

	if (s == NULL) {
		fprintf(stderr, "test_statsd: golden record lacks a string\n");
		exit(1);
	}
	return s;
}

static void
golden_case(json_t *rec, struct arena *a)
{
	const char *name = jstr(json_object_get(rec, "case"));
	json_t *dgs = json_object_get(json_object_get(rec, "extra"),
	    "datagrams");
	json_t *out = json_object_get(rec, "out"), *v;
	struct seen sn = { .text = 0 };
	struct statsd s;
	size_t i, n;
	const char *in;
	int fails = 0;

	if (statsd_init(&s, 1024, 1 << 16) == -1)
		abort();
	if (!json_is_array(dgs)) {
		dgs = json_array();
		json_array_append_new(dgs, json_string(jstr(json_object_get(
		    rec, "in"))));
	} else
		json_incref(dgs);
	json_array_foreach(dgs, i, v) {
		n = json_string_length(v);
		in = guarded(jstr(v), n);
		arena_reset(a);
		if (statsd_datagram(&s, in, n, NOW, a, emit_cb, &sn) == -1)
			fails++;
		unguard();
	}
	ok(fails == 0 && !sn.bad, "golden %s: datagrams read", name);
	ok(sn.n == json_array_size(out), "golden %s: %zu envelopes, want %zu",
	    name, sn.n, json_array_size(out));
	json_array_foreach(out, i, v) {
		Loggregator__V2__Envelope *want;
		unsigned char *bytes;
		size_t blen;
		char *wh;

		bytes = unhex(jstr(v), &blen);
		arena_reset(a);
		want = envelope_unpack(a, bytes, blen);
		free(bytes);
		if (want == NULL)
			abort();
		wh = canon_hex(want);
		if (!ok(i < sn.n && strcmp(sn.item[i], wh) == 0,
		    "golden %s: envelope %zu", name, i)) {
			diag("want %s", wh);
			diag("got  %s", i < sn.n ? sn.item[i] : "(none)");
		}
		free(wh);
	}
	json_decref(dgs);
	seen_clear(&sn);
	statsd_release(&s);
}

static void
run_golden(const char *path, struct arena *a)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	json_error_t err;
	json_t *rec;
	int n = 0;

	if (f == NULL) {
		ok(0, "open %s: %s", path, strerror(errno));
		return;
	}
	while (getline(&line, &cap, f) != -1) {
		if (line[0] == '\n' || line[0] == '\0')
			continue;
		rec = json_loads(line, 0, &err);
		if (!ok(rec != NULL, "golden line %d parses", n + 1)) {
			diag("%s", err.text);
			continue;
		}
		golden_case(rec, a);
		json_decref(rec);
		n++;
	}
	free(line);
	fclose(f);
	ok(n > 0, "golden %s: %d cases", path, n);
}

/*
 * Our own table. Each case runs on a fresh struct statsd and feeds its
 * datagrams in order; out is what emit saw, one rendering per line.
 */
struct dgram {
	const char *p;
	size_t n;
};

#define D(s) { s, sizeof(s) - 1 }

struct tcase {
	const char *name;
	struct dgram in[8];
	const char *out;
	uint64_t lines, bad_lines, bad_tags, bad_text, table_full;
	size_t max_keys, max_key_bytes;	/* 0, 0: 1024 and 64 KiB */
};

static const struct tcase cases[] = {
	{ "counter sums across datagrams and lines",
	    { D("o.c:1|c"), D("o.c:2|c\no.c:-4|c"), D("o.c:+0.5|c") },
	    "o|c|counter|1|origin=o\n"
	    "o|c|counter|3|origin=o\n"
	    "o|c|counter|-1|origin=o\n"
	    "o|c|counter|-0.5|origin=o\n", 4, 0, 0, 0, 0, 0, 0 },
	{ "gauge: + and - adjust, no sign sets",
	    { D("o.g:+5|g\no.g:-2|g\no.g:10|g\no.g:+0.5|g\no.g:-20|g") },
	    "o|g|gauge|5|origin=o\n"
	    "o|g|gauge|3|origin=o\n"
	    "o|g|gauge|10|origin=o\n"
	    "o|g|gauge|10.5|origin=o\n"
	    "o|g|gauge|-9.5|origin=o\n", 5, 0, 0, 0, 0, 0, 0 },
	{ "counter and gauge of one name keep apart",
	    { D("o.x:5|c\no.x:7|g\no.x:1|c\no.x:+1|g\no.x:3|ms") },
	    "o|x|counter|5|origin=o\n"
	    "o|x|gauge|7|origin=o\n"
	    "o|x|counter|6|origin=o\n"
	    "o|x|gauge|8|origin=o\n"
	    "o|x|ms|3|origin=o\n", 5, 0, 0, 0, 0, 0, 0 },
	{ "ms ignores the sign and keeps no sum",
	    { D("o.t:-5|ms\no.t:+5|ms\no.t:2.25|ms") },
	    "o|t|ms|5|origin=o\n"
	    "o|t|ms|5|origin=o\n"
	    "o|t|ms|2.25|origin=o\n", 3, 0, 0, 0, 0, 0, 0 },
	{ "every type is divided by the sample rate",
	    { D("o.c:1|c|@0.5\no.c:3|c|@0.5\no.t:1|ms|@0.25\no.g:1|g|@2\n"
	    "o.g:-1|g|@0.5\no.t:10|ms|@1") },
	    "o|c|counter|2|origin=o\n"
	    "o|c|counter|8|origin=o\n"
	    "o|t|ms|4|origin=o\n"
	    "o|g|gauge|0.5|origin=o\n"
	    "o|g|gauge|-1.5|origin=o\n"
	    "o|t|ms|10|origin=o\n", 6, 0, 0, 0, 0, 0, 0 },
	{ "rate 0 gives +Inf, and NaN for 0",
	    { D("o.c:1|c|@0\no.g:5|g|@0.0\no.t:0|ms|@0\no.c:-1|c") },
	    "o|c|counter|+Inf|origin=o\n"
	    "o|g|gauge|+Inf|origin=o\n"
	    "o|t|ms|NaN|origin=o\n"
	    "o|c|counter|+Inf|origin=o\n", 4, 0, 0, 0, 0, 0, 0 },
	{ "a rate takes digits[.digits] and no more",
	    { D("o.t:1|ms|@\no.t:1|ms|@.5\no.t:1|ms|@2.\no.t:1|ms|@1e2\n"
	    "o.t:10|ms|@2.5.1\no.t:8|ms|@+2\no.t:6|ms|@3|#k:v") },
	    "o|t|ms|1|origin=o\n"
	    "o|t|ms|1|origin=o\n"
	    "o|t|ms|0.5|origin=o\n"
	    "o|t|ms|1|origin=o\n"
	    "o|t|ms|4|origin=o\n"
	    "o|t|ms|8|origin=o\n"
	    "o|t|ms|2|k=v,origin=o\n", 7, 0, 0, 0, 0, 0, 0 },
	{ "values: no exponent, no leading or trailing dot",
	    { D("o.t:1e3|ms\no.t:.5|ms\no.t:5.|ms\no.t:0x10|ms\no.t:1_0|ms\n"
	    "o.t:inf|ms\no.t:1,5|ms\no.t: 1|ms\no.t:1 |ms\no.t:++1|ms\n"
	    "o.t:+-1|ms\no.t:-|ms") },
	    "", 12, 12, 0, 0, 0, 0, 0 },
	{ "values as Go's ParseFloat reads them",
	    { D("o.t:007|ms\no.t:0.1|ms\no.t:18446744073709551617|ms\n"
	    "o.t:0.30000000000000004|ms\no.t:00.000|ms") },
	    "o|t|ms|7|origin=o\n"
	    "o|t|ms|0.1|origin=o\n"
	    "o|t|ms|1.8446744073709552e+19|origin=o\n"
	    "o|t|ms|0.30000000000000004|origin=o\n"
	    "o|t|ms|0|origin=o\n", 5, 0, 0, 0, 0, 0, 0 },
	{ "types: c, g, ms and nothing else",
	    { D("o.t:1|x\no.t:1|m\no.t:1|C\no.t:1|G\no.t:1|MS\no.t:1|\n"
	    "o.t:1\no.t:1c\no.t:|c\no.t:1||c") },
	    "", 10, 10, 0, 0, 0, 0, 0 },
	{ "the type is read as far as it goes",
	    { D("o.t:1|msx\no.t:2|gc\no.t:3|cms\no.t:4|g|@x\no.t:5|c|#") },
	    "o|t|ms|1|origin=o\n"
	    "o|t|gauge|2|origin=o\n"
	    "o|t|counter|3|origin=o\n"
	    "o|t|gauge|4|origin=o\n"
	    "o|t|counter|8|origin=o\n", 5, 0, 0, 0, 0, 0, 0 },
	{ "ORIGIN and NAME must both be there",
	    { D("noorigin:1|c\n.t:1|c\no.:1|c\n..:1|c\no:.t:1|c\n.\n:\n"
	    "o..t:1|c") },
	    "o:|t|counter|1|origin=o:\n"
	    "o|.t|counter|1|origin=o\n", 8, 6, 0, 0, 0, 0, 0 },
	{ "the first match anywhere in a line counts",
	    { D("junk o.t:1|ms trailing\nx:y.o.t:5|g\na.b:zz.o.t:1|c\n"
	    ".o.t:2|ms\n...o.t:3|ms\na.b:1|x.c.d:2|ms\no.t:1|ms o.u:2|ms") },
	    "junk o|t|ms|1|origin=junk o\n"
	    "x:y|o.t|gauge|5|origin=x:y\n"
	    "b:zz|o.t|counter|1|origin=b:zz\n"
	    "o|t|ms|2|origin=o\n"
	    "o|t|ms|3|origin=o\n"
	    "b:1|x|c.d|ms|2|origin=b:1|x\n"
	    "o|t|ms|1|origin=o\n", 7, 0, 0, 0, 0, 0, 0 },
	{ "tags: pairs, overrides, and where the section stops",
	    { D("o.t:1|ms|#a:1,a:2\no.t:1|ms|#origin:x\no.t:1|ms|#:v,k:\n"
	    "o.t:1|ms|#a:b|c:d\no.t:1|ms|#a:b c:d\no.t:1|ms|#k:v\xc3\xa9\n"
	    "o.t:1|ms|#b:2,a:1,c:3\no.t:1|ms|#a:b:c:d,e::f\n"
	    "o.t:1|ms|#A_9:z_0") },
	    "o|t|ms|1|a=2,origin=o\n"
	    "o|t|ms|1|origin=x\n"
	    "o|t|ms|1|=v,k=,origin=o\n"
	    "o|t|ms|1|a=b,origin=o\n"
	    "o|t|ms|1|a=b,origin=o\n"
	    "o|t|ms|1|k=v,origin=o\n"
	    "o|t|ms|1|a=1,b=2,c=3,origin=o\n"
	    "o|t|ms|1|a=b,e=,origin=o\n"
	    "o|t|ms|1|A_9=z_0,origin=o\n", 9, 0, 0, 0, 0, 0, 0 },
	{ "a tag pair without ':' refuses the line (upstream panics)",
	    { D("o.c:1|c|#novalue\no.c:1|c|#a:b,\no.c:1|c|#,\n"
	    "o.c:1|c|#,a:b\no.c:1|c|#a:b,,c:d\no.c:1|c|#a-b:c\n"
	    "o.c:1|c|#a.b:c\no.c:1|c") },
	    "o|c|counter|1|origin=o\n", 8, 0, 7, 0, 0, 0, 0 },
	{ "tags before the rate are no tags",
	    { D("o.t:1|ms|#a:b|@2\no.t:1|ms|@2|#a:b|@4") },
	    "o|t|ms|1|a=b,origin=o\n"
	    "o|t|ms|0.5|a=b,origin=o\n", 2, 0, 0, 0, 0, 0, 0 },
	{ "empty lines, CR and a trailing newline",
	    { D(""), D("\n"), D("\r\n"), D("\n\n"), D("o.t:1|ms\n"),
	    D("o.t:2|ms\r\no.t:3|ms\r"), D("o.t\r:4|ms\r\r\n\r") },
	    "o|t|ms|1|origin=o\n"
	    "o|t|ms|2|origin=o\n"
	    "o|t|ms|3|origin=o\n"
	    "o|t\r|ms|4|origin=o\n", 9, 5, 0, 0, 0, 0, 0 },
	{ "bad lines between good ones",
	    { D("o.c:1|c\ngarbage\no.c:1|c\n\no.c:1|c") },
	    "o|c|counter|1|origin=o\n"
	    "o|c|counter|2|origin=o\n"
	    "o|c|counter|3|origin=o\n", 5, 2, 0, 0, 0, 0, 0 },
	{ "NUL bytes: ignored outside the match, refused in ORIGIN or NAME",
	    { D("o.t:1|ms\0junk"), D("o\0x.t:1|ms"), D("o.t\0:1|ms"),
	    D("\0"), D("o.t:1\0|ms"), D("\0.o.t:2|ms"), D("o.t:3|ms|#k:\0") },
	    "o|t|ms|1|origin=o\n"
	    "o|t|ms|3|k=,origin=o\n", 7, 2, 0, 3, 0, 0, 0 },
	{ "UTF-8 passes, other bytes in ORIGIN or NAME are refused",
	    { D("\xc3\xb6.t:1|ms"), D("o.\xc3\xa9t:1|g"),
	    D("\xf0\x9f\x98\x80.t:1|ms"), D("\xff.t:1|ms"),
	    D("\xc0\xaf.t:1|ms"), D("\xed\xa0\x80.t:1|ms"),
	    D("\xe2\x82.t:1|ms"), D("\xf4\x90\x80\x80.t:1|ms") },
	    "\xc3\xb6|t|ms|1|origin=\xc3\xb6\n"
	    "o|\xc3\xa9t|gauge|1|origin=o\n"
	    "\xf0\x9f\x98\x80|t|ms|1|origin=\xf0\x9f\x98\x80\n",
	    8, 0, 0, 5, 0, 0, 0 },
	{ "a refused line leaves the running value alone",
	    { D("o.c:1|c"), D("o.c:5|c|#x"), D("o.c:2|c") },
	    "o|c|counter|1|origin=o\n"
	    "o|c|counter|3|origin=o\n", 3, 0, 1, 0, 0, 0, 0 },
	{ "table full: new keys refused, known keys and ms go on",
	    { D("a.x:1|c\nb.x:1|c\nc.x:1|c\na.x:1|c\nc.x:5|ms\na.x:1|g\n"
	    "b.x:+2|c") },
	    "a|x|counter|1|origin=a\n"
	    "b|x|counter|1|origin=b\n"
	    "a|x|counter|2|origin=a\n"
	    "c|x|ms|5|origin=c\n"
	    "b|x|counter|3|origin=b\n", 7, 0, 0, 0, 2, 2, 1 << 16 },
	{ "table full by key bytes",
	    { D("a.x:1|c\nb.x:1|g\nc.x:1|c\na.x:1|g\na.x:2|c\nb.x:-1|g") },
	    "a|x|counter|1|origin=a\n"
	    "b|x|gauge|1|origin=b\n"
	    "a|x|counter|3|origin=a\n"
	    "b|x|gauge|0|origin=b\n", 6, 0, 0, 0, 2, 1024, 6 },
	{ "no room at all: only ms lines pass",
	    { D("a.x:1|c\na.x:1|g\na.x:1|ms") },
	    "a|x|ms|1|origin=a\n", 3, 0, 0, 0, 2, 0, 1 },
};

static void
join(struct buf *b, struct seen *sn)
{
	size_t i;

	buf_reset(b);
	for (i = 0; i < sn->n; i++) {
		buf_puts(b, sn->item[i]);
		buf_putc(b, '\n');
	}
	buf_putc(b, '\0');
}

static void
run_case(const struct tcase *c, struct arena *a)
{
	struct seen sn = { .text = 1 };
	struct statsd s;
	struct buf b;
	size_t i, mk = c->max_keys, mb = c->max_key_bytes;
	int fails = 0;

	if (mk == 0 && mb == 0) {
		mk = 1024;
		mb = 1 << 16;
	}
	if (statsd_init(&s, mk, mb) == -1 || buf_init(&b, 256, 1 << 20) == -1)
		abort();
	for (i = 0; i < NELEM(c->in) && c->in[i].p != NULL; i++) {
		const char *in = guarded(c->in[i].p, c->in[i].n);

		arena_reset(a);
		if (statsd_datagram(&s, in, c->in[i].n, NOW, a, emit_cb,
		    &sn) == -1)
			fails++;
		unguard();
	}
	join(&b, &sn);
	if (!ok(fails == 0 && !sn.bad && strcmp((char *)b.data, c->out) == 0,
	    "%s", c->name)) {
		diag("want:\n%s", c->out);
		diag("got:\n%s", (char *)b.data);
	}
	if (!ok(s.lines == c->lines && s.bad_lines == c->bad_lines &&
	    s.bad_tags == c->bad_tags && s.bad_text == c->bad_text &&
	    s.table_full == c->table_full && s.emitted == sn.n &&
	    s.lines == s.emitted + s.bad_lines + s.bad_tags + s.bad_text +
	    s.table_full, "%s: counts", c->name))
		diag("lines %" PRIu64 " emitted %" PRIu64 " bad_lines %" PRIu64
		    " bad_tags %" PRIu64 " bad_text %" PRIu64 " table_full %"
		    PRIu64, s.lines, s.emitted, s.bad_lines, s.bad_tags,
		    s.bad_text, s.table_full);
	seen_clear(&sn);
	buf_release(&b);
	statsd_release(&s);
}

/* Feed one datagram of n bytes on a fresh statsd; the renderings. */
static int
feed(struct statsd *s, const char *p, size_t n, struct arena *a,
    struct seen *sn)
{
	const char *in = guarded(p, n);
	int r;

	r = statsd_datagram(s, in, n, NOW, a, emit_cb, sn);
	unguard();
	return r;
}

static void
test_long_lines(struct arena *a)
{
	struct seen sn = { .text = 1 };
	struct arena small;
	struct statsd s;
	size_t n, i, bound;
	char *p;
	int r;

	if (statsd_init(&s, 16, 1024) == -1 ||
	    (p = malloc(2 * STATSD_MAX_LINE)) == NULL)
		abort();

	/* One byte over: refused, though it would match. */
	n = STATSD_MAX_LINE + 1;
	memcpy(p, "o.t:1|ms", 8);
	memset(p + 8, 'x', n - 8);
	r = feed(&s, p, n, a, &sn);
	ok(r == 0 && s.bad_lines == 1 && sn.n == 0,
	    "a line over STATSD_MAX_LINE is refused");

	/* A longest line, tags all the way: ":,:,...", the most pairs. */
	n = STATSD_MAX_LINE;
	memcpy(p, "o.t:1|ms|#", 10);
	for (i = 10; i < n; i++)
		p[i] = (i - 10) % 2 ? ',' : ':';
	if (p[n - 1] == ',')
		p[n - 1] = ':';
	/* What statsd.h promises: less than 1024 + 32 n bytes of arena. */
	bound = 1024 + 32 * n;
	if (arena_init(&small, bound, bound) == -1)
		abort();
	r = feed(&s, p, n, &small, &sn);
	ok(r == 1 && sn.n == 1 && strcmp(sn.item[0], "o|t|ms|1|=,origin=o")
	    == 0, "a line of STATSD_MAX_LINE bytes, all tag pairs, fits in "
	    "1024 + 32 n bytes of arena");
	arena_release(&small);
	seen_clear(&sn);

	/* A long value: correctly rounded, or +Inf past the largest. */
	memcpy(p, "o.t:", 4);
	memset(p + 4, '9', 400);
	memcpy(p + 404, "|ms", 3);
	r = feed(&s, p, 407, a, &sn);
	ok(r == 1 && strcmp(sn.item[0], "o|t|ms|+Inf|origin=o") == 0,
	    "a value of 400 digits is +Inf");
	memcpy(p, "o.t:0.", 6);
	memset(p + 6, '0', 400);
	memcpy(p + 406, "1|ms", 4);
	r = feed(&s, p, 410, a, &sn);
	ok(r == 1 && strcmp(sn.item[1], "o|t|ms|0|origin=o") == 0,
	    "a value of 400 leading zeros underflows to 0");
	n = 4 + 60000;
	memcpy(p, "o.t:1", 5);
	memset(p + 5, '0', 300);
	p[305] = '.';
	memset(p + 306, '0', n - 306);
	memcpy(p + n, "1|ms|@1", 7);
	r = feed(&s, p, n + 7, a, &sn);
	ok(r == 1 && strcmp(sn.item[2], "o|t|ms|1e+300|origin=o") == 0,
	    "a value of 60000 digits reads whole");
	seen_clear(&sn);
	free(p);
	statsd_release(&s);
}

static void
test_failures(struct arena *a)
{
	struct seen sn = { .text = 1 };
	struct arena tiny;
	struct statsd s;
	char line[2048];
	size_t i;
	int r;

	ok(statsd_init(&s, SIZE_MAX, 0) == -1 && errno == ENOMEM,
	    "init refuses a max_keys that overflows");
	if (statsd_init(&s, 16, 1024) == -1)
		abort();

	/* emit fails: its errno comes back, later lines are not read, and
	 * the running value counts the lost envelope as upstream does. */
	sn.fail_errno = EPIPE;
	r = feed(&s, "o.c:1|c\no.c:1|c", 15, a, &sn);
	ok(r == -1 && errno == EPIPE && s.lines == 1 && s.emitted == 0,
	    "emit failing stops the datagram with its errno");
	sn.fail_errno = 0;
	r = feed(&s, "o.c:1|c", 7, a, &sn);
	ok(r == 1 && strcmp(sn.item[0], "o|c|counter|2|origin=o") == 0,
	    "the failed line's value was counted");
	seen_clear(&sn);

	/* The arena runs out: ENOMEM, and the line changed nothing. */
	if (arena_init(&tiny, 256, 256) == -1)
		abort();
	memcpy(line, "o.c:1|c|#", 9);
	for (i = 9; i < sizeof(line) - 1; i++)
		line[i] = ":,"[(i - 9) % 2];
	line[i++] = ':';
	r = feed(&s, line, i, &tiny, &sn);
	ok(r == -1 && errno == ENOMEM && sn.n == 0,
	    "a full arena gives ENOMEM");
	arena_release(&tiny);
	r = feed(&s, "o.c:1|c\nn.c:1|c", 15, a, &sn);
	ok(r == 2 && strcmp(sn.item[0], "o|c|counter|3|origin=o") == 0 &&
	    s.n_keys == 2, "the line the arena refused changed no value");
	seen_clear(&sn);
	statsd_release(&s);

	/* Released, then used again. */
	ok(statsd_init(&s, 0, 0) == 0 && s.n_keys == 0, "init with no room");
	statsd_release(&s);
	statsd_release(&s);
	ok(s.slots == NULL, "release twice is harmless");
}

/* An emit that packs and resets the arena, as a sender would. */
struct resetter {
	struct arena *a;
	int reset;
	int n;
	int bad;
};

static int
emit_reset(void *ctx, Loggregator__V2__Envelope *e)
{
	struct resetter *r = ctx;
	size_t n = loggregator__v2__envelope__get_packed_size(e);
	unsigned char out[256];

	if (n > sizeof(out))
		r->bad = 1;
	else
		loggregator__v2__envelope__pack(e, out);
	r->n++;
	if (r->reset)
		arena_reset(r->a);
	return 0;
}

static void
test_reset_in_emit(void)
{
	struct resetter rs = { 0 };
	struct arena a;
	struct statsd s;
	struct buf b;
	int r, i;

	if (statsd_init(&s, 4, 64) == -1 || buf_init(&b, 65536, 65536) == -1 ||
	    arena_init(&a, 4096, 4096) == -1)
		abort();
	for (i = 0; i < 2000; i++)
		buf_printf(&b, "o.c:1|c|#i:%d\n", i);
	rs.a = &a;
	rs.reset = 1;
	r = statsd_datagram(&s, b.data, b.len, NOW, &a, emit_reset, &rs);
	ok(r == 2000 && rs.n == 2000 && !rs.bad,
	    "emit may reset the arena: 2000 envelopes through 4 KiB");
	arena_reset(&a);
	rs.reset = 0;
	r = statsd_datagram(&s, b.data, b.len, NOW, &a, emit_reset, &rs);
	ok(r == -1 && errno == ENOMEM,
	    "without the resets they overflow it with ENOMEM");
	buf_release(&b);
	arena_release(&a);
	statsd_release(&s);
}

static void
test_match(void)
{
	struct statsd_line m;
	const char *p = "x a.b.c:-1.5|ms|@0.1|#k:v y";

	ok(statsd_match(p, strlen(p), &m) == 0 && m.origin == p &&
	    m.origin_len == 3 && m.name == p + 4 && m.name_len == 3 &&
	    m.sign == '-' && m.type == 'm' && m.value == p + 9 &&
	    m.value_len == 3 && m.rate == p + 17 && m.rate_len == 3 &&
	    m.tags == p + 22 && m.tags_len == 3, "statsd_match spans");
	ok(statsd_match("o.t:1|c|#", 9, &m) == 0 && m.tags_len == 0 &&
	    m.rate_len == 0 && m.sign == 0, "empty tag section");
	errno = 0;
	ok(statsd_match("o.t:1|", 6, &m) == -1 && errno == EINVAL,
	    "no match is EINVAL");
	ok(statsd_match("o.t:1|c", 0, &m) == -1, "empty input");
}

int
main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "t/golden";
	struct arena a;
	char path[4096];
	size_t i;

	if (arena_init(&a, 64 * 1024, ARENA_MAX) == -1)
		abort();
	snprintf(path, sizeof(path), "%s/statsd_to_v2.jsonl", dir);
	run_golden(path, &a);
	for (i = 0; i < NELEM(cases); i++)
		run_case(&cases[i], &a);
	test_match();
	test_long_lines(&a);
	test_failures(&a);
	test_reset_in_emit();
	arena_release(&a);
	return tap_done();
}
