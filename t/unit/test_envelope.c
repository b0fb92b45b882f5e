/* test_envelope: the v2 codec round trip for every envelope kind, the
 * checked decoder's refusals, and -0 kept through packing. */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "arena.h"
#include "envelope.h"
#include "log.h"
#include "tap.h"

static Loggregator__V2__Envelope__TagsEntry tag_a = {
	PROTOBUF_C_MESSAGE_INIT(&loggregator__v2__envelope__tags_entry__descriptor),
	"deployment", "cf" };
static Loggregator__V2__Envelope__TagsEntry *tags[] = { &tag_a };
static Loggregator__V2__Value val_i = {
	PROTOBUF_C_MESSAGE_INIT(&loggregator__v2__value__descriptor),
	LOGGREGATOR__V2__VALUE__DATA_INTEGER, { .integer = -42 } };
static Loggregator__V2__Envelope__DeprecatedTagsEntry dtag = {
	PROTOBUF_C_MESSAGE_INIT(&loggregator__v2__envelope__deprecated_tags_entry__descriptor),
	"index", &val_i };
static Loggregator__V2__Envelope__DeprecatedTagsEntry *dtags[] = { &dtag };

/* Pack e, decode with envelope_unpack, pack again: same bytes. */
static void
round_trip(const char *name, Loggregator__V2__Envelope *e, struct arena *a)
{
	unsigned char b1[4096], b2[4096];
	Loggregator__V2__Envelope *d;
	size_t n1, n2;

	e->timestamp = 1700000000123456789;
	e->source_id = "app";
	e->instance_id = "3";
	e->n_tags = 1;
	e->tags = tags;
	e->n_deprecated_tags = 1;
	e->deprecated_tags = dtags;
	n1 = loggregator__v2__envelope__pack(e, b1);
	d = envelope_unpack(a, b1, n1);
	ok(d != NULL && d->message_case == e->message_case &&
	    d->timestamp == e->timestamp && strcmp(d->source_id, "app") == 0 &&
	    d->n_tags == 1 && d->n_deprecated_tags == 1 &&
	    d->deprecated_tags[0]->value->integer == -42,
	    "%s: decodes with every field", name);
	if (d == NULL)
		return;
	n2 = loggregator__v2__envelope__pack(d, b2);
	ok(n1 == n2 && memcmp(b1, b2, n1) == 0, "%s: packs to the same %zu bytes",
	    name, n1);
}

int
main(void)
{
	Loggregator__V2__Envelope e = LOGGREGATOR__V2__ENVELOPE__INIT;
	Loggregator__V2__Log log = LOGGREGATOR__V2__LOG__INIT;
	Loggregator__V2__Counter ctr = LOGGREGATOR__V2__COUNTER__INIT;
	Loggregator__V2__Gauge g = LOGGREGATOR__V2__GAUGE__INIT;
	Loggregator__V2__GaugeValue gv = LOGGREGATOR__V2__GAUGE_VALUE__INIT;
	Loggregator__V2__Gauge__MetricsEntry me =
	    LOGGREGATOR__V2__GAUGE__METRICS_ENTRY__INIT;
	Loggregator__V2__Gauge__MetricsEntry *mep[] = { &me };
	Loggregator__V2__Timer tm = LOGGREGATOR__V2__TIMER__INIT;
	Loggregator__V2__Event ev = LOGGREGATOR__V2__EVENT__INIT;
	/* 08 00: timestamp 0; 80 00 78: field 0 in a two-byte varint. */
	static const unsigned char field0[] = { 0x08, 0x00, 0x80, 0x00, 0x78 };
	static const unsigned char garbage[] = { 0xff, 0xff, 0xff };
	unsigned char b[256];
	struct arena a;
	Loggregator__V2__Envelope *d;
	size_t n;

	log_init("test_envelope");
	arena_init(&a, 4096, 1 << 20);

	log.payload.data = (uint8_t *)"hello";
	log.payload.len = 5;
	log.type = LOGGREGATOR__V2__LOG__TYPE__ERR;
	e.message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_LOG;
	e.log = &log;
	round_trip("log", &e, &a);

	ctr.name = "requests";
	ctr.delta = 1;
	ctr.total = UINT64_MAX;
	e.message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_COUNTER;
	e.counter = &ctr;
	round_trip("counter", &e, &a);

	gv.unit = "bytes";
	gv.value = 1.5e300;
	me.key = "memory";
	me.value = &gv;
	g.n_metrics = 1;
	g.metrics = mep;
	e.message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_GAUGE;
	e.gauge = &g;
	round_trip("gauge", &e, &a);

	tm.name = "http";
	tm.start = -5;
	tm.stop = INT64_MAX;
	e.message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_TIMER;
	e.timer = &tm;
	round_trip("timer", &e, &a);

	ev.title = "title";
	ev.body = "body";
	e.message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_EVENT;
	e.event = &ev;
	round_trip("event", &e, &a);

	e.message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE__NOT_SET;
	round_trip("no message", &e, &a);

	d = envelope_unpack(&a, b, 0);
	ok(d != NULL && d->message_case == 0, "zero bytes are an empty envelope");
	ok(envelope_unpack(&a, garbage, sizeof(garbage)) == NULL &&
	    errno == EBADMSG, "garbage is refused with EBADMSG");
	ok(envelope_unpack(&a, field0, sizeof(field0)) == NULL &&
	    errno == EBADMSG,
	    "a field number 0 that protobuf-c would keep is refused");

	/* -0 goes out with its sign, as Go writes it. */
	gv.value = -0.0;
	e.message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_GAUGE;
	e.gauge = &g;
	ok(envelope_keep_sign(&e, &a) == 0, "keep_sign on a -0 gauge");
	n = loggregator__v2__envelope__pack(&e, b);
	d = envelope_unpack(&a, b, n);
	ok(d != NULL && d->gauge->metrics[0]->value->value == 0 &&
	    signbit(d->gauge->metrics[0]->value->value),
	    "a gauge value of -0 decodes as -0 after packing");
	ok(memmem(b, n, "\x11\0\0\0\0\0\0\0\x80", 9) != NULL,
	    "it is on the wire as field 2, fixed64, sign bit set");
	arena_release(&a);
	return tap_done();
}
