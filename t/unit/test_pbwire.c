/* test_pbwire: the wire-format peeks and the tag appender against
 * envelopes built with protobuf-c (every kind, with and without tags and
 * deprecated tags, keys given twice), what envelope_add_tags writes
 * decoded back with protobuf-c, batches, and a table of malformed inputs,
 * each ending flush against a PROT_NONE page so that a read one byte too
 * far faults at once. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arena.h"
#include "envelope.h"
#include "pbwire.h"
#include "tap.h"

#define BUFMAX 65536

static struct arena arena;
static uint8_t *guard_base;
static size_t guard_room;

static void
guard_init(void)
{
	long pg = sysconf(_SC_PAGESIZE);

	guard_room = 16 * (size_t)pg;
	guard_base = mmap(NULL, guard_room + (size_t)pg,
	    PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (guard_base == MAP_FAILED ||
	    mprotect(guard_base + guard_room, (size_t)pg, PROT_NONE) == -1) {
		perror("guard");
		exit(1);
	}
}

/* n bytes of s copied to end just before the guard page. */
static const uint8_t *
guarded(const void *s, size_t n)
{
	uint8_t *p;

	if (n > guard_room) {
		fprintf(stderr, "input too long for the guard area\n");
		exit(1);
	}
	p = guard_base + guard_room - n;
	if (n > 0)
		memmove(p, s, n);
	return p;
}

/* pack e at the guard page; *n is its length. */
static const uint8_t *
pack_guarded(const Loggregator__V2__Envelope *e, size_t *n)
{
	static uint8_t b[BUFMAX];

	*n = loggregator__v2__envelope__pack(e, b);
	return guarded(b, *n);
}

static int
is_str(int rc, const char *got, size_t n, const char *want)
{
	if (want == NULL)
		return rc == 0;
	return rc == 1 && n == strlen(want) && memcmp(got, want, n) == 0;
}

static int
peek_tag_is(const uint8_t *env, size_t len, const char *key, const char *want)
{
	const char *v = NULL;
	size_t vn = 0;
	int rc;

	rc = envelope_peek_tag(env, len, key, strlen(key), &v, &vn);
	if (!is_str(rc, v, vn, want)) {
		diag("peek_tag %s: rc %d, got '%.*s', want '%s'", key, rc,
		    rc == 1 ? (int)vn : 0, rc == 1 ? v : "",
		    want ? want : "(absent)");
		return 0;
	}
	return 1;
}

static int
source_id_is(const uint8_t *env, size_t len, const char *want)
{
	const char *s = NULL;
	size_t n = 0;
	int rc;

	rc = envelope_peek_source_id(env, len, &s, &n);
	return is_str(rc, s, n, want);
}

/* A map key e carries, in tags or deprecated_tags. */
static int
carries(const Loggregator__V2__Envelope *e, const char *key)
{
	size_t i;

	for (i = 0; i < e->n_tags; i++)
		if (strcmp(e->tags[i]->key, key) == 0)
			return 1;
	for (i = 0; i < e->n_deprecated_tags; i++)
		if (strcmp(e->deprecated_tags[i]->key, key) == 0)
			return 1;
	return 0;
}

/* out (what add_tags wrote for e and t) starts with e's own bytes and
 * decodes to e with exactly the missing tags appended to its tags, in
 * order: both pack to the same bytes. *added is how many. */
static int
adds_exactly(Loggregator__V2__Envelope *e, const uint8_t *env, size_t len,
    const struct pb_tag *t, size_t nt, const uint8_t *out, size_t outn,
    size_t *added)
{
	static uint8_t b1[BUFMAX], b2[BUFMAX];
	Loggregator__V2__Envelope want = *e, *d;
	Loggregator__V2__Envelope__TagsEntry **tp, *te;
	size_t i, j, n1, n2;
	int dup;

	*added = 0;
	if (outn < len || memcmp(out, env, len) != 0) {
		diag("output does not start with the envelope");
		return 0;
	}
	tp = arena_alloc(&arena, (e->n_tags + nt + 1) * sizeof(*tp));
	te = arena_alloc(&arena, (nt + 1) * sizeof(*te));
	if (tp == NULL || te == NULL)
		abort();
	for (i = 0; i < e->n_tags; i++)
		tp[i] = e->tags[i];
	want.tags = tp;
	for (i = 0; i < nt; i++) {
		dup = 0;
		for (j = 0; j < i; j++)
			if (strcmp(t[i].key, t[j].key) == 0)
				dup = 1;
		if (dup || carries(e, t[i].key))
			continue;
		loggregator__v2__envelope__tags_entry__init(&te[*added]);
		te[*added].key = (char *)t[i].key;
		te[*added].value = (char *)t[i].value;
		tp[want.n_tags++] = &te[*added];
		(*added)++;
	}
	d = envelope_unpack(&arena, out, outn);
	if (d == NULL) {
		diag("output does not decode");
		return 0;
	}
	n1 = loggregator__v2__envelope__pack(&want, b1);
	n2 = loggregator__v2__envelope__pack(d, b2);
	if (n1 != n2 || memcmp(b1, b2, n1) != 0) {
		diag("decoded output differs from the expected envelope");
		return 0;
	}
	return 1;
}

