/* envelope: decode loggregator.v2 envelopes from untrusted bytes.
 *
 * protobuf-c accepts some bytes that no other protobuf runtime accepts (a
 * field number 0 written in a non-minimal varint is kept as an unknown
 * field, and protobuf-c itself then refuses its own re-encoding of it).
 * Every decode of bytes from outside goes through here, so such input is
 * refused, counted and skipped, never passed on. */
#ifndef LGR_ENVELOPE_H
#define LGR_ENVELOPE_H

#include <stddef.h>

#include "arena.h"
#include "v2/envelope.pb-c.h"

/* Decode len bytes at p. The envelope lives in a (never free_unpacked).
 * NULL with errno EBADMSG when the bytes are not a valid envelope, or
 * ENOMEM when the arena is full. */
Loggregator__V2__Envelope *envelope_unpack(struct arena *a, const void *p,
    size_t len);

/* Size and packing of an envelope as Go writes it. protobuf-c leaves out
 * a proto3 double equal to -0 (it compares with 0), while Go writes any
 * value whose bits are not all zero; envelope_keep_sign attaches such
 * gauge values as raw fields so they go out with their sign. Call it once
 * on an envelope built or decoded from JSON before packing; a is where the
 * extra field records live. 0, or -1 with errno ENOMEM. */
int envelope_keep_sign(Loggregator__V2__Envelope *e, struct arena *a);

/* 1 when m and every message inside it hold only unknown fields that a
 * protobuf decoder could read back (field number >= 1). */
int pb_message_sane(const ProtobufCMessage *m);

#endif
