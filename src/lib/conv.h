/* conv: v1 (dropsonde, package events) <-> v2 (loggregator.v2) envelope
 * conversion, field for field as go-loggregator's conversion.ToV2/ToV1 do.
 *
 * Ownership. Every struct, array and string conv builds lives in the arena
 * passed in; nothing is freed one by one. Outputs also *borrow* strings
 * and bytes from their input (payloads, tag values, names), as the Go code
 * shares pointers: keep the input alive, and unchanged, while an output is
 * in use. Decoding the input into the same arena makes that automatic.
 *
 * What protobuf-c 1.4 does with untrusted bytes (checked against the
 * library; Go's google.golang.org/protobuf v1.28.1 for comparison):
 *  - unpack enforces proto2 required fields: a message lacking one is
 *    refused, as Go's strict Unmarshal refuses it.
 *  - unpack accepts enum values the .proto does not declare and stores the
 *    number, as Go's open proto2 enums do (eventType 42, method 0).
 *  - unpack refuses a known field sent with the wrong wire type, and any
 *    group (wire types 3 and 4); Go keeps both as unknown fields and goes
 *    on. The other way round, a 10-byte varint whose last byte is above 1
 *    overflows for Go, which refuses it, while protobuf-c drops the extra
 *    bits. No real emitter writes any of these.
 *  - no UTF-8 check on proto3 strings. Go refuses to decode or encode a
 *    v2 envelope whose strings are not UTF-8, and v1 (proto2) strings can
 *    carry such bytes into ToV2's output; conv copies them as they are.
 *  - strings are NUL-terminated, so a string holding a NUL byte is cut
 *    there (bytes fields keep their length). Go keeps the whole string.
 *  - a field that is present but empty comes back with data == NULL for
 *    bytes; map entries keep duplicates in wire order and a missing map
 *    value message is NULL (Go keeps the last duplicate and makes an empty
 *    message). conv reads maps the Go way: last key wins, NULL is empty.
 *  - a oneof message member sent twice keeps only the last copy; Go
 *    merges the two.
 *  - pack writes an empty value for a required string or message that is
 *    NULL instead of failing, so call conv_v1_complete before packing a v1
 *    envelope, as doppler's strict marshal would refuse it.
 */
#ifndef LGR_CONV_H
#define LGR_CONV_H

#include <stddef.h>

#include "arena.h"
#include "events/dropsonde.pb-c.h"
#include "v2/envelope.pb-c.h"

/* v1 -> v2 as conversion.ToV2(v1, preferred_tags) does: tags go to tags
 * when preferred_tags is set (doppler and the agent always set it), else to
 * deprecated_tags as text values. *out is built in a and borrows from v1.
 *
 * Returns 0, or -1 with errno:
 *  EINVAL  v1 lacks a proto2 required field (origin, or one inside a body
 *          that is present). Go's strict Unmarshal refuses such bytes, so
 *          doppler never converts them; golden set A has no output for
 *          them. Every complete envelope converts, as in Go: an undeclared
 *          eventType gives an envelope with no message, and a body that
 *          does not match eventType converts from default values.
 *  ENOMEM  the arena is full.
 * LogMessage.message is taken as present here whatever its data pointer,
 * since a decoded envelope always has it. */
int conv_v1_to_v2(const Events__Envelope *v1, int preferred_tags,
    struct arena *a, Loggregator__V2__Envelope **out);

/* Settings of the agent's udp-forwarder; NULL counts as "". */
struct conv_agent {
	const char *deployment;
	const char *job;
	const char *index;
	const char *ip;
};

/* The udp-forwarder path: EventUnmarshaller, Tagger, then ToV2(e, true).
 * The source_id tag defaults to origin when it is missing or empty; the
 * agent's deployment/job/index/ip fill those fields only when they are
 * absent (NULL; "" is kept). v1 itself is not changed.
 *
 * Returns 0, or -1 with errno EINVAL when v1 is incomplete (as for
 * conv_v1_to_v2) or its body does not match eventType (the forwarder drops
 * it as "Invalid Envelope", undeclared types included), ENOMEM when the
 * arena is full. */
int conv_v1_agent_to_v2(const Events__Envelope *v1,
    const struct conv_agent *ag, struct arena *a,
    Loggregator__V2__Envelope **out);

/* v2 -> v1 as conversion.ToV1 does. *out gets *n envelopes: 0 for an
 * event, an envelope with no message, or a gauge with no metrics; one per
 * metric for a gauge that is not a container metric (sorted by name, where
 * Go's order is random); otherwise 1. The array and the envelopes are built
 * in a and borrow from v2. Outputs may lack a required field exactly where
 * Go's do (see conv_v1_complete): do not pack those.
 *
 * An Error's message is a C string, so a NUL in the payload ends it.
 *
 * Returns 0, or -1 with errno ENOMEM when the arena is full (*n is then 0). */
int conv_v2_to_v1(const Loggregator__V2__Envelope *v2, struct arena *a,
    Events__Envelope ***out, size_t *n);

/* 1 when every proto2 required field of v1 is set, recursively through
 * the bodies present, so Go's strict proto.Marshal would succeed; else 0.
 * Doppler drops v1 envelopes that fail this. Two ToV1 outputs fail it: an
 * HttpStartStop whose request_id tag is not a UUID (requestId NULL), and a
 * LogMessage from an empty v2 payload. protobuf-c has no presence flag for
 * the required bytes LogMessage.message, so lgr takes message.data == NULL
 * as unset (Go's nil slice); conv_v1_unpack points a present but empty
 * field at a static empty buffer so it counts as set. */
int conv_v1_complete(const Events__Envelope *v1);

/* Decode len bytes at p as a v1 envelope, strictly: a missing required
 * field fails, as in Go. The envelope lives in a (never free_unpacked).
 * NULL with errno EBADMSG for bytes that do not decode, ENOMEM when the
 * arena is full. */
Events__Envelope *conv_v1_unpack(struct arena *a, const void *p, size_t len);

/* The reverse log proxy's tag convergence, in place: with preferred, every
 * deprecated tag is copied into tags (text as is, an integer in decimal,
 * a decimal as Go's %v writes it; a key already in tags takes the
 * deprecated value, as a Go map assignment does; a Value with nothing set
 * is dropped) and deprecated_tags is emptied; without it, every tag moves to deprecated_tags as text. New
 * arrays and strings come from a. 0, or -1 with errno ENOMEM. */
int conv_converge_tags(Loggregator__V2__Envelope *e, int preferred,
    struct arena *a);

#endif