#define TAG(k, v) { k, sizeof(k) - 1, v, sizeof(v) - 1 }

/* What the agent adds to every envelope. */
static const struct pb_tag agent_tags[] = {
	TAG("deployment", "lgr"),
	TAG("job", "metron"),
	TAG("index", "0"),
	TAG("ip", "127.0.0.1"),
};
#define N_AGENT (sizeof(agent_tags) / sizeof(agent_tags[0]))

/* Fixtures: two tags, and two deprecated tags (an integer and a text). */
static Loggregator__V2__Envelope__TagsEntry tag_dep, tag_job;
static Loggregator__V2__Envelope__TagsEntry *some_tags[] = {
	&tag_dep, &tag_job };
static Loggregator__V2__Value val_int, val_text;
static Loggregator__V2__Envelope__DeprecatedTagsEntry dtag_index, dtag_ip;
static Loggregator__V2__Envelope__DeprecatedTagsEntry *some_dtags[] = {
	&dtag_index, &dtag_ip };

/* A message of every kind. */
static Loggregator__V2__Log fx_log;
static Loggregator__V2__Counter fx_counter;
static Loggregator__V2__Gauge fx_gauge;
static Loggregator__V2__GaugeValue fx_gauge_value;
static Loggregator__V2__Gauge__MetricsEntry fx_metric;
static Loggregator__V2__Gauge__MetricsEntry *fx_metrics[] = { &fx_metric };
static Loggregator__V2__Timer fx_timer;
static Loggregator__V2__Event fx_event;

static void
fixtures_init(void)
{
	loggregator__v2__envelope__tags_entry__init(&tag_dep);
	tag_dep.key = "deployment";
	tag_dep.value = "cf";
	loggregator__v2__envelope__tags_entry__init(&tag_job);
	tag_job.key = "job";
	tag_job.value = "router";
	loggregator__v2__value__init(&val_int);
	val_int.data_case = LOGGREGATOR__V2__VALUE__DATA_INTEGER;
	val_int.integer = 3;
	loggregator__v2__value__init(&val_text);
	val_text.data_case = LOGGREGATOR__V2__VALUE__DATA_TEXT;
	val_text.text = "10.0.0.5";
	loggregator__v2__envelope__deprecated_tags_entry__init(&dtag_index);
	dtag_index.key = "index";
	dtag_index.value = &val_int;
	loggregator__v2__envelope__deprecated_tags_entry__init(&dtag_ip);
	dtag_ip.key = "ip";
	dtag_ip.value = &val_text;

	loggregator__v2__log__init(&fx_log);
	fx_log.payload.data = (uint8_t *)"hello";
	fx_log.payload.len = 5;
	loggregator__v2__counter__init(&fx_counter);
	fx_counter.name = "requests";
	fx_counter.delta = 1;
	loggregator__v2__gauge_value__init(&fx_gauge_value);
	fx_gauge_value.unit = "bytes";
	fx_gauge_value.value = 12;
	loggregator__v2__gauge__metrics_entry__init(&fx_metric);
	fx_metric.key = "memory";
	fx_metric.value = &fx_gauge_value;
	loggregator__v2__gauge__init(&fx_gauge);
	fx_gauge.n_metrics = 1;
	fx_gauge.metrics = fx_metrics;
	loggregator__v2__timer__init(&fx_timer);
	fx_timer.name = "http";
	fx_timer.start = 1;
	fx_timer.stop = 2;
	loggregator__v2__event__init(&fx_event);
	fx_event.title = "t";
	fx_event.body = "b";
}

/* Make e carry a message of kind (a PB_ENV_ number, or 0 for none);
 * returns the kind's name. */
static const char *
set_kind(Loggregator__V2__Envelope *e, int kind)
{
	switch (kind) {
	case PB_ENV_LOG:
		e->message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_LOG;
		e->log = &fx_log;
		return "log";
	case PB_ENV_COUNTER:
		e->message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_COUNTER;
		e->counter = &fx_counter;
		return "counter";
	case PB_ENV_GAUGE:
		e->message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_GAUGE;
		e->gauge = &fx_gauge;
		return "gauge";
	case PB_ENV_TIMER:
		e->message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_TIMER;
		e->timer = &fx_timer;
		return "timer";
	case PB_ENV_EVENT:
		e->message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_EVENT;
		e->event = &fx_event;
		return "event";
	}
	e->message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE__NOT_SET;
	return "no message";
}

/* One envelope of a kind and a mix of tags (bit 0: tags, bit 1:
 * deprecated tags): the peeks, and add_tags. */
