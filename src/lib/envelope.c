/* envelope: checked decoding of v2 envelopes. */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "envelope.h"

static int
pb_field_sane(const ProtobufCFieldDescriptor *f, const void *member,
    size_t count)
{
	size_t i;

	if (f->type != PROTOBUF_C_TYPE_MESSAGE)
		return 1;
	if (f->label == PROTOBUF_C_LABEL_REPEATED) {
		ProtobufCMessage *const *v = *(ProtobufCMessage *const *const *)member;

		for (i = 0; i < count; i++)
			if (v[i] != NULL && !pb_message_sane(v[i]))
				return 0;
		return 1;
	}
	if (*(ProtobufCMessage *const *)member == NULL)
		return 1;
	return pb_message_sane(*(ProtobufCMessage *const *)member);
}

int
pb_message_sane(const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	const char *base = (const char *)m;
	unsigned i;

	for (i = 0; i < m->n_unknown_fields; i++)
		if (m->unknown_fields[i].tag == 0)
			return 0;
	for (i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		size_t count = 0;

		if (f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		/* A oneof member is only there when it is the case set. */
		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			if (*(const uint32_t *)(base + f->quantifier_offset) !=
			    f->id)
				continue;
		} else if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			count = *(const size_t *)(base + f->quantifier_offset);
		}
		if (!pb_field_sane(f, base + f->offset, count))
			return 0;
	}
	return 1;
}

Loggregator__V2__Envelope *
envelope_unpack(struct arena *a, const void *p, size_t len)
{
	Loggregator__V2__Envelope *e;

	e = loggregator__v2__envelope__unpack(&a->pb, len, p);
	if (e == NULL) {
		errno = a->failed ? ENOMEM : EBADMSG;
		return NULL;
	}
	if (!pb_message_sane(&e->base)) {
		errno = EBADMSG;
		return NULL;
	}
	return e;
}

int
envelope_keep_sign(Loggregator__V2__Envelope *e, struct arena *a)
{
	/* -0.0 as a little-endian double, the fixed64 wire form. */
	static uint8_t negzero[8] = { 0, 0, 0, 0, 0, 0, 0, 0x80 };
	size_t i;

	if (e->message_case != LOGGREGATOR__V2__ENVELOPE__MESSAGE_GAUGE ||
	    e->gauge == NULL)
		return 0;
	for (i = 0; i < e->gauge->n_metrics; i++) {
		Loggregator__V2__GaugeValue *v = e->gauge->metrics[i] ?
		    e->gauge->metrics[i]->value : NULL;
		ProtobufCMessageUnknownField *u;
		unsigned n;

		if (v == NULL || v->value != 0 || !signbit(v->value))
			continue;
		n = v->base.n_unknown_fields;
		u = arena_alloc(a, (n + 1) * sizeof(*u));
		if (u == NULL)
			return -1;
		if (n)
			memcpy(u, v->base.unknown_fields, n * sizeof(*u));
		u[n].tag = 2;	/* GaugeValue.value */
		u[n].wire_type = PROTOBUF_C_WIRE_TYPE_64BIT;
		u[n].len = sizeof(negzero);
		u[n].data = negzero;
		v->base.unknown_fields = u;
		v->base.n_unknown_fields = n + 1;
		v->value = 0;
	}
	return 0;
}
