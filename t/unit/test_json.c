/* test_json: the gateway JSON encoder against Go's golden output, decode
 * and encode round trips, and a table of input the decoder must refuse. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <jansson.h>

#include "arena.h"
#include "buf.h"
#include "fmtnum.h"
#include "json.h"
#include "tap.h"

#define GOLDEN "t/golden/"
#define ARENA_MAX (16u << 20)

static struct arena arena;
static struct arena scratch;	/* for envelopes the test builds */
static struct buf out;

/* Inputs to json_decode end flush against a PROT_NONE page, so a read one
 * byte too far faults at once. */
static char *guard_base;
static size_t guard_room;

/* diag() with a printf check of its own. */
__attribute__((format(printf, 1, 2))) static void
note(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

/* The encoder's output so far holds needle. */
static int
has(const char *needle)
{
	return memmem(out.data, out.len, needle, strlen(needle)) != NULL;
}

static int
is(const char *want)
{
	return out.len == strlen(want) && memcmp(out.data, want, out.len) == 0;
}

static void
guard_init(void)
{
	long pg = sysconf(_SC_PAGESIZE);

	guard_room = 64 * (size_t)pg;
	guard_base = mmap(NULL, guard_room + (size_t)pg, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (guard_base == MAP_FAILED ||
	    mprotect(guard_base + guard_room, (size_t)pg, PROT_NONE) == -1) {
		perror("guard");
		exit(1);
	}
}

static const char *
guarded(const char *s, size_t n)
{
	char *p;

	if (n > guard_room) {
		fprintf(stderr, "input too long for the guard area\n");
		exit(1);
	}
	p = guard_base + guard_room - n;
	memmove(p, s, n);
	return p;
}

static int
decode(const char *s, size_t n, Loggregator__V2__Envelope ***e, size_t *ne,
    char *err, size_t errlen)
{
	return json_decode(guarded(s, n), n, &arena, e, ne, err, errlen);
}

static unsigned char *
unhex(const char *h, size_t *n)
{
	size_t len = strlen(h), i;
	unsigned char *p = malloc(len / 2 + 1);
	unsigned int x;

	for (i = 0; i < len / 2; i++) {
		if (sscanf(h + 2 * i, "%2x", &x) != 1)
			abort();
		p[i] = (unsigned char)x;
	}
	*n = len / 2;
	return p;
}

/* Both envelopes pack to the same protobuf bytes. */
static int
same_pack(const Loggregator__V2__Envelope *a,
    const Loggregator__V2__Envelope *b)
{
	size_t na = loggregator__v2__envelope__get_packed_size(a);
	size_t nb = loggregator__v2__envelope__get_packed_size(b);
	unsigned char *pa, *pb;
	int same;

	if (na != nb)
		return 0;
	pa = malloc(na + 1);
	pb = malloc(nb + 1);
	loggregator__v2__envelope__pack(a, pa);
	loggregator__v2__envelope__pack(b, pb);
	same = memcmp(pa, pb, na) == 0;
	free(pa);
	free(pb);
	return same;
}

/* Well-formed UTF-8, checked apart from the encoder's own check. */
static int
utf8_ok(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	uint32_t cp, min;
	int k, i;

	if (s == NULL)
		return 1;
	while (*p) {
		if (*p < 0x80) {
			p++;
			continue;
		}
		if ((*p & 0xe0) == 0xc0) {
			k = 1;
			cp = *p & 0x1f;
			min = 0x80;
		} else if ((*p & 0xf0) == 0xe0) {
			k = 2;
			cp = *p & 0x0f;
			min = 0x800;
		} else if ((*p & 0xf8) == 0xf0) {
			k = 3;
			cp = *p & 0x07;
			min = 0x10000;
		} else
			return 0;
		for (i = 1; i <= k; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (p[i] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		p += k + 1;
	}
	return 1;
}

/* Every string in e is valid UTF-8 (else encoding replaces bytes). */
static int
env_utf8_ok(const Loggregator__V2__Envelope *e)
{
	const Loggregator__V2__Value *v;
	size_t i;

	if (!utf8_ok(e->source_id) || !utf8_ok(e->instance_id))
		return 0;
	for (i = 0; i < e->n_tags; i++)
		if (!utf8_ok(e->tags[i]->key) || !utf8_ok(e->tags[i]->value))
			return 0;
	for (i = 0; i < e->n_deprecated_tags; i++) {
		v = e->deprecated_tags[i]->value;
		if (!utf8_ok(e->deprecated_tags[i]->key) || (v != NULL &&
		    v->data_case == LOGGREGATOR__V2__VALUE__DATA_TEXT &&
		    !utf8_ok(v->text)))
			return 0;
	}
	return 1;
}

/*
 * encode, decode, and check that the decoded envelope packs to the same
 * bytes and encodes to the same text. exact = 0 skips the packing check
 * (for envelopes whose map keys are not sorted, whose strings are not
 * UTF-8, or whose NaN is not Go's).
 */
static int
roundtrip(const Loggregator__V2__Envelope *e, int exact, const char *name)
{
	Loggregator__V2__Envelope **d;
	char err[256], *first;
	size_t n, flen;
	int good = 1;

	buf_reset(&out);
	if (json_encode_envelope(&out, e) == -1) {
		note("%s: encode: %s", name, strerror(errno));
		return 0;
	}
	flen = out.len;
	first = malloc(flen + 1);
	memcpy(first, out.data, flen);
	arena_reset(&arena);
	if (decode(first, flen, &d, &n, err, sizeof(err)) == -1 || n != 1) {
		note("%s: decode: %s", name, err);
		note("%.*s", (int)flen, first);
		free(first);
		return 0;
	}
	if (exact && !same_pack(e, d[0])) {
		note("%s: packs differently after the round trip", name);
		good = 0;
	}
	buf_reset(&out);
	if (json_encode_envelope(&out, d[0]) == -1 || out.len != flen ||
	    memcmp(out.data, first, flen) != 0) {
		note("%s: encodes differently after the round trip", name);
		note("was %.*s", (int)flen, first);
		note("now %.*s", (int)out.len, out.data);
		good = 0;
	}
	free(first);
	return good;
}

/*
 * What the RLP does to an envelope before the gateway sees it (it asks
 * with use_preferred_tags): each deprecated tag overwrites the tag of its
 * name, as text (integers in decimal, decimals as fmt.Sprint writes
 * them), and one with no value is dropped. Here the deprecated ones go
 * after the tags, and the encoder writes the last of equal keys.
 */
static Loggregator__V2__Envelope *
converge(const Loggregator__V2__Envelope *e)
{
	Loggregator__V2__Envelope *c;
	Loggregator__V2__Envelope__TagsEntry *t;
	const Loggregator__V2__Value *v;
	char num[FMT_DOUBLE_MAX];
	size_t i;

	c = arena_alloc(&scratch, sizeof(*c));
	*c = *e;
	c->n_deprecated_tags = 0;
	c->deprecated_tags = NULL;
	c->tags = arena_alloc(&scratch, (e->n_tags + e->n_deprecated_tags + 1) *
	    sizeof(*c->tags));
	c->n_tags = 0;
	for (i = 0; i < e->n_tags; i++)
		c->tags[c->n_tags++] = e->tags[i];
	for (i = 0; i < e->n_deprecated_tags; i++) {
		v = e->deprecated_tags[i]->value;
		if (v == NULL ||
		    v->data_case == LOGGREGATOR__V2__VALUE__DATA__NOT_SET)
			continue;
		t = arena_alloc(&scratch, sizeof(*t));
		loggregator__v2__envelope__tags_entry__init(t);
		t->key = e->deprecated_tags[i]->key;
		if (v->data_case == LOGGREGATOR__V2__VALUE__DATA_TEXT)
			t->value = v->text;
		else if (v->data_case == LOGGREGATOR__V2__VALUE__DATA_INTEGER)
			t->value = arena_printf(&scratch, "%" PRId64,
			    v->integer);
		else {
			fmt_double(num, sizeof(num), v->decimal, FMT_GO_G);
			t->value = arena_strdup(&scratch, num);
		}
		c->tags[c->n_tags++] = t;
	}
	return c;
}

/* One record of set C. */
static void
golden_case(json_t *r)
{
	Loggregator__V2__EnvelopeBatch *b;
	Loggregator__V2__Envelope **d, **envs;
	const char *name, *want, *sse, *w, *p;
	json_t *outs, *extra;
	unsigned char *pb;
	char err[256], *sp, *q;
	size_t npb, i, n;
	int same, conv;

	name = json_string_value(json_object_get(r, "case"));
	outs = json_object_get(r, "out");
	want = json_string_value(json_array_get(outs, 0));
	sse = json_string_value(json_array_get(outs, 1));
	pb = unhex(json_string_value(json_object_get(r, "in")), &npb);
	b = loggregator__v2__envelope_batch__unpack(NULL, npb, pb);
	free(pb);
	if (!ok(b != NULL && name != NULL && want != NULL && sse != NULL,
	    "%s: input unpacks", name))
		return;
	/* converged_* inputs are what the RLP got; out is after the RLP
	 * folded deprecated tags into tags. */
	conv = strncmp(name, "converged_", 10) == 0;
	arena_reset(&scratch);
	envs = arena_alloc(&scratch, (b->n_batch + 1) * sizeof(*envs));
	for (i = 0; i < b->n_batch; i++)
		envs[i] = conv ? converge(b->batch[i]) : b->batch[i];

	buf_reset(&out);
	if (!ok(json_encode_batch(&out, envs, b->n_batch) == 0 && is(want),
	    "%s: batch JSON is Go's", name))
		note("got  %.*s\n# want %s", (int)out.len, out.data, want);
	/* The SSE event is "data: " + json + "\n\n". */
	ok(strncmp(sse, "data: ", 6) == 0 && strlen(sse) == out.len + 8 &&
	    memcmp(sse + 6, out.data, out.len) == 0 &&
	    strcmp(sse + 6 + out.len, "\n\n") == 0,
	    "%s: SSE event wraps the same JSON", name);

	extra = json_object_get(json_object_get(r, "extra"), "envelopes_json");
	ok(json_array_size(extra) == b->n_batch,
	    "%s: one envelopes_json per envelope", name);
	for (i = 0; i < json_array_size(extra) && i < b->n_batch; i++) {
		w = json_string_value(json_array_get(extra, i));
		buf_reset(&out);
		ok(json_encode_envelope(&out, envs[i]) == 0 && is(w),
		    "%s: envelope %zu alone is Go's", name, i);
		arena_reset(&arena);
		if (!ok(decode(w, strlen(w), &d, &n, err, sizeof(err)) == 0 &&
		    n == 1 && (conv || same_pack(envs[i], d[0])),
		    "%s: envelope %zu decodes%s", name, i,
		    conv ? "" : " to the same message"))
			note("%s", err);
	}

	/* Go's JSON decodes to the messages Go encoded it from, and
	 * encodes back to the same text. */
	arena_reset(&arena);
	if (ok(decode(want, strlen(want), &d, &n, err, sizeof(err)) == 0 &&
	    n == b->n_batch, "%s: batch JSON decodes", name)) {
		for (same = 1, i = 0; !conv && i < n; i++)
			same &= same_pack(envs[i], d[i]);
		ok(same, "%s: batch decodes to the same messages", name);
		buf_reset(&out);
		ok(json_encode_batch(&out, d, n) == 0 && is(want),
		    "%s: and encodes back to the same text", name);
	} else
		note("%s", err);

	/* Some gateway builds put a space after every comma. */
	sp = malloc(2 * strlen(want) + 1);
	for (p = want, q = sp; *p; p++) {
		*q++ = *p;
		if (*p == ',')
			*q++ = ' ';
	}
	*q = '\0';
	arena_reset(&arena);
	if (!ok(decode(sp, strlen(sp), &d, &n, err, sizeof(err)) == 0 &&
	    n == b->n_batch, "%s: decodes with \", \" between fields", name))
		note("%s", err);
	free(sp);

	for (i = 0; i < b->n_batch; i++)
		ok(roundtrip(b->batch[i], 1, name),
		    "%s: envelope %zu round trip", name, i);
	loggregator__v2__envelope_batch__free_unpacked(b, NULL);
}

static void
test_golden_gateway(void)
{
	static char line[1 << 16];
	json_error_t je;
	json_t *r;
	FILE *f;
	int cases = 0;

	f = fopen(GOLDEN "v2_json_gateway.jsonl", "r");
	if (!ok(f != NULL, "open the set C vectors"))
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		r = json_loads(line, 0, &je);
		if (!ok(r != NULL, "golden line parses"))
			continue;
		golden_case(r);
		json_decref(r);
		cases++;
	}
	fclose(f);
	ok(cases >= 9, "%d set C cases", cases);
}

/* Every v2 envelope in the other golden sets survives a round trip. */
static void
test_golden_roundtrips(void)
{
	static const struct {
		const char *file;
		int in, out;	/* which of in/out hold v2 envelopes */
	} sets[] = {
		{ "v1_to_v2.jsonl", 0, 1 },
		{ "v2_to_v1.jsonl", 1, 0 },
		{ "syslog_rfc5424.jsonl", 1, 0 },
		{ "statsd_to_v2.jsonl", 0, 1 },
		{ "rlp_converge_tags.jsonl", 1, 1 },
	};
	static char line[1 << 16];
	Loggregator__V2__Envelope *e;
	const char *hex[64];
	unsigned char *pb;
	char path[256];
	json_t *r, *o;
	size_t s, nh, i, npb;
	int total, bad, lossy;
	FILE *f;

	for (s = 0; s < sizeof(sets) / sizeof(sets[0]); s++) {
		snprintf(path, sizeof(path), GOLDEN "%s", sets[s].file);
		f = fopen(path, "r");
		if (!ok(f != NULL, "open %s", path))
			continue;
		total = bad = lossy = 0;
		while (fgets(line, sizeof(line), f) != NULL) {
			if ((r = json_loads(line, 0, NULL)) == NULL)
				continue;
			nh = 0;
			if (sets[s].in)
				hex[nh++] = json_string_value(json_object_get(r,
				    "in"));
			o = json_object_get(r, "out");
			for (i = 0; sets[s].out && i < json_array_size(o) &&
			    nh < 64; i++)
				hex[nh++] = json_string_value(json_array_get(o,
				    i));
			for (i = 0; i < nh; i++) {
				if (hex[i] == NULL)
					continue;
				pb = unhex(hex[i], &npb);
				e = loggregator__v2__envelope__unpack(NULL, npb,
				    pb);
				free(pb);
				if (e == NULL)
					continue;
				total++;
				if (!env_utf8_ok(e))
					lossy++;
				if (!roundtrip(e, env_utf8_ok(e), sets[s].file))
					bad++;
				loggregator__v2__envelope__free_unpacked(e,
				    NULL);
			}
			json_decref(r);
		}
		fclose(f);
		ok(total > 0 && bad == 0,
		    "%s: %d envelopes round trip (%d with bad UTF-8)",
		    sets[s].file, total, lossy);
	}
}

/* ---- hand-built envelopes ---- */

static void
test_handbuilt(void)
{
	Loggregator__V2__Envelope__TagsEntry tg[2] = {
		LOGGREGATOR__V2__ENVELOPE__TAGS_ENTRY__INIT,
		LOGGREGATOR__V2__ENVELOPE__TAGS_ENTRY__INIT,
	};
	Loggregator__V2__Envelope__TagsEntry *tgp[2] = { &tg[0], &tg[1] };
	Loggregator__V2__Envelope__DeprecatedTagsEntry dt[4] = {
		LOGGREGATOR__V2__ENVELOPE__DEPRECATED_TAGS_ENTRY__INIT,
		LOGGREGATOR__V2__ENVELOPE__DEPRECATED_TAGS_ENTRY__INIT,
		LOGGREGATOR__V2__ENVELOPE__DEPRECATED_TAGS_ENTRY__INIT,
		LOGGREGATOR__V2__ENVELOPE__DEPRECATED_TAGS_ENTRY__INIT,
	};
	Loggregator__V2__Envelope__DeprecatedTagsEntry *dtp[4] = {
		&dt[0], &dt[1], &dt[2], &dt[3]
	};
	Loggregator__V2__Value val[4] = {
		LOGGREGATOR__V2__VALUE__INIT, LOGGREGATOR__V2__VALUE__INIT,
		LOGGREGATOR__V2__VALUE__INIT, LOGGREGATOR__V2__VALUE__INIT,
	};
	Loggregator__V2__Log log = LOGGREGATOR__V2__LOG__INIT;
	Loggregator__V2__Counter ctr = LOGGREGATOR__V2__COUNTER__INIT;
	Loggregator__V2__Gauge gauge = LOGGREGATOR__V2__GAUGE__INIT;
	Loggregator__V2__Gauge__MetricsEntry me[3] = {
		LOGGREGATOR__V2__GAUGE__METRICS_ENTRY__INIT,
		LOGGREGATOR__V2__GAUGE__METRICS_ENTRY__INIT,
		LOGGREGATOR__V2__GAUGE__METRICS_ENTRY__INIT,
	};
	Loggregator__V2__Gauge__MetricsEntry *mep[3] = {
		&me[0], &me[1], &me[2]
	};
	Loggregator__V2__GaugeValue gv[3] = {
		LOGGREGATOR__V2__GAUGE_VALUE__INIT,
		LOGGREGATOR__V2__GAUGE_VALUE__INIT,
		LOGGREGATOR__V2__GAUGE_VALUE__INIT,
	};
	Loggregator__V2__Timer tmr = LOGGREGATOR__V2__TIMER__INIT;
	Loggregator__V2__Event ev = LOGGREGATOR__V2__EVENT__INIT;
	Loggregator__V2__Envelope e = LOGGREGATOR__V2__ENVELOPE__INIT;
	Loggregator__V2__Envelope empty = LOGGREGATOR__V2__ENVELOPE__INIT;
	Loggregator__V2__Envelope *two[2] = { &empty, &empty };
	static const unsigned char payload[] = "line\0with nul\xff";
	static const char empty_json[] = "{\"timestamp\":\"0\","
	    "\"source_id\":\"\",\"instance_id\":\"\",\"deprecated_tags\":{},"
	    "\"tags\":{}}";
	struct buf small;

	ok(roundtrip(&empty, 1, "empty"), "empty envelope round trip");
	buf_reset(&out);
	json_encode_envelope(&out, &empty);
	ok(is(empty_json), "empty envelope JSON: every field, no message");

	e.timestamp = INT64_MIN;
	e.source_id = "src";
	e.instance_id = "3";
	tg[0].key = "a";
	tg[0].value = "x";
	tg[1].key = "b";
	tg[1].value = "<&>\x7f\xe2\x80\xa8";
	e.n_tags = 2;
	e.tags = tgp;
	e.message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_LOG;
	e.log = &log;
	log.payload.data = (uint8_t *)payload;
	log.payload.len = sizeof(payload) - 1;
	log.type = LOGGREGATOR__V2__LOG__TYPE__ERR;
	ok(roundtrip(&e, 1, "log ERR"), "log ERR round trip");
	buf_reset(&out);
	json_encode_envelope(&out, &e);
	if (!ok(is("{\"timestamp\":\"-9223372036854775808\",\"source_id\":"
	    "\"src\",\"instance_id\":\"3\",\"deprecated_tags\":{},\"tags\":"
	    "{\"a\":\"x\",\"b\":\"<&>\x7f\xe2\x80\xa8\"},\"log\":{\"payload\":"
	    "\"bGluZQB3aXRoIG51bP8=\",\"type\":\"ERR\"}}"), "log ERR JSON"))
		note("%.*s", (int)out.len, out.data);
	log.type = LOGGREGATOR__V2__LOG__TYPE__OUT;
	log.payload.len = 1;
	ok(roundtrip(&e, 1, "log OUT"), "log OUT round trip, one byte");
	log.payload.len = 2;
	ok(roundtrip(&e, 1, "log OUT 2"), "log OUT round trip, two bytes");
	log.payload.len = 0;
	log.payload.data = NULL;
	ok(roundtrip(&e, 1, "log OUT empty"), "log OUT round trip, no payload");
	/* proto3 enums are open; protojson writes an undeclared one as a
	 * number. */
	log.type = (Loggregator__V2__Log__Type)7;
	buf_reset(&out);
	json_encode_envelope(&out, &e);
	ok(has("\"type\":7}"), "undeclared log type is written as a number");
	ok(roundtrip(&e, 1, "log 7"), "undeclared log type round trip");
	log.type = LOGGREGATOR__V2__LOG__TYPE__OUT;

	e.message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_COUNTER;
	e.counter = &ctr;
	ctr.name = "requests";
	ctr.delta = UINT64_MAX;
	ctr.total = UINT64_C(12345678901234567890);
	e.timestamp = INT64_MAX;
	ok(roundtrip(&e, 1, "counter"), "counter round trip");
	buf_reset(&out);
	json_encode_envelope(&out, &e);
	if (!ok(has("\"timestamp\":\"9223372036854775807\"") &&
	    has("\"counter\":{\"name\":\"requests\",\"delta\":"
	    "\"18446744073709551615\",\"total\":\"12345678901234567890\"}}"),
	    "counter JSON"))
		note("%.*s", (int)out.len, out.data);

	e.message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_GAUGE;
	e.gauge = &gauge;
	gauge.n_metrics = 3;
	gauge.metrics = mep;
	me[0].key = "cpu";
	me[0].value = &gv[0];
	gv[0].unit = "percentage";
	gv[0].value = 0.5;
	me[1].key = "memory";
	me[1].value = &gv[1];
	gv[1].unit = "bytes";
	gv[1].value = 1e21;
	me[2].key = "tiny";
	me[2].value = &gv[2];
	gv[2].value = -1e-7;
	ok(roundtrip(&e, 1, "gauge"), "gauge with three metrics round trip");
	gv[2].value = NAN;
	ok(roundtrip(&e, 0, "gauge NaN"), "gauge NaN round trip");
	gv[2].value = -INFINITY;
	ok(roundtrip(&e, 1, "gauge -Inf"), "gauge -Inf round trip");
	gv[2].value = -0.0;
	ok(roundtrip(&e, 1, "gauge -0"), "gauge -0 round trip");
	/* Entries out of order are written sorted. */
	mep[0] = &me[2];
	mep[2] = &me[0];
	buf_reset(&out);
	json_encode_envelope(&out, &e);
	if (!ok(has("\"gauge\":{\"metrics\":{\"cpu\":{\"unit\":\"percentage\","
	    "\"value\":0.5},\"memory\":{\"unit\":\"bytes\",\"value\":1e+21},"
	    "\"tiny\":{\"unit\":\"\",\"value\":-0}}}}"),
	    "gauge metrics sorted by key"))
		note("%.*s", (int)out.len, out.data);
	ok(roundtrip(&e, 0, "gauge unsorted"), "unsorted gauge round trip");
	/* A key twice: the last entry wins, as when Go decodes it. */
	me[1].key = "cpu";
	me[2].key = "cpu";
	buf_reset(&out);
	json_encode_envelope(&out, &e);
	if (!ok(has("\"gauge\":{\"metrics\":{\"cpu\":{\"unit\":\"percentage\","
	    "\"value\":0.5}}}}"), "duplicate map key: the last one is written"))
		note("%.*s", (int)out.len, out.data);
	/* A metric entry without a value is an empty GaugeValue. */
	me[2].value = NULL;
	mep[0] = &me[2];
	gauge.n_metrics = 1;
	buf_reset(&out);
	json_encode_envelope(&out, &e);
	if (!ok(has("\"gauge\":{\"metrics\":{\"cpu\":{\"unit\":\"\","
	    "\"value\":0}}}}"), "metric with no value object"))
		note("%.*s", (int)out.len, out.data);
	gauge.n_metrics = 0;
	ok(roundtrip(&e, 1, "gauge none"), "gauge with no metrics round trip");

	e.message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_TIMER;
	e.timer = &tmr;
	tmr.name = "http";
	tmr.start = -5;
	tmr.stop = 1700000000123456789;
	ok(roundtrip(&e, 1, "timer"), "timer round trip");
	buf_reset(&out);
	json_encode_envelope(&out, &e);
	ok(has("\"timer\":{\"name\":\"http\",\"start\":\"-5\",\"stop\":"
	    "\"1700000000123456789\"}}"), "timer JSON");

	e.message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_EVENT;
	e.event = &ev;
	ev.title = "t\"\\\b\f\n\r\t\x01\x1f";
	ev.body = "\xf0\x9f\x98\x80 ok";
	ok(roundtrip(&e, 1, "event"), "event round trip");
	buf_reset(&out);
	json_encode_envelope(&out, &e);
	if (!ok(has("\"event\":{\"title\":\"t\\\"\\\\\\b\\f\\n\\r\\t\\u0001"
	    "\\u001f\",\"body\":\"\xf0\x9f\x98\x80 ok\"}}"), "event JSON"))
		note("%.*s", (int)out.len, out.data);

	/* Deprecated tags of every kind, and one with nothing set. */
	e.n_deprecated_tags = 4;
	e.deprecated_tags = dtp;
	dt[0].key = "dec";
	dt[0].value = &val[0];
	val[0].data_case = LOGGREGATOR__V2__VALUE__DATA_DECIMAL;
	val[0].decimal = 1.5;
	dt[1].key = "int";
	dt[1].value = &val[1];
	val[1].data_case = LOGGREGATOR__V2__VALUE__DATA_INTEGER;
	val[1].integer = -42;
	dt[2].key = "none";
	dt[2].value = &val[2];
	dt[3].key = "text";
	dt[3].value = &val[3];
	val[3].data_case = LOGGREGATOR__V2__VALUE__DATA_TEXT;
	val[3].text = "hello";
	ok(roundtrip(&e, 1, "deprecated"), "deprecated tags round trip");
	buf_reset(&out);
	json_encode_envelope(&out, &e);
	if (!ok(has("\"deprecated_tags\":{\"dec\":{\"decimal\":1.5},\"int\":"
	    "{\"integer\":\"-42\"},\"none\":{},\"text\":{\"text\":"
	    "\"hello\"}},"),
	    "deprecated tags JSON"))
		note("%.*s", (int)out.len, out.data);
	dt[2].value = NULL;
	buf_reset(&out);
	json_encode_envelope(&out, &e);
	ok(has("\"none\":{}"), "deprecated tag without a value object is {}");

	/* NULL sub-messages and strings count as empty. */
	e.message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_COUNTER;
	e.counter = NULL;
	e.source_id = NULL;
	e.n_deprecated_tags = 0;
	buf_reset(&out);
	if (!ok(json_encode_envelope(&out, &e) == 0 &&
	    has("\"source_id\":\"\"") && has("\"counter\":{\"name\":\"\","
	    "\"delta\":\"0\",\"total\":\"0\"}}"),
	    "NULL counter and source_id are written empty"))
		note("%.*s", (int)out.len, out.data);

	/* More entries than enc_map sorts on the stack, in reverse. */
	{
		Loggregator__V2__Envelope__TagsEntry many[40], *mp[40];
		Loggregator__V2__Envelope m = LOGGREGATOR__V2__ENVELOPE__INIT;
		char keys[40][8], *p;
		size_t i;
		int sorted = 1;

		for (i = 0; i < 40; i++) {
			loggregator__v2__envelope__tags_entry__init(&many[i]);
			snprintf(keys[i], sizeof(keys[i]), "k%02zu", 39 - i);
			many[i].key = keys[i];
			many[i].value = keys[i];
			mp[i] = &many[i];
		}
		m.n_tags = 40;
		m.tags = mp;
		buf_reset(&out);
		json_encode_envelope(&out, &m);
		p = out.data;
		for (i = 0; i < 40 && sorted; i++) {
			snprintf(keys[0], sizeof(keys[0]), "\"k%02zu\"", i);
			p = memmem(p, out.len - (size_t)(p - out.data), keys[0],
			    strlen(keys[0]));
			sorted = p != NULL;
		}
		ok(sorted, "40 tags come out sorted");
	}

	/* A batch of several, and the buffer's ceiling. */
	buf_reset(&out);
	ok(json_encode_batch(&out, two, 2) == 0 &&
	    out.len == 2 * strlen(empty_json) + strlen("{\"batch\":[,]}") &&
	    has(empty_json), "batch of two");
	buf_reset(&out);
	ok(json_encode_batch(&out, two, 0) == 0 && is("{\"batch\":[]}"),
	    "empty batch");
	buf_init(&small, 16, 40);
	buf_puts(&small, "keep");
	ok(json_encode_batch(&small, two, 2) == -1 && errno == EMSGSIZE &&
	    small.len == 4,
	    "batch past the buffer's ceiling: EMSGSIZE, buffer as it was");
	ok(json_encode_envelope(&small, &empty) == -1 && errno == EMSGSIZE &&
	    small.len == 4,
	    "envelope past the ceiling: EMSGSIZE, buffer as it was");
	ok(json_encode_string(&small, "0123456789012345678901234567890123456",
	    37) == -1 && errno == EMSGSIZE && small.len == 4,
	    "string past the ceiling: EMSGSIZE, buffer as it was");
	ok(json_encode_envelope(&small, NULL) == -1 && errno == EINVAL,
	    "NULL envelope is EINVAL");
	buf_release(&small);
}

/* ---- strings ---- */

static void
test_strings(void)
{
	static const struct {
		const char *name, *in;
		size_t n;
		const char *want;
	} t[] = {
		{ "plain", "abc", 3, "\"abc\"" },
		{ "empty", "", 0, "\"\"" },
		{ "quote and backslash", "\"\\", 2, "\"\\\"\\\\\"" },
		{ "slash stays", "a/b", 3, "\"a/b\"" },
		{ "<>& stay raw", "<>&", 3, "\"<>&\"" },
		{ "DEL raw", "\x7f", 1, "\"\x7f\"" },
		{ "U+2028/9 raw", "\xe2\x80\xa8\xe2\x80\xa9", 6,
		    "\"\xe2\x80\xa8\xe2\x80\xa9\"" },
		{ "short escapes", "\b\f\n\r\t", 5, "\"\\b\\f\\n\\r\\t\"" },
		{ "NUL", "a\0b", 3, "\"a\\u0000b\"" },
		{ "other controls", "\x01\x0b\x1b\x1f", 4,
		    "\"\\u0001\\u000b\\u001b\\u001f\"" },
		{ "2-, 3-, 4-byte UTF-8 raw",
		    "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9,
		    "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"" },
		{ "U+10FFFF raw", "\xf4\x8f\xbf\xbf", 4,
		    "\"\xf4\x8f\xbf\xbf\"" },
		{ "U+FFFD raw", "\xef\xbf\xbd", 3, "\"\xef\xbf\xbd\"" },
		{ "stray continuation", "a\x80z", 3, "\"a\xef\xbf\xbdz\"" },
		{ "0xff", "\xff", 1, "\"\xef\xbf\xbd\"" },
		{ "truncated 3-byte", "\xe2\x82", 2,
		    "\"\xef\xbf\xbd\xef\xbf\xbd\"" },
		{ "truncated at the end", "ok\xf0\x9f\x98", 5,
		    "\"ok\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"" },
		{ "overlong /", "\xc0\xaf", 2, "\"\xef\xbf\xbd\xef\xbf\xbd\"" },
		{ "overlong 3-byte", "\xe0\x80\xaf", 3,
		    "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"" },
		{ "surrogate", "\xed\xa0\x80", 3,
		    "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"" },
		{ "past U+10FFFF", "\xf4\x90\x80\x80", 4,
		    "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"" },
		{ "bad byte, then good", "\xfe\xc3\xa9", 3,
		    "\"\xef\xbf\xbd\xc3\xa9\"" },
		{ "bad byte before an escape", "\xc3\n", 2,
		    "\"\xef\xbf\xbd\\n\"" },
	};
	Loggregator__V2__Envelope__TagsEntry tag =
	    LOGGREGATOR__V2__ENVELOPE__TAGS_ENTRY__INIT, *tp = &tag;
	Loggregator__V2__Envelope e = LOGGREGATOR__V2__ENVELOPE__INIT, **d;
	char err[256];
	size_t i, n;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		buf_reset(&out);
		if (!ok(json_encode_string(&out, t[i].in, t[i].n) == 0 &&
		    is(t[i].want), "string: %s", t[i].name))
			note("got %.*s", (int)out.len, out.data);
	}

	/* A tag that is not UTF-8: the output is, and it reads back. */
	tag.key = "k\xff";
	tag.value = "v\xc3";
	e.n_tags = 1;
	e.tags = &tp;
	buf_reset(&out);
	ok(json_encode_envelope(&out, &e) == 0 && buf_putc(&out, '\0') == 0 &&
	    utf8_ok(out.data), "a tag with bad UTF-8 encodes to good UTF-8");
	out.len--;
	arena_reset(&arena);
	if (!ok(decode(out.data, out.len, &d, &n, err, sizeof(err)) == 0 &&
	    n == 1 && d[0]->n_tags == 1 &&
	    strcmp(d[0]->tags[0]->key, "k\xef\xbf\xbd") == 0 &&
	    strcmp(d[0]->tags[0]->value, "v\xef\xbf\xbd") == 0,
	    "and decodes with U+FFFD for the bad bytes"))
		note("%s", err);

	/* Keys that differ only in bad bytes become one key, sorted among
	 * the others by the text written. */
	{
		Loggregator__V2__Envelope__TagsEntry k[3] = {
			LOGGREGATOR__V2__ENVELOPE__TAGS_ENTRY__INIT,
			LOGGREGATOR__V2__ENVELOPE__TAGS_ENTRY__INIT,
			LOGGREGATOR__V2__ENVELOPE__TAGS_ENTRY__INIT,
		};
		Loggregator__V2__Envelope__TagsEntry *kp[3] = {
			&k[0], &k[1], &k[2]
		};

		k[0].key = "a\xff";
		k[0].value = "first";
		k[1].key = "a\xef\xbf\xbe";	/* U+FFFE, above U+FFFD */
		k[1].value = "fffe";
		k[2].key = "a\xfe";
		k[2].value = "last";
		e.n_tags = 3;
		e.tags = kp;
		buf_reset(&out);
		if (!ok(json_encode_envelope(&out, &e) == 0 &&
		    has("\"tags\":{\"a\xef\xbf\xbd\":\"last\","
		    "\"a\xef\xbf\xbe\":\"fffe\"}"),
		    "bad keys that repair alike are one key"))
			note("%.*s", (int)out.len, out.data);
		arena_reset(&arena);
		ok(decode(out.data, out.len, &d, &n, err, sizeof(err)) == 0,
		    "and the object reads back");
	}
}

/* ---- what the decoder accepts ---- */

static Loggregator__V2__Envelope *
decode1(const char *s)
{
	Loggregator__V2__Envelope **d;
	char err[256];
	size_t n;

	arena_reset(&arena);
	if (decode(s, strlen(s), &d, &n, err, sizeof(err)) == -1) {
		note("decode: %s", err);
		return NULL;
	}
	if (n != 1) {
		note("decode: %zu envelopes", n);
		return NULL;
	}
	return d[0];
}

static void
test_accepts(void)
{
	Loggregator__V2__Envelope *e, **d;
	Loggregator__V2__GaugeValue *m[8];
	const char *s;
	char err[256];
	uint64_t bits;
	size_t n, i;

	e = decode1("{\"timestamp\":1700000000123456789,\"sourceId\":\"s\","
	    "\"instanceId\":\"i\",\"deprecatedTags\":{\"x\":{\"integer\":7}},"
	    "\"tags\":{},\"counter\":{\"name\":\"c\",\"delta\":5,"
	    "\"total\":18446744073709551615}}");
	ok(e != NULL && e->timestamp == 1700000000123456789 &&
	    strcmp(e->source_id, "s") == 0 &&
	    strcmp(e->instance_id, "i") == 0 &&
	    e->n_deprecated_tags == 1 &&
	    e->deprecated_tags[0]->value->data_case ==
	    LOGGREGATOR__V2__VALUE__DATA_INTEGER &&
	    e->deprecated_tags[0]->value->integer == 7 &&
	    e->message_case == LOGGREGATOR__V2__ENVELOPE__MESSAGE_COUNTER &&
	    e->counter->delta == 5 && e->counter->total == UINT64_MAX,
	    "camelCase names; 64-bit integers as numbers, every digit kept");

	e = decode1(" \t\r\n{ \"timestamp\" : \"-9223372036854775808\" ,\n"
	    "  \"source_id\" :\t\"a\" , \"tags\" : { \"k\" : \"v\" } ,"
	    " \"timer\" : { \"start\" : -1 , \"stop\" : \"2\" } }\n ");
	ok(e != NULL && e->timestamp == INT64_MIN && e->n_tags == 1 &&
	    strcmp(e->tags[0]->value, "v") == 0 &&
	    e->message_case == LOGGREGATOR__V2__ENVELOPE__MESSAGE_TIMER &&
	    e->timer->start == -1 && e->timer->stop == 2 &&
	    strcmp(e->timer->name, "") == 0,
	    "whitespace everywhere; fields left out are empty");

	e = decode1("{\"timer\":{\"start\":1e3,\"stop\":\"2.50e1\","
	    "\"name\":null}}");
	ok(e != NULL && e->timer->start == 1000 && e->timer->stop == 25,
	    "integers in exponent form, as numbers and as strings");
	e = decode1("{\"timer\":{\"start\":-0,\"stop\":0.0e-5}}");
	ok(e != NULL && e->timer->start == 0 && e->timer->stop == 0,
	    "-0 and 0.0e-5 are 0");
	e = decode1("{\"timer\":{\"start\":9223372036854775807,"
	    "\"stop\":-9223372036854775808}}");
	ok(e != NULL && e->timer->start == INT64_MAX &&
	    e->timer->stop == INT64_MIN, "int64 limits as numbers");
	e = decode1("{\"timer\":{\"start\":\"0.00000000000000000000000000001e29"
	    "\",\"stop\":12345678900000000000000e-4}}");
	ok(e != NULL && e->timer->start == 1 &&
	    e->timer->stop == 1234567890000000000,
	    "long digit strings with exponents that make them whole");

	e = decode1("{\"gauge\":{\"metrics\":{\"a\":{\"value\":\"NaN\"},"
	    "\"b\":{\"value\":\"Infinity\"},\"c\":{\"value\":\"-Infinity\"},"
	    "\"d\":{\"value\":\"1.5\"},\"e\":{\"value\":100000000000000000000},"
	    "\"f\":{\"value\":-0},\"g\":{\"value\":1e-400},\"h\":{\"unit\":"
	    "\"u\"}}}}");
	if (ok(e != NULL && e->gauge->n_metrics == 8,
	    "doubles: special strings, numeric strings, big integers")) {
		for (i = 0; i < 8; i++)
			m[i] = e->gauge->metrics[i]->value;
		memcpy(&bits, &m[0]->value, sizeof(bits));
		ok(bits == UINT64_C(0x7ff8000000000001),
		    "\"NaN\" has the bits of Go's math.NaN()");
		ok(isinf(m[1]->value) && m[1]->value > 0 &&
		    isinf(m[2]->value) && m[2]->value < 0, "+-Infinity");
		ok(m[3]->value == 1.5 && m[4]->value == 1e20,
		    "\"1.5\" and 100000000000000000000");
		ok(m[5]->value == 0 && signbit(m[5]->value),
		    "-0 keeps its sign");
		ok(m[6]->value == 0, "underflow reads as 0, as in Go");
		ok(strcmp(m[7]->unit, "u") == 0 && m[7]->value == 0,
		    "a value left out is 0");
	}
	e = decode1("{\"gauge\":{\"metrics\":{\"x\":{\"value\":"
	    "0.1000000000000000055511151231257827021181583404541015625}}}}");
	ok(e != NULL && e->gauge->metrics[0]->value->value == 0.1,
	    "a double with more digits than the stack copy holds");

	e = decode1("{\"log\":{\"payload\":\"-_8=\",\"type\":1}}");
	ok(e != NULL && e->log->payload.len == 2 &&
	    e->log->payload.data[0] == 0xfb &&
	    e->log->payload.data[1] == 0xff &&
	    e->log->type == LOGGREGATOR__V2__LOG__TYPE__ERR,
	    "URL-safe base64; type as a number");
	e = decode1("{\"log\":{\"payload\":\"aGVsbG8\",\"type\":\"OUT\"}}");
	ok(e != NULL && e->log->payload.len == 5 &&
	    memcmp(e->log->payload.data, "hello", 5) == 0, "unpadded base64");
	e = decode1("{\"log\":{\"payload\":\"aGVsbG8gd29ybGQ\"}}");
	ok(e != NULL && e->log->payload.len == 11, "unpadded base64, 15 long");
	/* Go skips CR and LF, but counts them when it decides whether
	 * padding is due (a length that is a multiple of 4). */
	e = decode1("{\"log\":{\"payload\":\"aGVs\\r\\n\\r\\nbG8=\"}}");
	ok(e != NULL && e->log->payload.len == 5 &&
	    memcmp(e->log->payload.data, "hello", 5) == 0,
	    "line breaks in padded base64 are skipped, as Go does");
	e = decode1("{\"log\":{\"payload\":\"aGVs\\n\\nbG8\"}}");
	ok(e != NULL && e->log->payload.len == 5 &&
	    memcmp(e->log->payload.data, "hello", 5) == 0,
	    "and in unpadded base64");
	e = decode1("{\"log\":{\"payload\":\"aGV=\"}}");
	ok(e != NULL && e->log->payload.len == 2 &&
	    memcmp(e->log->payload.data, "he", 2) == 0,
	    "one padding symbol");
	e = decode1("{\"log\":{\"type\":42}}");
	ok(e != NULL && (int)e->log->type == 42 && e->log->payload.len == 0,
	    "an undeclared type number is kept (open enum)");
	e = decode1("{\"log\":{}}");
	ok(e != NULL && e->message_case ==
	    LOGGREGATOR__V2__ENVELOPE__MESSAGE_LOG,
	    "an empty log object still sets the oneof");
	e = decode1("{\"log\":null,\"event\":{\"title\":\"t\"}}");
	ok(e != NULL && e->message_case ==
	    LOGGREGATOR__V2__ENVELOPE__MESSAGE_EVENT,
	    "a null oneof member is unset, so another may follow");
	e = decode1("{\"deprecated_tags\":{\"a\":{},\"b\":{\"text\":null,"
	    "\"decimal\":2.5},\"c\":{\"integer\":\"-3\"}}}");
	ok(e != NULL && e->n_deprecated_tags == 3 &&
	    e->deprecated_tags[0]->value->data_case ==
	    LOGGREGATOR__V2__VALUE__DATA__NOT_SET &&
	    e->deprecated_tags[1]->value->decimal == 2.5 &&
	    e->deprecated_tags[2]->value->integer == -3,
	    "values: empty; a null member, then another; integer as string");
	e = decode1("{\"timestamp\":null,\"source_id\":null,\"tags\":null,"
	    "\"deprecated_tags\":null,\"gauge\":{\"metrics\":null}}");
	ok(e != NULL && e->timestamp == 0 && e->n_tags == 0 &&
	    e->gauge->n_metrics == 0, "null fields are unset");
	e = decode1("{\"source_id\":\"a\\\"b\\\\c\\/d\\u00e9\\ud83d\\ude00\","
	    "\"tags\":{\"\\u0041\":\"1 2\"}}");
	ok(e != NULL && strcmp(e->source_id, "a\"b\\c/d\xc3\xa9"
	    "\xf0\x9f\x98\x80") == 0 && strcmp(e->tags[0]->key, "A") == 0,
	    "string escapes, surrogate pairs, numbers inside strings");
	e = decode1("{}");
	ok(e != NULL && e->message_case ==
	    LOGGREGATOR__V2__ENVELOPE__MESSAGE__NOT_SET,
	    "{} is one empty envelope");

	arena_reset(&arena);
	ok(decode("{\"batch\":[]}", 12, &d, &n, err, sizeof(err)) == 0 &&
	    n == 0, "empty batch");
	ok(decode("{\"batch\":null}", 14, &d, &n, err, sizeof(err)) == 0 &&
	    n == 0, "null batch");
	if (!ok(decode("{\"batch\":[{},{\"timestamp\":\"1\"},{}]}", 35, &d,
	    &n, err, sizeof(err)) == 0 && n == 3 && d[1]->timestamp == 1,
	    "batch of three"))
		note("%s", err);
	/* Numbers in strings and keys must not throw the number scan off. */
	s = "{\"batch\":[{\"tags\":{\"-1\":\"2e5\"},\"source_id\":"
	    "\"\\\"3\",\"timestamp\":4},{\"timestamp\":-5}]}";
	if (!ok(decode(s, strlen(s), &d, &n, err, sizeof(err)) == 0 &&
	    n == 2 && d[0]->timestamp == 4 &&
	    d[1]->timestamp == -5, "numbers after digit-laden strings"))
		note("%s", err);
}

/* ---- what it refuses ---- */

static const struct {
	const char *name, *in, *reason;
} bad[] = {
	{ "empty input", "", "bad json" },
	{ "not JSON", "hello", "bad json" },
	{ "truncated", "{\"timestamp\":\"1\"", "bad json" },
	{ "trailing garbage", "{} x", "bad json" },
	{ "two texts", "{}{}", "bad json" },
	{ "top-level array", "[{}]", "want an object" },
	{ "top-level string", "\"x\"", "bad json" },
	{ "invalid UTF-8", "{\"source_id\":\"\xff\"}", "bad json" },
	{ "raw control char", "{\"source_id\":\"a\tb\"}", "bad json" },
	{ "\\u0000", "{\"source_id\":\"a\\u0000b\"}", "bad json" },
	{ "lone surrogate", "{\"source_id\":\"\\ud800\"}", "bad json" },
	{ "single quotes", "{'source_id':'x'}", "bad json" },
	{ "trailing comma", "{\"tags\":{},}", "bad json" },
	{ "duplicate key", "{\"tags\":{},\"tags\":{}}", "bad json" },
	{ "duplicate map key", "{\"tags\":{\"a\":\"1\",\"a\":\"2\"}}",
	    "bad json" },
	{ "two spellings", "{\"source_id\":\"a\",\"sourceId\":\"b\"}",
	    "given twice" },
	{ "unknown field", "{\"origin\":\"x\"}", "unknown field" },
	{ "unknown in log", "{\"log\":{\"payload\":\"\",\"x\":1}}",
	    "unknown field" },
	{ "wrong case", "{\"counter\":{\"Name\":\"x\"}}", "unknown field" },
	{ "two oneof members", "{\"log\":{},\"counter\":{}}",
	    "message already" },
	{ "two value members",
	    "{\"deprecated_tags\":{\"a\":{\"text\":\"x\",\"integer\":1}}}",
	    "already" },
	{ "int64 with a fraction", "{\"timestamp\":1.5}",
	    "not a whole number" },
	{ "int64 fraction in a string", "{\"timestamp\":\"1.5\"}",
	    "not a whole number" },
	{ "int64 too big", "{\"timestamp\":9223372036854775808}",
	    "out of range" },
	{ "int64 too small", "{\"timestamp\":\"-9223372036854775809\"}",
	    "out of range" },
	{ "int64 huge exponent", "{\"timestamp\":\"1e300\"}", "out of range" },
	{ "int64 vast exponent", "{\"timestamp\":\"1e99999999999999999999\"}",
	    "out of range" },
	{ "int64 tiny exponent", "{\"timestamp\":\"1e-300\"}",
	    "not a whole number" },
	{ "uint64 too big", "{\"counter\":{\"total\":18446744073709551616}}",
	    "out of range" },
	{ "uint64 negative", "{\"counter\":{\"delta\":-1}}", "out of range" },
	{ "int as bool", "{\"timestamp\":true}", "want an integer" },
	{ "int as object", "{\"timestamp\":{}}", "want an integer" },
	{ "int string with a space", "{\"timestamp\":\" 5\"}", "not a number" },
	{ "int string with +", "{\"timestamp\":\"+5\"}", "not a number" },
	{ "int string leading zero", "{\"timestamp\":\"05\"}", "not a number" },
	{ "int string hex", "{\"timestamp\":\"0x10\"}", "not a number" },
	{ "int string 1.", "{\"timestamp\":\"1.\"}", "not a number" },
	{ "int string 1e", "{\"timestamp\":\"1e\"}", "not a number" },
	{ "int string -", "{\"timestamp\":\"-\"}", "not a number" },
	{ "int empty string", "{\"timestamp\":\"\"}", "not a number" },
	{ "double overflow", "{\"gauge\":{\"metrics\":{\"a\":"
	    "{\"value\":1e400}}}}", "bad json" },
	{ "double overflow in a string", "{\"gauge\":{\"metrics\":{\"a\":"
	    "{\"value\":\"-1e400\"}}}}", "out of range" },
	{ "double lowercase nan", "{\"gauge\":{\"metrics\":{\"a\":"
	    "{\"value\":\"nan\"}}}}", "not a number" },
	{ "double Inf", "{\"gauge\":{\"metrics\":{\"a\":"
	    "{\"value\":\"Inf\"}}}}", "not a number" },
	{ "double as array", "{\"gauge\":{\"metrics\":{\"a\":"
	    "{\"value\":[1]}}}}", "want a number" },
	{ "metric not an object", "{\"gauge\":{\"metrics\":{\"a\":1}}}",
	    "want an object" },
	{ "metric null", "{\"gauge\":{\"metrics\":{\"a\":null}}}",
	    "want an object" },
	{ "metrics an array", "{\"gauge\":{\"metrics\":[]}}",
	    "want an object" },
	{ "string as number", "{\"source_id\":5}", "want a string" },
	{ "string as bool", "{\"instance_id\":false}", "want a string" },
	{ "tag value a number", "{\"tags\":{\"a\":1}}", "want a string" },
	{ "tag value null", "{\"tags\":{\"a\":null}}", "want a string" },
	{ "tags an array", "{\"tags\":[]}", "want an object" },
	{ "deprecated tag a string", "{\"deprecated_tags\":{\"a\":\"x\"}}",
	    "want an object" },
	{ "deprecated tag null", "{\"deprecated_tags\":{\"a\":null}}",
	    "want an object" },
	{ "log a string", "{\"log\":\"x\"}", "want an object" },
	{ "bad base64 char", "{\"log\":{\"payload\":\"a*==\"}}", "bad base64" },
	{ "base64 mixed alphabets", "{\"log\":{\"payload\":\"a+_=\"}}",
	    "bad base64" },
	{ "base64 lone symbol", "{\"log\":{\"payload\":\"aGVsb\"}}",
	    "bad base64" },
	{ "base64 padding after a whole quantum",
	    "{\"log\":{\"payload\":\"aGVs====\"}}", "bad base64" },
	{ "base64 line break makes padding wrong",
	    "{\"log\":{\"payload\":\"aGVs\\nbG8=\"}}", "bad base64" },
	{ "base64 padding in an odd length", "{\"log\":{\"payload\":\"aG=\"}}",
	    "bad base64" },
	{ "base64 early padding", "{\"log\":{\"payload\":\"a===\"}}",
	    "bad base64" },
	{ "base64 data after padding", "{\"log\":{\"payload\":\"aA==aGVs\"}}",
	    "bad base64" },
	{ "base64 space", "{\"log\":{\"payload\":\"aG Vs\"}}", "bad base64" },
	{ "payload a number", "{\"log\":{\"payload\":1}}",
	    "want a base64 string" },
	{ "type unknown name", "{\"log\":{\"type\":\"INFO\"}}",
	    "want OUT or ERR" },
	{ "type lowercase", "{\"log\":{\"type\":\"out\"}}", "want OUT or ERR" },
	{ "type as a numeric string", "{\"log\":{\"type\":\"1\"}}",
	    "want OUT or ERR" },
	{ "type past int32", "{\"log\":{\"type\":2147483648}}",
	    "out of range" },
	{ "type fraction", "{\"log\":{\"type\":0.5}}", "not a whole number" },
	{ "type bool", "{\"log\":{\"type\":false}}", "want OUT, ERR" },
	{ "batch not an array", "{\"batch\":{}}", "want an array" },
	{ "batch and more", "{\"batch\":[],\"timestamp\":\"1\"}",
	    "unknown field" },
	{ "batch item not an object", "{\"batch\":[{},1]}",
	    "batch[1]: want an object" },
	{ "a bad envelope in a batch", "{\"batch\":[{},{\"x\":1}]}",
	    "unknown field \"x\" in envelope" },
	{ "an error names its place",
	    "{\"batch\":[{},{\"gauge\":{\"metrics\":{\"cpu\":"
	    "{\"value\":\"x\"}}}}]}",
	    "batch[1].gauge.metrics[\"cpu\"].value: not a number" },
	{ "a newline in a key stays out of the reason",
	    "{\"tags\":{\"a\\nb\":1}}", "tags[\"a?b\"]: want a string" },
	{ "deep nesting", "{\"tags\":{\"a\":[[[[[[[[[[[[]]]]]]]]]]]]}}",
	    "want a string" },
};

static void
test_rejects(void)
{
	static const char good[] = "{\"batch\":[{\"timestamp\":\"17\","
	    "\"source_id\":\"x\",\"instance_id\":\"\",\"deprecated_tags\":"
	    "{\"d\":{\"decimal\":1e-7}},\"tags\":{\"k\":\"v\"},\"log\":"
	    "{\"payload\":\"aGk=\",\"type\":\"ERR\"}}]}";
	Loggregator__V2__Envelope **d, *sentinel[1];
	struct arena small;
	char err[256], tiny[8], in[512];
	size_t i, n, k, len;
	int rc, fails;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		arena_reset(&arena);
		memset(err, 'X', sizeof(err));
		d = sentinel;
		n = 77;
		rc = decode(bad[i].in, strlen(bad[i].in), &d, &n, err,
		    sizeof(err));
		if (!ok(rc == -1 && errno == EINVAL && n == 77 &&
		    d == sentinel && strchr(err, '\n') == NULL &&
		    strstr(err, bad[i].reason) != NULL,
		    "refused: %s", bad[i].name))
			note("reason: %s", err);
	}

	/* Every proper prefix of a good text is refused, cleanly. */
	len = strlen(good);
	for (fails = 0, k = 0; k < len; k++) {
		arena_reset(&arena);
		if (decode(good, k, &d, &n, err, sizeof(err)) != -1)
			fails++;
	}
	arena_reset(&arena);
	ok(fails == 0 && decode(good, len, &d, &n, err, sizeof(err)) == 0 &&
	    n == 1, "every proper prefix is refused, the whole accepted");

	/* A reason longer than err is cut, and still terminated. */
	arena_reset(&arena);
	ok(decode("{\"nope\":1}", 10, &d, &n, tiny, sizeof(tiny)) == -1 &&
	    strlen(tiny) == sizeof(tiny) - 1, "reason cut to errlen");
	ok(decode("{\"nope\":1}", 10, &d, &n, NULL, 0) == -1 &&
	    errno == EINVAL, "errlen 0 is fine");

	/* The arena's ceiling bounds what a text may take. */
	arena_init(&small, 256, 4096);
	len = (size_t)snprintf(in, sizeof(in), "{\"batch\":[");
	for (k = 0; k < 100; k++)
		len += (size_t)snprintf(in + len, sizeof(in) - len, "%s{}",
		    k ? "," : "");
	len += (size_t)snprintf(in + len, sizeof(in) - len, "]}");
	rc = json_decode(guarded(in, len), len, &small, &d, &n, err,
	    sizeof(err));
	if (!ok(rc == -1 && errno == ENOMEM &&
	    strstr(err, "out of memory") != NULL,
	    "past the arena's ceiling: ENOMEM"))
		note("%s", err);
	arena_release(&small);
}

int
main(void)
{
	guard_init();
	if (arena_init(&arena, 64 * 1024, ARENA_MAX) == -1 ||
	    arena_init(&scratch, 64 * 1024, ARENA_MAX) == -1 ||
	    buf_init(&out, 1024, 1 << 20) == -1) {
		perror("init");
		return 1;
	}
	test_golden_gateway();
	test_golden_roundtrips();
	test_handbuilt();
	test_strings();
	test_accepts();
	test_rejects();
	arena_release(&arena);
	arena_release(&scratch);
	buf_release(&out);
	return tap_done();
}