static void
check_kind(int kind, unsigned mix)
{
	static const char *const mixes[] = { "no tags", "tags",
	    "deprecated tags", "both" };
	static uint8_t out[BUFMAX];
	Loggregator__V2__Envelope e = LOGGREGATOR__V2__ENVELOPE__INIT;
	const char *name, *m = mixes[mix];
	const uint8_t *env;
	size_t len, added;
	ssize_t n;

	name = set_kind(&e, kind);
	e.timestamp = 1700000000000000000;
	/* proto3 leaves an empty source_id off the wire. */
	e.source_id = kind ? (char *)name : "";
	e.instance_id = "7";
	if (mix & 1) {
		e.n_tags = 2;
		e.tags = some_tags;
	}
	if (mix & 2) {
		e.n_deprecated_tags = 2;
		e.deprecated_tags = some_dtags;
	}
	env = pack_guarded(&e, &len);
	ok(source_id_is(env, len, kind ? name : NULL), "%s, %s: source_id",
	    name, m);
	ok(envelope_peek_kind(env, len) == kind, "%s, %s: kind is %d", name,
	    m, kind);
	ok(peek_tag_is(env, len, "deployment", mix & 1 ? "cf" : NULL) &&
	    peek_tag_is(env, len, "job", mix & 1 ? "router" : NULL),
	    "%s, %s: tags", name, m);
	ok(peek_tag_is(env, len, "ip", mix & 2 ? "10.0.0.5" : NULL) &&
	    peek_tag_is(env, len, "index", NULL) &&
	    peek_tag_is(env, len, "nope", NULL),
	    "%s, %s: deprecated text tag found, integer not", name, m);
	ok(pb_check(env, len) == 0, "%s, %s: pb_check", name, m);
	n = envelope_add_tags(env, len, agent_tags, N_AGENT, out, sizeof(out));
	ok(n > 0 && adds_exactly(&e, env, len, agent_tags, N_AGENT, out,
	    (size_t)n, &added) && added == (mix == 0 ? 4 : mix == 3 ? 0 : 2),
	    "%s, %s: add_tags adds exactly the missing tags", name, m);
	arena_reset(&arena);
}

static void
test_kinds(void)
{
	static const int kinds[] = { 0, PB_ENV_LOG, PB_ENV_COUNTER,
	    PB_ENV_GAUGE, PB_ENV_TIMER, PB_ENV_EVENT };
	size_t k;
	unsigned mix;

	for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
		for (mix = 0; mix < 4; mix++)
			check_kind(kinds[k], mix);
}

/* Fields and keys given more than once: the last wins, tags before
 * deprecated tags. */
static void
test_duplicates(void)
{
	static uint8_t b[BUFMAX];
	Loggregator__V2__Envelope e = LOGGREGATOR__V2__ENVELOPE__INIT;
	Loggregator__V2__Log log = LOGGREGATOR__V2__LOG__INIT;
	Loggregator__V2__Counter ctr = LOGGREGATOR__V2__COUNTER__INIT;
	Loggregator__V2__Envelope__TagsEntry t1 =
	    LOGGREGATOR__V2__ENVELOPE__TAGS_ENTRY__INIT;
	Loggregator__V2__Envelope__TagsEntry t2 =
	    LOGGREGATOR__V2__ENVELOPE__TAGS_ENTRY__INIT;
	Loggregator__V2__Envelope__TagsEntry *tp[] = { &t1, &t2 };
	Loggregator__V2__Value vt = LOGGREGATOR__V2__VALUE__INIT;
	Loggregator__V2__Value vi = LOGGREGATOR__V2__VALUE__INIT;
	Loggregator__V2__Value vd = LOGGREGATOR__V2__VALUE__INIT;
	Loggregator__V2__Envelope__DeprecatedTagsEntry d1 =
	    LOGGREGATOR__V2__ENVELOPE__DEPRECATED_TAGS_ENTRY__INIT;
	Loggregator__V2__Envelope__DeprecatedTagsEntry d2 =
	    LOGGREGATOR__V2__ENVELOPE__DEPRECATED_TAGS_ENTRY__INIT;
	Loggregator__V2__Envelope__DeprecatedTagsEntry *dp[] = { &d1, &d2 };
	const uint8_t *env;
	size_t len, n1;

	vt.data_case = LOGGREGATOR__V2__VALUE__DATA_TEXT;
	vt.text = "text";
	vi.data_case = LOGGREGATOR__V2__VALUE__DATA_INTEGER;
	vi.integer = 9;
	vd.data_case = LOGGREGATOR__V2__VALUE__DATA_DECIMAL;
	vd.decimal = 1.5;

	t1.key = t2.key = "job";
	t1.value = "first";
	t2.value = "second";
	e.n_tags = 2;
	e.tags = tp;
	env = pack_guarded(&e, &len);
	ok(peek_tag_is(env, len, "job", "second"),
	    "a key twice in tags: the last entry wins");

	t2.key = "zone";
	t2.value = "";
	d1.key = "job";
	d1.value = &vt;
	e.n_deprecated_tags = 1;
	e.deprecated_tags = dp;
	env = pack_guarded(&e, &len);
	ok(peek_tag_is(env, len, "job", "first"),
	    "a key in tags and deprecated tags: tags win");
	ok(peek_tag_is(env, len, "zone", ""),
	    "an empty tag value is found, empty");

	e.n_tags = 0;
	d2.key = "job";
	d2.value = &vi;
	e.n_deprecated_tags = 2;
	env = pack_guarded(&e, &len);
	ok(peek_tag_is(env, len, "job", NULL),
	    "deprecated text then integer: the integer wins, not text");
	d1.value = &vi;
	d2.value = &vt;
	env = pack_guarded(&e, &len);
	ok(peek_tag_is(env, len, "job", "text"),
	    "deprecated integer then text: the text wins");
	d2.value = &vd;
	env = pack_guarded(&e, &len);
	ok(peek_tag_is(env, len, "job", NULL),
	    "a deprecated decimal is not text");
	d2.value = NULL;
	env = pack_guarded(&e, &len);
	ok(peek_tag_is(env, len, "job", NULL),
	    "a deprecated entry without a value is not text");

	/* Two envelopes one after the other are one envelope, merged. */
	loggregator__v2__envelope__init(&e);
	e.source_id = "first";
	e.message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_LOG;
	e.log = &log;
	n1 = loggregator__v2__envelope__pack(&e, b);
	e.source_id = "second";
	e.message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_COUNTER;
	e.counter = &ctr;
	n1 += loggregator__v2__envelope__pack(&e, b + n1);
	env = guarded(b, n1);
	ok(source_id_is(env, n1, "second"), "source_id twice: the last wins");
	ok(envelope_peek_kind(env, n1) == PB_ENV_COUNTER,
	    "log then counter: the kind is counter");
	e.source_id = "";
	e.message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE__NOT_SET;
	n1 = loggregator__v2__envelope__pack(&e, b);
	env = guarded(b, n1);
	ok(n1 == 0 && source_id_is(env, n1, NULL) &&
	    envelope_peek_kind(env, n1) == 0 && peek_tag_is(env, n1, "", NULL),
	    "an empty envelope has nothing");
}

/* Map entries and Values written by hand, as no encoder writes them:
 * what envelope_peek_tag finds for key (NULL: absent). */
static const struct hand_case {
	const char *name;
	const char *in;
	size_t n;
	const char *key;
	const char *want;
} hand_cases[] = {
#define S(x) x, sizeof(x) - 1
	{ "entry with no value",
	    S("\x4a\x03\x0a\x01k"), "k", "" },
	{ "entry with no key matches the empty key",
	    S("\x4a\x03\x12\x01v"), "", "v" },
	{ "entry key given twice: the last",
	    S("\x4a\x09\x0a\x01x\x12\x01v\x0a\x01k"), "k", "v" },
	{ "entry value given twice: the last",
	    S("\x4a\x09\x0a\x01k\x12\x01v\x12\x01w"), "k", "w" },
	{ "entry with an unknown field",
	    S("\x4a\x08\x0a\x01k\x18\x05\x12\x01v"), "k", "v" },
	{ "key with a NUL byte",
	    S("\x4a\x07\x0a\x02k\0\x12\x01v"), "k", NULL },
	/* key "k", Value {text "a"}, then Value {integer 1} */
	{ "deprecated values merge: integer last",
	    S("\x1a\x0c\x0a\x01k\x12\x03\x0a\x01" "a\x12\x02\x10\x01"),
	    "k", NULL },
	{ "deprecated values merge: text last",
	    S("\x1a\x0c\x0a\x01k\x12\x02\x10\x01\x12\x03\x0a\x01" "a"),
	    "k", "a" },
	{ "deprecated values merge: an empty Value changes nothing",
	    S("\x1a\x0a\x0a\x01k\x12\x03\x0a\x01" "a\x12\x00"), "k", "a" },
	{ "deprecated Value with text and integer: the last",
	    S("\x1a\x0a\x0a\x01k\x12\x05\x0a\x01" "a\x10\x01"), "k", NULL },
	{ "deprecated Value with an unknown field",
	    S("\x1a\x0a\x0a\x01k\x12\x05\x0a\x01" "a\x20\x01"), "k", "a" },
	{ "unknown envelope fields are skipped",
	    S("\x58\x01\x62\x00\x4a\x06\x0a\x01k\x12\x01v\x6d\0\0\0\0"),
	    "k", "v" },
#undef S
};

static void
test_hand_written(void)
{
	const struct hand_case *c;
	const uint8_t *p;
	size_t i;

	for (i = 0; i < sizeof(hand_cases) / sizeof(hand_cases[0]); i++) {
		c = &hand_cases[i];
		p = guarded(c->in, c->n);
		ok(peek_tag_is(p, c->n, c->key, c->want), "peek_tag: %s",
		    c->name);
	}
}

static void
test_add_tags(void)
{
	static uint8_t out[BUFMAX], inplace[BUFMAX];
	static const struct pb_tag twice[] = {
		TAG("az", "z1"), TAG("job", "x"), TAG("az", "z2") };
	static char keys[100][8];
	static struct pb_tag many[100];
	Loggregator__V2__Envelope e = LOGGREGATOR__V2__ENVELOPE__INIT;
	Loggregator__V2__Envelope__TagsEntry t1 =
	    LOGGREGATOR__V2__ENVELOPE__TAGS_ENTRY__INIT;
	Loggregator__V2__Envelope__TagsEntry t2 =
	    LOGGREGATOR__V2__ENVELOPE__TAGS_ENTRY__INIT;
	Loggregator__V2__Envelope__TagsEntry *tp[] = { &t1, &t2 };
	Loggregator__V2__Envelope__DeprecatedTagsEntry d1 =
	    LOGGREGATOR__V2__ENVELOPE__DEPRECATED_TAGS_ENTRY__INIT;
	Loggregator__V2__Envelope__DeprecatedTagsEntry *dp[] = { &d1 };
	Loggregator__V2__Envelope *d;
	const uint8_t *env;
	size_t len, added, need, i;
	ssize_t n;

	e.source_id = "app";
	t1.key = "job";
	t1.value = "router";
	e.n_tags = 1;
	e.tags = tp;
	env = pack_guarded(&e, &len);
	n = envelope_add_tags(env, len, twice, 3, out, sizeof(out));
	ok(n > 0 && adds_exactly(&e, env, len, twice, 3, out, (size_t)n,
	    &added) && added == 1 && peek_tag_is(out, (size_t)n, "az", "z1"),
	    "a key given twice is added once, with its first value");

	n = envelope_add_tags(env, len, twice + 1, 1, out, sizeof(out));
	ok(n == (ssize_t)len && memcmp(out, env, len) == 0,
	    "nothing missing: the envelope is copied as it is");
	n = envelope_add_tags(env, len, NULL, 0, out, len);
	ok(n == (ssize_t)len && memcmp(out, env, len) == 0,
	    "no tags: the envelope is copied as it is");

	/* In place, in a buffer with room after the envelope. */
	memcpy(inplace, env, len);
	n = envelope_add_tags(inplace, len, agent_tags, N_AGENT, inplace,
	    sizeof(inplace));
	ok(n > 0 && adds_exactly(&e, env, len, agent_tags, N_AGENT, inplace,
	    (size_t)n, &added) && added == 3,
	    "dst may be env itself: tags are appended in place");

	/* Exactly the room needed, and one byte less. */
	n = envelope_add_tags(env, len, agent_tags, N_AGENT, out, sizeof(out));
	need = (size_t)n;
	errno = 0;
	ok(envelope_add_tags(env, len, agent_tags, N_AGENT, out, need - 1) ==
	    -1 && errno == EMSGSIZE, "one byte short: -1 EMSGSIZE");
	ok(envelope_add_tags(env, len, agent_tags, N_AGENT, out, need) ==
	    (ssize_t)need, "exactly enough room");
	errno = 0;
	ok(envelope_add_tags(env, len, NULL, 0, out, len - 1) == -1 &&
	    errno == EMSGSIZE, "room for less than the envelope: EMSGSIZE");
	errno = 0;
	ok(envelope_add_tags(env, len, agent_tags, N_AGENT, out, 0) == -1 &&
	    errno == EMSGSIZE, "no room at all: EMSGSIZE");
	errno = 0;
	ok(envelope_add_tags(guarded("\x12\x05" "ab", 4), 4, agent_tags,
	    N_AGENT, out, sizeof(out)) == -1 && errno == EBADMSG,
	    "a malformed envelope: -1 EBADMSG");
	errno = 0;
	ok(envelope_add_tags(guarded("\x12\x05" "ab", 4), 4, agent_tags,
	    N_AGENT, out, 0) == -1 && errno == EBADMSG,
	    "malformed and no room: EBADMSG comes first");

	/* An empty envelope gets just the tags. */
	n = envelope_add_tags(guarded("", 0), 0, agent_tags, N_AGENT, out,
	    sizeof(out));
	d = n > 0 ? envelope_unpack(&arena, out, (size_t)n) : NULL;
	ok(d != NULL && d->n_tags == 4 && strcmp(d->tags[3]->key, "ip") == 0 &&
	    strcmp(d->tags[3]->value, "127.0.0.1") == 0,
	    "an empty envelope gets every tag");

	/* An empty key and an empty value are tags like any other. */
	{
		static const struct pb_tag empty[] = { TAG("", ""),
		    TAG("e", "") };

		env = pack_guarded(&e, &len);
		n = envelope_add_tags(env, len, empty, 2, out, sizeof(out));
		ok(n > 0 && adds_exactly(&e, env, len, empty, 2, out,
		    (size_t)n, &added) && added == 2 &&
		    peek_tag_is(out, (size_t)n, "", "") &&
		    peek_tag_is(out, (size_t)n, "e", ""),
		    "an empty key and an empty value are added");
	}

	/* More tags than one scan looks for: carried ones in either map,
	 * in both halves, are left out. */
	for (i = 0; i < 100; i++) {
		snprintf(keys[i], sizeof(keys[i]), "k%zu", i);
		many[i].key = keys[i];
		many[i].klen = strlen(keys[i]);
		many[i].value = keys[i];
		many[i].vlen = many[i].klen;
	}
	t1.key = "k3";
	t2.key = "k70";
	t2.value = "seventy";
	e.n_tags = 2;
	d1.key = "k65";
	d1.value = &val_int;
	e.n_deprecated_tags = 1;
	e.deprecated_tags = dp;
	env = pack_guarded(&e, &len);
	n = envelope_add_tags(env, len, many, 100, out, sizeof(out));
	ok(n > 0 && adds_exactly(&e, env, len, many, 100, out, (size_t)n,
	    &added) && added == 97 && peek_tag_is(out, (size_t)n, "k70",
	    "seventy") && peek_tag_is(out, (size_t)n, "k99", "k99"),
	    "100 tags: the 97 not carried are added");
	arena_reset(&arena);
}

static void
test_next(void)
{
	/* 1: varint 150; 2: fixed64; 3: "hi"; 4: fixed32; 5: UINT64_MAX in
	 * 10 bytes; field 2^29-1, varint 0. */
	static const uint8_t msg[] = {
		0x08, 0x96, 0x01,
		0x11, 1, 2, 3, 4, 5, 6, 7, 8,
		0x1a, 0x02, 'h', 'i',
		0x25, 0xff, 0, 0, 0x80,
		0x28, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0x01,
		0xf8, 0xff, 0xff, 0xff, 0x0f, 0x00,
	};
	static const uint64_t vals[] = { 0, 1, 127, 128, 300, 16383, 16384,
	    UINT32_MAX, (uint64_t)1 << 63, UINT64_MAX };
	const uint8_t *p = guarded(msg, sizeof(msg)), *end = p + sizeof(msg);
	const uint8_t *q;
	struct pb_field f;
	uint8_t b[PB_VARINT_MAX + 1];
	size_t i, n;
	int good = 1;

	ok(pb_next(&p, end, &f) == 1 && f.num == 1 && f.wire == 0 &&
	    f.varint == 150 && f.len == 2 && f.data[0] == 0x96,
	    "pb_next: a varint");
	ok(pb_next(&p, end, &f) == 1 && f.num == 2 && f.wire == 1 &&
	    f.varint == 0x0807060504030201 && f.len == 8 && f.data[0] == 1,
	    "pb_next: a fixed64, little-endian");
	ok(pb_next(&p, end, &f) == 1 && f.num == 3 && f.wire == 2 &&
	    f.varint == 2 && f.len == 2 && memcmp(f.data, "hi", 2) == 0,
	    "pb_next: a length-delimited field");
	ok(pb_next(&p, end, &f) == 1 && f.num == 4 && f.wire == 5 &&
	    f.varint == 0x800000ff && f.len == 4, "pb_next: a fixed32");
	ok(pb_next(&p, end, &f) == 1 && f.num == 5 && f.varint == UINT64_MAX &&
	    f.len == 10, "pb_next: a 10-byte varint");
	ok(pb_next(&p, end, &f) == 1 && f.num == PB_FIELD_MAX &&
	    f.varint == 0, "pb_next: the highest field number");
	q = p;
	ok(pb_next(&p, end, &f) == 0 && p == q && p == end, "pb_next: end");

	for (i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		b[0] = 0x08;
		n = pb_put_varint(b + 1, vals[i]);
		p = guarded(b, n + 1);
		if (n != pb_varint_size(vals[i]) ||
		    pb_next(&p, p + n + 1, &f) != 1 || f.varint != vals[i])
			good = 0;
	}
	ok(good, "pb_put_varint and pb_varint_size agree with pb_next");
}

static void
test_batch(void)
{
	static uint8_t b[BUFMAX], built[BUFMAX];
	Loggregator__V2__EnvelopeBatch batch =
	    LOGGREGATOR__V2__ENVELOPE_BATCH__INIT;
	Loggregator__V2__EnvelopeBatch *db;
	Loggregator__V2__Envelope e[3], *ep[3];
	static const char *const ids[] = { "a", "bb", "" };
	const uint8_t *p, *end, *env;
	uint8_t one[64];
	size_t i, n, len, pos;
	int rc, good = 1;
	ssize_t w;

	for (i = 0; i < 3; i++) {
		loggregator__v2__envelope__init(&e[i]);
		e[i].source_id = (char *)ids[i];
		e[i].timestamp = (int64_t)i;
		ep[i] = &e[i];
	}
	batch.n_batch = 3;
	batch.batch = ep;
	/* An unknown field before the envelopes is skipped. */
	b[0] = 0x10;
	b[1] = 0x07;
	n = 2 + loggregator__v2__envelope_batch__pack(&batch, b + 2);
	p = guarded(b, n);
	end = p + n;
	for (i = 0; (rc = pb_batch_next(&p, end, &env, &len)) == 1; i++) {
		if (i >= 3 ||
		    len != loggregator__v2__envelope__pack(&e[i], one) ||
		    memcmp(env, one, len) != 0)
			good = 0;
	}
	ok(rc == 0 && i == 3 && good && p == end,
	    "pb_batch_next hands out every envelope, skipping other fields");
	p = guarded("", 0);
	ok(pb_batch_next(&p, p, &env, &len) == 0, "an empty batch");
	p = guarded("\x08\x01", 2);
	end = p + 2;
	errno = 0;
	ok(pb_batch_next(&p, end, &env, &len) == -1 && errno == EBADMSG &&
	    p == end - 2, "a field 1 that is a varint: EBADMSG");
	p = guarded("\x0a\x00\x0a\x05" "ab", 6);
	end = p + 6;
	ok(pb_batch_next(&p, end, &env, &len) == 1 && len == 0 &&
	    pb_batch_next(&p, end, &env, &len) == -1 && p == end - 4,
	    "a truncated batch: one envelope, then EBADMSG at the bad one");

	/* Built with pb_batch_put, decoded by protobuf-c. */
	pos = 0;
	for (i = 0; i < 3; i++) {
		len = loggregator__v2__envelope__pack(&e[i], one);
		w = pb_batch_put(built + pos, sizeof(built) - pos, one, len);
		if (w < 0)
			good = 0;
		else
			pos += (size_t)w;
	}
	db = loggregator__v2__envelope_batch__unpack(&arena.pb, pos, built);
	ok(good && db != NULL && db->n_batch == 3 &&
	    strcmp(db->batch[1]->source_id, "bb") == 0 &&
	    db->batch[2]->timestamp == 2,
	    "pb_batch_put builds a batch protobuf-c decodes");
	len = loggregator__v2__envelope__pack(&e[1], one);
	errno = 0;
	ok(pb_batch_put(built, len + 1, one, len) == -1 && errno == EMSGSIZE &&
	    pb_batch_put(built, len + 2, one, len) == (ssize_t)len + 2,
	    "pb_batch_put: EMSGSIZE one byte short");
	arena_reset(&arena);
}

/* Malformed and odd inputs: what each function must say. chk is
 * pb_check's result; kind is envelope_peek_kind's (-1 malformed); tag is
 * envelope_peek_tag's for key "k"; add is whether envelope_add_tags
 * fails (it reads map entries down to the key, never a Value). */
static const struct bad_case {
	const char *name;
	const char *in;
	size_t n;
	int chk, kind, tag, add;
} bad_cases[] = {
#define S(x) x, sizeof(x) - 1
	{ "empty",
	    S(""), 0, 0, 0, 0 },
	{ "a lone continuation byte",
	    S("\x80"), -1, -1, -1, -1 },
	{ "a tag with no value",
	    S("\x08"), -1, -1, -1, -1 },
	{ "a truncated varint value",
	    S("\x08\x80"), -1, -1, -1, -1 },
	{ "a truncated tag after a good field",
	    S("\x08\x01\xff"), -1, -1, -1, -1 },
	{ "an 11-byte varint",
	    S("\x08\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01"),
	    -1, -1, -1, -1 },
	{ "a 10-byte varint past 64 bits",
	    S("\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02"),
	    -1, -1, -1, -1 },
	{ "a 10-byte varint at 64 bits",
	    S("\x08\xff\xff\xff\xff\xff\xff" "\xff\xff\xff\x01"), 0, 0, 0, 0 },
	{ "a non-minimal 10-byte varint of 0",
	    S("\x08\x80\x80\x80\x80\x80" "\x80\x80\x80\x80\x00"), 0, 0, 0, 0 },
	{ "a non-minimal tag",
	    S("\x88\x80\x80\x80\x80\x80\x80\x80\x80\x00" "\x05"), 0, 0, 0, 0 },
	{ "a length past the end",
	    S("\x12\x05" "abc"), -1, -1, -1, -1 },
	{ "a length one past the end",
	    S("\x12\x04" "abc"), -1, -1, -1, -1 },
	{ "a length of 2^64-1",
	    S("\x12\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"),
	    -1, -1, -1, -1 },
	{ "a truncated length",
	    S("\x12\x80"), -1, -1, -1, -1 },
	{ "field number 0",
	    S("\x00\x00"), -1, -1, -1, -1 },
	{ "field number 0, non-minimal",
	    S("\x80\x00\x00"), -1, -1, -1, -1 },
	{ "field number 2^29",
	    S("\x80\x80\x80\x80\x10\x00"), -1, -1, -1, -1 },
	{ "a tag past 32 bits",
	    S("\x88\x80\x80\x80\x80\x01\x00"), -1, -1, -1, -1 },
	{ "field number 2^29-1",
	    S("\xf8\xff\xff\xff\x0f\x00"), 0, 0, 0, 0 },
	{ "wire type 3 (start group)",
	    S("\x0b\x0c"), -1, -1, -1, -1 },
	{ "wire type 4 (end group)",
	    S("\x0c"), -1, -1, -1, -1 },
	{ "wire type 6",
	    S("\x0e\x00"), -1, -1, -1, -1 },
	{ "wire type 7",
	    S("\x0f\x00"), -1, -1, -1, -1 },
	{ "a truncated fixed64",
	    S("\x59\x01\x02\x03\x04\x05\x06\x07"), -1, -1, -1, -1 },
	{ "a truncated fixed32",
	    S("\x5d\x01\x02\x03"), -1, -1, -1, -1 },
	{ "unknown fields of every wire type",
	    S("\x58\x01\x61\0\0\0\0\0\0\0\0\x6a\x01z\x75\0\0\0\0"),
	    0, 0, 0, 0 },
	{ "timestamp length-delimited",
	    S("\x0a\x00"), 0, -1, -1, -1 },
	{ "source_id as a varint",
	    S("\x10\x01"), 0, -1, -1, -1 },
	{ "source_id as a fixed32",
	    S("\x15\0\0\0\0"), 0, -1, -1, -1 },
	{ "log as a varint",
	    S("\x20\x01"), 0, -1, -1, -1 },
	{ "event as a fixed64",
	    S("\x51\0\0\0\0\0\0\0\0"), 0, -1, -1, -1 },
	{ "tags as a varint",
	    S("\x48\x01"), 0, -1, -1, -1 },
	{ "a counter inside out (not looked at)",
	    S("\x2a\x02\xff\xff"), 0, 5, 0, 0 },
	{ "a tags entry truncated inside",
	    S("\x4a\x02\x0a\x05"), 0, 0, -1, -1 },
	{ "a tags entry key as a varint",
	    S("\x4a\x02\x08\x01"), 0, 0, -1, -1 },
	{ "a tags entry value as a fixed32",
	    S("\x4a\x08\x0a\x01k\x15\0\0\0" "\0"), 0, 0, -1, -1 },
	{ "a tags entry with a group",
	    S("\x4a\x04\x0a\x01k\x0b"), 0, 0, -1, -1 },
	{ "a deprecated entry truncated inside",
	    S("\x1a\x03\x0a\x05k"), 0, 0, -1, -1 },
	{ "a deprecated Value with text as a varint",
	    S("\x1a\x07\x0a\x01k\x12\x02\x08\x01"), 0, 0, -1, 0 },
	{ "a deprecated Value with integer as text",
	    S("\x1a\x08\x0a\x01k\x12\x03\x12\x01" "a"), 0, 0, -1, 0 },
	{ "a deprecated Value with decimal as a varint",
	    S("\x1a\x07\x0a\x01k\x12\x02\x18\x01"), 0, 0, -1, 0 },
	{ "a deprecated Value truncated inside",
	    S("\x1a\x07\x0a\x01k\x12\x02\x0a\x05"), 0, 0, -1, 0 },
	{ "a good field, then a bad one",
	    S("\x12\x01" "a\x08"), -1, -1, -1, -1 },
#undef S
};

static void
test_malformed(void)
{
	static uint8_t out[BUFMAX];
	const struct bad_case *c;
	const uint8_t *p, *end, *env;
	const char *s;
	size_t i, n, len;
	ssize_t w;
	int rc, chk, kind, tag, src, batch;

	for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		c = &bad_cases[i];
		p = guarded(c->in, c->n);
		errno = 0;
		chk = pb_check(p, c->n);
		if (chk == -1 && errno != EBADMSG)
			chk = -2;
		errno = 0;
		kind = envelope_peek_kind(p, c->n);
		if (kind == -1 && errno != EBADMSG)
			kind = -2;
		src = envelope_peek_source_id(p, c->n, &s, &n);
		errno = 0;
		tag = envelope_peek_tag(p, c->n, "k", 1, &s, &n);
		if (tag == -1 && errno != EBADMSG)
			tag = -2;
		errno = 0;
		w = envelope_add_tags(p, c->n, agent_tags, N_AGENT, out,
		    sizeof(out));
		end = p + c->n;
		while ((batch = pb_batch_next(&p, end, &env, &len)) == 1)
			;
		rc = chk == c->chk && kind == c->kind && tag == c->tag &&
		    (src == -1) == (c->kind == -1) &&
		    (w == -1) == (c->add == -1) &&
		    (w != -1 || errno == EBADMSG) &&
		    (chk == -1 ? batch == -1 : 1);
		if (!ok(rc, "malformed: %s", c->name))
			diag("pb_check %d (want %d), kind %d (want %d), "
			    "tag %d (want %d), source_id %d, add_tags %zd, "
			    "batch %d", chk, c->chk, kind, c->kind, tag, c->tag,
			    src, w, batch);
	}
}

/* Every prefix of a rich envelope, flush against the guard page: any
 * answer will do, as long as nothing reads past the end. */
static void
test_prefixes(void)
{
	static uint8_t b[BUFMAX], out[BUFMAX];
	Loggregator__V2__Envelope e = LOGGREGATOR__V2__ENVELOPE__INIT;
	Loggregator__V2__Log log = LOGGREGATOR__V2__LOG__INIT;
	const uint8_t *p, *q, *env;
	const char *s;
	size_t n, i, len, sn;

	e.timestamp = -1;
	e.source_id = "source";
	e.instance_id = "instance";
	e.n_tags = 2;
	e.tags = some_tags;
	e.n_deprecated_tags = 2;
	e.deprecated_tags = some_dtags;
	e.message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_LOG;
	log.payload.data = (uint8_t *)"payload";
	log.payload.len = 7;
	e.log = &log;
	n = loggregator__v2__envelope__pack(&e, b);
	for (i = 0; i <= n; i++) {
		p = guarded(b, i);
		(void)pb_check(p, i);
		(void)envelope_peek_source_id(p, i, &s, &sn);
		(void)envelope_peek_kind(p, i);
		(void)envelope_peek_tag(p, i, "ip", 2, &s, &sn);
		(void)envelope_add_tags(p, i, agent_tags, N_AGENT, out,
		    sizeof(out));
		q = p;
		while (pb_batch_next(&q, p + i, &env, &len) == 1)
			;
	}
	ok(1, "every prefix of a %zu-byte envelope is read safely",
	    n);
}

int
main(void)
{
	guard_init();
	fixtures_init();
	if (arena_init(&arena, 64 * 1024, 16 << 20) == -1)
		abort();
	test_next();
	test_kinds();
	test_duplicates();
	test_hand_written();
	test_add_tags();
	test_batch();
	test_malformed();
	test_prefixes();
	arena_release(&arena);
	return tap_done();
}
